"""The monitor's drawing half: ipywidgets built once, then updated from a `RunTracker`.

An update only sets widget values (traitlets send a message only when a value changes), and
only for rows whose task changed or is running. Rows come from a pool that grows to the most
ever shown at once (at most about 60: big runs aggregate, see the tracker), so a refresh never
builds thousands of widgets. Nothing here reads Redis except the details pane, which reads a
selected task's logs when its selection or its state changes.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from html import escape
from typing import TYPE_CHECKING, Any

import ipywidgets as w

from ironforge_nb.render.palette import STATUS_COLORS, status_style, summary_status
from ironforge_nb.widgets.text import (
    counts_line,
    duration,
    elapsed,
    row_value,
    task_details,
)

if TYPE_CHECKING:
    from ironforge_nb.widgets.tracker import Group, RunTracker, TaskRecord

__all__ = ["MonitorView"]

_ENDED = ("completed", "failed", "skipped", "cancelled")
_RUN_COLORS = {"succeeded": STATUS_COLORS["completed"], "failed": STATUS_COLORS["failed"],
               "cancelled": STATUS_COLORS["cancelled"]}


def _html(css: str | None = None, value: str = "", width: str | None = None) -> w.HTML:
    """An HTML widget; with ``width``, a column of that fixed width (rows line up)."""
    layout = w.Layout(width=width, flex=f"0 0 {width}") if width else w.Layout()
    widget = w.HTML(value=value, layout=layout)
    if css:
        widget.add_class(css)
    return widget


def _chip(status: str) -> str:
    style = status_style(status) if status in STATUS_COLORS else {"fillcolor": "#ffffff"}
    return (f'<span style="background:{style["fillcolor"]};color:'
            f'{style.get("fontcolor", "black")};padding:1px 6px;border-radius:3px;'
            f'border:1px solid #999">{escape(status)}</span>')


def _bar(css: str | None = None, width: str = "220px") -> w.FloatProgress:
    bar = w.FloatProgress(min=0.0, max=1.0, value=0.0,
                          layout=w.Layout(width=width, flex=f"0 0 {width}"))
    if css:
        bar.add_class(css)
    return bar


class TaskRow:
    """One task's row: status, name, bar (value + message), facts, details button, error."""

    def __init__(self, on_details: Callable[[str], None]) -> None:
        self.task: str | None = None
        self.status = _html(width="90px")
        self.name = _html(width="180px")
        self.bar = _bar()
        self.facts = _html()
        self.facts.layout = w.Layout(flex="1 1 auto", overflow="hidden")
        self.button = w.Button(description="details",
                               layout=w.Layout(width="70px", flex="0 0 70px"))
        self.button.add_class("ironforge-monitor-details-button")
        self.button.on_click(lambda _b: self.task is not None and on_details(self.task))
        self.error = _html("ironforge-monitor-error")
        self.error.layout.display = "none"
        self.box = w.VBox([w.HBox([self.status, self.name, self.bar, self.facts, self.button]),
                           self.error])
        self.box.add_class("ironforge-monitor-task")

    def show(self, record: TaskRecord, now_ms: float) -> None:
        """Draw ``record``'s task in this row."""
        self.task = record.name
        self.box.layout.display = None
        cached = record.state is not None and record.state.source_run is not None
        self.status.value = _chip("cached" if cached else record.status)
        self.name.value = f"<code>{escape(record.name)}</code>"
        self.bar.value = row_value(record)
        self.bar.style.bar_color = STATUS_COLORS.get(record.status, "#ffffff")
        facts = escape(" · ".join(task_details(record.state, now_ms)))
        self.facts.value = (f'<div title="{facts}" style="white-space:nowrap;overflow:hidden;'
                            f'text-overflow:ellipsis">{facts}</div>')
        state = record.state
        if record.status == "failed" and state is not None and state.error:
            self.error.value = (f"<details><summary>{escape(state.error)}</summary>"
                                f"<pre>{escape(state.traceback or '')}</pre></details>")
            self.error.layout.display = None
        else:
            self.error.value = ""
            self.error.layout.display = "none"

    def hide(self) -> None:
        self.task = None
        self.box.layout.display = "none"


class GroupRow:
    """One aggregated row: a map (or levels of a big run) with its counts by status."""

    def __init__(self) -> None:
        self.title = _html(width="270px")
        self.bar = _bar(width="300px")
        self.counts = _html()
        self.box = w.HBox([self.title, self.bar, self.counts])
        self.box.add_class("ironforge-monitor-group")

    def show(self, group: Group) -> None:
        ended = sum(group.counts.get(s, 0) for s in _ENDED)
        self.title.value = (f"<code>{escape(group.title)}</code> {group.size:,} "
                            f"task{'s' * (group.size != 1)}")
        self.bar.value = ended / group.size if group.size else 1.0
        self.bar.style.bar_color = STATUS_COLORS[summary_status(group.counts)]
        self.counts.value = escape(counts_line(group.counts))


class MonitorView:
    """Every widget of a monitor; `update` redraws them from a tracker."""

    def __init__(self, title: str, actions: dict[str, Callable[[], None]],
                 details: Callable[[str | None], str]) -> None:
        self._details = details
        self.selected: str | None = None
        self._shown: str | None = None  # the task the details pane shows
        self.title = _html(value=title)
        self.status = _html("ironforge-monitor-status")
        self.elapsed = _html()
        self.notice = _html("ironforge-monitor-notice")
        self.counts = _html("ironforge-monitor-counts")
        self.overall = _bar("ironforge-monitor-overall", width="50%")
        self.graph = _html("ironforge-monitor-graph")
        # The graph scrolls in a bounded box: a 20-task map drawn at its natural (readable)
        # size is taller than a screen and would push the rows out of sight.
        self.graph.layout = w.Layout(max_height="480px", overflow="auto")
        self.groups: list[GroupRow] = []
        self.group_box = w.VBox([])
        self.rows: list[TaskRow] = []
        self.row_box = w.VBox([])
        self.more = _html()
        self.detail = _html("ironforge-monitor-details")
        self.cancel = self._button("cancel run", "ironforge-monitor-cancel", actions["cancel"])
        self.retry = self._button("retry failed", "ironforge-monitor-retry", actions["retry"])
        self.root = w.VBox([
            w.HBox([self.title, self.status, self.elapsed]), self.notice,
            w.HBox([self.overall, self.counts]), self.graph, self.group_box, self.row_box,
            self.more, self.detail, w.HBox([self.cancel, self.retry]),
        ])
        self.root.add_class("ironforge-monitor")

    @staticmethod
    def _button(label: str, css: str, action: Callable[[], None]) -> w.Button:
        button = w.Button(description=label, disabled=True)
        button.add_class(css)
        button.on_click(lambda _b: action())
        return button

    # ------------------------------------------------------------------ updating

    def update(self, tracker: RunTracker, graph: str | None, message: str | None) -> None:
        """Redraw from ``tracker`` (``graph``: new graph HTML, None to keep the old one;
        ``message``: the notice line, e.g. a lost connection or a button's outcome)."""
        info = tracker.info
        run_status = tracker.status
        self.status.value = _chip_run(run_status)
        self.elapsed.value = escape(duration(elapsed(info)))
        self.notice.value = escape(message) if message else ""
        total, done = int(info.get("total", 0)), int(info.get("done", 0))
        self.overall.value = done / total if total else 1.0
        self.overall.description = f"{done:,}/{total:,}"
        self.overall.style.bar_color = (_RUN_COLORS.get(run_status) or (
            STATUS_COLORS["failed"] if tracker.counts.get("failed") else
            STATUS_COLORS["completed"]))
        self.counts.value = escape(counts_line(tracker.counts))
        if graph is not None:
            self.graph.value = graph
        self._update_groups(tracker)
        self._update_rows(tracker)
        self.cancel.disabled = tracker.ended or tracker.gone
        self.retry.disabled = not tracker.ended or not any(
            tracker.counts.get(s) for s in ("failed", "skipped", "cancelled"))
        self._update_details(tracker)
        tracker.changed.clear()

    def _update_groups(self, tracker: RunTracker) -> None:
        while len(self.groups) < len(tracker.groups):
            self.groups.append(GroupRow())
            self.group_box.children = tuple(g.box for g in self.groups)
        for row, group in zip(self.groups, tracker.groups, strict=False):
            row.show(group)

    def _update_rows(self, tracker: RunTracker) -> None:
        names, more = tracker.rows()
        if len(self.rows) < len(names):
            while len(self.rows) < len(names):
                self.rows.append(TaskRow(self.select))
            self.row_box.children = tuple(r.box for r in self.rows)
        now_ms = time.time() * 1000
        for row, name in zip(self.rows, names, strict=False):
            record = tracker.tasks[name]
            if row.task != name or name in tracker.changed or record.status == "active":
                row.show(record, now_ms)
        for row in self.rows[len(names):]:
            row.hide()
        self.more.value = (f"... and {more:,} more tasks failed, running or retrying"
                           if more else "")

    def _update_details(self, tracker: RunTracker) -> None:
        """The details pane: the selected task, else the first failed one (with its logs)."""
        shown = self.selected
        if shown is None:
            shown = tracker.first_failed()
        if shown is None:
            self.detail.value = ""
            self._shown = None
            return
        if shown != self._shown or shown in tracker.changed:
            self._shown = shown
            self.detail.value = self._details(shown)

    def select(self, task: str | None) -> None:
        """Show ``task``'s details (None: back to the first failed task)."""
        self.selected = task
        self._shown = task
        self.detail.value = self._details(task) if task is not None else ""

    def widgets(self) -> list[Any]:
        """Every widget of the view (to count them, or to close them)."""
        out: list[Any] = []
        todo: list[Any] = [self.root]
        while todo:
            widget = todo.pop()
            out.append(widget)
            todo.extend(getattr(widget, "children", ()))
        return out


def _chip_run(status: str) -> str:
    color = _RUN_COLORS.get(status, STATUS_COLORS["active"])
    dark = status in ("failed", "cancelled")
    return (f'<span style="background:{color};color:{"white" if dark else "black"};'
            f'padding:1px 6px;border-radius:3px;font-weight:bold">{escape(status)}</span>')
