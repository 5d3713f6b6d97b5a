"""The namespace overview as text: ``ironforge status``, ``runs``, ``dead-letters`` and the
dashboard's form where there is no kernel (no widgets here; the data is
`ironforge_nb.orchestrator.overview`).

Each section is a function of the overview's plain data, so the terminal and the widget show the
same facts: queues with counts by status and throughput, live workers with what they run (a bar
per running job), recent runs (a bar each), and the dead letters.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from ironforge_nb.widgets.text import bar_text, duration

__all__ = ["dead_table", "job_label", "queues_table", "runs_table", "status_text", "table",
           "workers_text"]

_HEADERS = ("queue", "queued", "scheduled", "active", "completed", "failed", "cancelled",
            "done/s (1 min)")


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """Columns padded to their widest cell; numbers right-aligned, text left-aligned."""
    cells = [[_cell(v) for v in row] for row in rows]
    widths = [max([len(h), *(len(r[i]) for r in cells)]) for i, h in enumerate(headers)]
    numeric = [all(isinstance(row[i], int | float) for row in rows) and bool(rows)
               for i in range(len(headers))]
    lines = ["  ".join(h.rjust(w) if n else h.ljust(w)
                       for h, w, n in zip(headers, widths, numeric, strict=True)).rstrip()]
    for row in cells:
        lines.append("  ".join(c.rjust(w) if n else c.ljust(w)
                               for c, w, n in zip(row, widths, numeric, strict=True)).rstrip())
    return "\n".join(lines)


def _cell(value: object) -> str:
    if isinstance(value, float):
        return f"{value:,.1f}"
    if isinstance(value, int):
        return f"{value:,}"
    return "" if value is None else str(value)


def queues_table(data: Mapping[str, Any]) -> str:
    """One line per queue: jobs by status and completions per second over the last minute."""
    if not data["queues"]:
        return "no queues yet"
    rows = [[q["name"], *(q["counts"][s] for s in _HEADERS[1:7]), float(q["rate"])]
            for q in data["queues"]]
    return table(_HEADERS, rows)


def job_label(job: Mapping[str, Any]) -> str:
    """``run <id>: <task>`` for a pipeline's task, ``job <id>`` for a plain job."""
    if job.get("run"):
        return f"run {job['run']}: {job.get('task')}"
    return f"job {job['job']}"


def workers_text(data: Mapping[str, Any]) -> str:
    """One line per live worker, then one per job it runs (with its progress bar)."""
    workers = data["workers"]
    if not workers:
        return "no live workers"
    now = data["time"] / 1000
    lines = []
    for w in workers:
        lines.append(f"{w['name']}  {w['host']} pid {w['pid']}  queues {','.join(w['queues'])}"
                     f"  running {w['running']}/{w['concurrency']}  done {w['jobs_done']:,}"
                     f"  seen {max(0.0, now - w['last_seen']):.0f} s ago")
        for job in w["jobs"]:
            took = (duration(max(0.0, now - job["started"] / 1000))
                    if job["started"] else "held")
            message = f" {job['message']}" if job.get("message") else ""
            lines.append(f"  {bar_text(job['progress'], 10)} {job_label(job)} "
                         f"(attempt {job['attempt']}, {took}){message}")
    return "\n".join(lines)


def runs_table(runs: Sequence[Mapping[str, Any]], now_ms: float | None = None) -> str:
    """One line per run: id, pipeline, status, a bar of ended tasks, counts, age, duration."""
    if not runs:
        return "no runs yet"
    now = time.time() * 1000 if now_ms is None else now_ms
    rows = []
    for r in runs:
        total = r["tasks"]
        took = r["duration"]
        if took is None and r["created"]:
            took = max(0.0, (now - r["created"]) / 1000)
        rows.append([r["id"], r["pipeline"], r["status"],
                     f"{bar_text(r['done'] / total if total else 1.0, 10)} "
                     f"{r['done']:,}/{total:,}", r["failed"], _when(r["created"]),
                     duration(took)])
    return table(("run", "pipeline", "status", "tasks ended", "failed", "created", "took"),
                 rows)


def dead_table(data: Mapping[str, Any]) -> str:
    """The newest dead letters: job, queue, what it belongs to, attempts, when, last error."""
    if not data["dead"]:
        return "no dead letters"
    rows = [[d["job"], d["queue"], f"run {d['run']}: {d['task']}" if d["run"] else "",
             d["attempts"], _when(d["failed"]), _short(d["error"])] for d in data["dead"]]
    shown = table(("job", "queue", "task", "attempts", "failed at", "error"), rows)
    more = data["dead_total"] - len(data["dead"])
    return shown + (f"\n... and {more:,} more" if more > 0 else "")


def status_text(data: Mapping[str, Any]) -> str:
    """The whole overview: header, queues, workers, runs, dead letters."""
    when = _when(data["time"])
    return "\n\n".join([
        f"namespace {data['namespace']} on {data['url']} · {when}",
        "QUEUES\n" + queues_table(data),
        f"WORKERS ({len(data['workers'])} live)\n" + workers_text(data),
        "RECENT RUNS\n" + runs_table(data["runs"], data["time"]),
        f"DEAD LETTERS ({data['dead_total']:,})\n" + dead_table(data),
    ])


def _when(ms: int | None) -> str:
    if not ms:
        return ""
    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _short(text: str | None, width: int = 60) -> str:
    if not text:
        return ""
    return text if len(text) <= width else text[:width - 3] + "..."
