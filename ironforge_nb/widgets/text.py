"""Words and numbers the monitor shows, and its plain-text view (no widgets here).

The widget view and the text view (printed where there is no kernel) use the same phrases, so
they cannot drift: the counts line, a task's details, a duration.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ironforge_nb.render.palette import STATUS_ORDER

if TYPE_CHECKING:
    from ironforge_nb.orchestrator.tasks import TaskState
    from ironforge_nb.widgets.tracker import RunTracker, TaskRecord

__all__ = ["bar_text", "counts_line", "duration", "elapsed", "in_kernel", "row_value", "run_line",
           "task_details", "text_view"]

_BAR = 20  # characters of a text bar


def duration(seconds: float | None) -> str:
    """``0.4 s``, ``12.3 s``, ``4 min 05 s``, ``2 h 03 min`` ('' for None)."""
    if seconds is None:
        return ""
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {secs:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


def elapsed(info: Mapping[str, object]) -> float | None:
    """Seconds a run has taken: from its creation to its end, or to now while it runs."""
    created, finished = info.get("created"), info.get("finished")
    if not isinstance(created, int) or not created:
        return None
    end = finished if isinstance(finished, int) and finished else time.time() * 1000
    return max(0.0, (end - created) / 1000)


def counts_line(counts: Mapping[str, int]) -> str:
    """``"3 completed, 1 active, 2 waiting"`` in life-cycle order, statuses this version does
    not know last (``"no tasks"`` if empty)."""
    order = [*STATUS_ORDER, *sorted(set(counts) - set(STATUS_ORDER))]
    parts = [f"{counts[s]:,} {s}" for s in order if counts.get(s)]
    return ", ".join(parts) or "no tasks"


def task_details(state: TaskState | None, now_ms: float | None = None) -> list[str]:
    """A task's short facts: cached (from which run), message, percent, attempt, stalls,
    elapsed, worker."""
    if state is None:
        return []
    parts = [] if state.source_run is None else [f"cached (run {state.source_run})"]
    if state.message:
        parts.append(state.message)
    if state.progress and state.status.value in ("active", "failed"):
        parts.append(f"{state.progress:.0%}")
    if state.attempts:
        parts.append(f"attempt {state.attempts}/{state.max_attempts}")
    if state.stalls:
        parts.append(f"{state.stalls} stall{'s' * (state.stalls != 1)}")
    seconds = state.elapsed
    if state.status.value == "active" and state.started is not None:
        now = time.time() * 1000 if now_ms is None else now_ms
        seconds = max(0.0, (now - state.started.timestamp() * 1000) / 1000)
    if seconds is not None:
        parts.append(duration(seconds))
    if state.worker:
        parts.append(state.worker)
    return parts


def bar_text(fraction: float, width: int = _BAR) -> str:
    """``[#######-------------]`` for a fraction from 0 to 1."""
    filled = round(max(0.0, min(1.0, fraction)) * width)
    return "[" + "#" * filled + "-" * (width - filled) + "]"


def row_value(record: TaskRecord) -> float:
    """The bar value of a task row: its reported progress, full once it has completed."""
    if record.status == "completed":
        return 1.0
    return record.state.progress if record.state is not None else 0.0


def text_view(tracker: RunTracker) -> str:
    """The monitor as text: header, overall bar, one line per row, failed tasks' errors."""
    info = tracker.info
    total, done = int(info.get("total", 0)), int(info.get("done", 0))
    head = (f"run {tracker.run.id} · pipeline {info.get('name')} · {tracker.status}"
            f" · {duration(elapsed(info))}")
    lines = [head, f"{bar_text(done / total if total else 1.0)} {done}/{total} · "
                   f"{counts_line(tracker.counts)}"]
    if tracker.lost:
        lines.append(tracker.lost)
    for group in tracker.groups:
        ended = sum(group.counts.get(s, 0) for s in ("completed", "failed", "skipped",
                                                      "cancelled"))
        lines.append(f"  {group.title:<24} {bar_text(ended / max(group.size, 1))} "
                     f"{group.size:,} tasks: {counts_line(group.counts)}")
    rows, more = tracker.rows()
    width = max((len(n) for n in rows), default=0)
    for name in rows:
        record = tracker.tasks[name]
        facts = " · ".join(task_details(record.state))
        lines.append(f"  {name:<{width}} {record.status:<9} {bar_text(row_value(record))} "
                     f"{facts}".rstrip())
        if record.status == "failed" and record.state is not None and record.state.error:
            lines.append(f"  {'':<{width}} {record.state.error}")
    if more:
        lines.append(f"  ... and {more:,} more tasks failed, running or retrying")
    return "\n".join(lines)


def in_kernel() -> bool:
    """Whether this code runs in a Jupyter kernel (not a script, not the IPython terminal)."""
    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython is not None else None
    return getattr(shell, "kernel", None) is not None


def run_line(info: Mapping[str, Any]) -> str:
    """``"12/20 tasks · 11 completed, 1 failed · 3.2 s"`` from a run's counters (the run's
    meta hash as `ironforge_nb.orchestrator.waiting.counters` reads it)."""
    total, done = int(info.get("total", 0)), int(info.get("done", 0))
    order = ("waiting", "in_flight", "completed", "failed", "skipped", "cancelled")
    counts = ", ".join(f"{int(info[s]):,} {s.replace('_', ' ')}" for s in order if info.get(s))
    parts = [f"{done:,}/{total:,} tasks", counts, duration(elapsed(info))]
    return " · ".join(p for p in parts if p)
