"""The monitor's drawing half: ipywidgets built once, then updated from a `RunTracker`.

An update only sets widget values (traitlets send a message only when a value changes), and
only for rows whose task changed or is running. A row (a task's, or a map's in a big run) is
one HTML widget with its bar drawn in HTML, and the widgets share their layout and style
models: every model is a comm to the front end, and one per part of a row made ~500 of them
for 20 tasks (~45 now). Rows come from a pool that grows to the most ever shown at once (at
most about 60: big runs aggregate, see the tracker), so a refresh never builds thousands of
widgets. One dropdown picks the task whose details (state, traceback, logs) are shown.
Nothing here reads Redis except the details pane, which reads a selected task's logs when
its selection or its state changes.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from html import escape
from typing import TYPE_CHECKING, Any

import ipywidgets as w
from ipywidgets.widgets.widget_string import HTMLStyle

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


class _Shared:
    """Layout and style models shared by many widgets: ipywidgets makes one model of each
    per widget unless given one, and every model is a comm to the front end."""

    def __init__(self) -> None:
        self.layout = w.Layout()
        self.style = HTMLStyle()

    def html(self, css: str | None = None, value: str = "") -> w.HTML:
        widget = w.HTML(value=value, layout=self.layout, style=self.style)
        if css:
            widget.add_class(css)
        return widget

    def models(self) -> list[Any]:
        return [self.layout, self.style]


def _chip(status: str) -> str:
    style = status_style(status) if status in STATUS_COLORS else {"fillcolor": "#ffffff"}
    return (f'<span class="ironforge-chip" style="background:{style["fillcolor"]};color:'
            f'{style.get("fontcolor", "black")};padding:1px 6px;border-radius:3px;'
            f'border:1px solid #999">{escape(status)}</span>')


def _bar(value: float, color: str, width: str) -> str:
    """A progress bar drawn in HTML: its value in ``data-value``, its fill's width and color
    in the inner div's style (what a browser shows)."""
    value = max(0.0, min(1.0, value))
    return (f'<div class="ironforge-monitor-bar" data-value="{value:.4f}" style="flex:0 0 '
            f'{width};height:16px;background:#eeeeee;border:1px solid #cccccc;'
            f'border-radius:2px;overflow:hidden"><div class="ironforge-monitor-bar-fill" '
            f'style="width:{value * 100:.1f}%;height:100%;background:{color}"></div></div>')


_ROW = "display:flex;align-items:center;gap:8px;white-space:nowrap;line-height:22px"
_CELL = "overflow:hidden;text-overflow:ellipsis"


class TaskRow:
    """One task's row, one HTML widget: status, name, bar (value + message), facts, and for
    a failed task its error's last line with the traceback on click. Its plain values
    (`task`, `status`, `value`, `color`) say what the HTML shows."""

    def __init__(self, shared: _Shared) -> None:
        self.task: str | None = None
        self.status = ""
        self.value = 0.0
        self.color = ""
        self.html = shared.html("ironforge-monitor-task")

    def show(self, record: TaskRecord, now_ms: float) -> None:
        """Draw ``record``'s task in this row."""
        self.task = record.name
        cached = record.state is not None and record.state.source_run is not None
        self.status = "cached" if cached else record.status
        self.value = row_value(record)
        self.color = STATUS_COLORS.get(record.status, "#ffffff")
        facts = escape(" · ".join(task_details(record.state, now_ms)))
        parts = [f'<div style="{_ROW}"><span style="flex:0 0 90px">{_chip(self.status)}</span>'
                 f'<code style="flex:0 0 180px;{_CELL}" title="{escape(record.name)}">'
                 f'{escape(record.name)}</code>{_bar(self.value, self.color, "220px")}'
                 f'<span style="flex:1 1 auto;{_CELL}" title="{facts}">{facts}</span></div>']
        state = record.state
        if record.status == "failed" and state is not None and state.error:
            parts.append(f'<div class="ironforge-monitor-error"><details><summary>'
                         f'{escape(state.error)}</summary><pre>{escape(state.traceback or "")}'
                         f'</pre></details></div>')
        self.html.value = "".join(parts)


class GroupRow:
    """One aggregated row, one HTML widget: a map (or levels of a big run) with its counts by
    status. `value` and `color` say what its bar shows."""

    def __init__(self, shared: _Shared) -> None:
        self.value = 0.0
        self.color = ""
        self.title = ""
        self.counts = ""
        self.html = shared.html("ironforge-monitor-group")

    def show(self, group: Group) -> None:
        ended = sum(group.counts.get(s, 0) for s in _ENDED)
        self.title = (f"<code>{escape(group.title)}</code> {group.size:,} "
                      f"task{'s' * (group.size != 1)}")
        self.value = ended / group.size if group.size else 1.0
        self.color = STATUS_COLORS[summary_status(group.counts)]
        self.counts = escape(counts_line(group.counts))
        self.html.value = (f'<div style="{_ROW}"><span style="flex:0 0 270px;{_CELL}">'
                           f'{self.title}</span>{_bar(self.value, self.color, "300px")}'
                           f'<span style="flex:1 1 auto;{_CELL}">{self.counts}</span></div>')


class MonitorView:
    """Every widget of a monitor; `update` redraws them from a tracker."""

    def __init__(self, title: str, actions: dict[str, Callable[[], None]],
                 details: Callable[[str | None], str]) -> None:
        self._details = details
        self.busy = False  # a button's action is running: both buttons stay disabled
        self.selected: str | None = None
        self._shown: str | None = None  # the task the details pane shows
        self._shared = shared = _Shared()
        self._box_layout = w.Layout()
        self.title = shared.html(value=title)
        self.status = shared.html("ironforge-monitor-status")
        self.elapsed = shared.html()
        self.notice = shared.html("ironforge-monitor-notice")
        self.counts = shared.html("ironforge-monitor-counts")
        self.overall = w.FloatProgress(min=0.0, max=1.0, value=0.0,
                                       layout=w.Layout(width="50%", flex="0 0 50%"))
        self.overall.add_class("ironforge-monitor-overall")
        self.graph = w.HTML(style=shared.style, layout=w.Layout(
            max_height="480px", overflow="auto", border="1px solid #cccccc",
            padding="4px", width="auto"))
        self.graph.add_class("ironforge-monitor-graph")
        # The graph scrolls in a bordered, bounded box: a 20-task map drawn at its natural
        # (readable) size is taller than a screen and would push the rows out of sight.
        self.groups: list[GroupRow] = []
        self.group_box = w.VBox([], layout=self._box_layout)
        self.rows: list[TaskRow] = []
        self.row_box = w.VBox([], layout=self._box_layout)
        self.more = shared.html()
        self.pick = w.Dropdown(options=[("first failed task", "")], value="",
                               description="details of", layout=w.Layout(width="360px"))
        self.pick.style.description_width = "initial"
        self.pick.add_class("ironforge-monitor-pick")
        self.pick.observe(self._picked, names="value")
        self._picking = False
        self.detail = shared.html("ironforge-monitor-details")
        button_layout, button_style = w.Layout(), w.ButtonStyle()
        self._button_models = [button_layout, button_style]
        self.cancel = self._button("cancel run", "ironforge-monitor-cancel", actions["cancel"],
                                   button_layout, button_style)
        self.retry = self._button("retry failed", "ironforge-monitor-retry", actions["retry"],
                                  button_layout, button_style)
        self.root = w.VBox([
            w.HBox([self.title, self.status, self.elapsed], layout=self._box_layout),
            self.notice, w.HBox([self.overall, self.counts], layout=self._box_layout),
            self.graph, self.group_box, self.row_box, self.more, self.pick, self.detail,
            w.HBox([self.cancel, self.retry], layout=self._box_layout),
        ], layout=self._box_layout)
        self.root.add_class("ironforge-monitor")

    @staticmethod
    def _button(label: str, css: str, action: Callable[[], None], layout: w.Layout,
                style: w.ButtonStyle) -> w.Button:
        button = w.Button(description=label, disabled=True, layout=layout, style=style)
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
        self.cancel.disabled = self.busy or tracker.ended or tracker.gone
        self.retry.disabled = self.busy or not tracker.ended or not any(
            tracker.counts.get(s) for s in ("failed", "skipped", "cancelled"))
        self._update_details(tracker)
        tracker.changed.clear()

    def _update_groups(self, tracker: RunTracker) -> None:
        while len(self.groups) < len(tracker.groups):
            self.groups.append(GroupRow(self._shared))
            self.group_box.children = tuple(g.html for g in self.groups)
        for row, group in zip(self.groups, tracker.groups, strict=False):
            row.show(group)

    def _update_rows(self, tracker: RunTracker) -> None:
        names, more = tracker.rows()
        while len(self.rows) < len(names):  # a pool: rows are reused, never rebuilt
            self.rows.append(TaskRow(self._shared))
        now_ms = time.time() * 1000
        for row, name in zip(self.rows, names, strict=False):
            record = tracker.tasks[name]
            if row.task != name or name in tracker.changed or record.status == "active":
                row.show(record, now_ms)
        for row in self.rows[len(names):]:
            row.task = None
        shown = tuple(r.html for r in self.rows[:len(names)])
        if self.row_box.children != shown:
            self.row_box.children = shown
        self.more.value = (f"... and {more:,} more tasks failed, running or retrying"
                           if more else "")
        self._update_pick(names)

    def _update_pick(self, names: list[str]) -> None:
        """The details dropdown lists the tasks with a row (and the selected one)."""
        wanted = [n for n in names if n != self.selected]
        if self.selected is not None:
            wanted.insert(0, self.selected)
        options = [("first failed task", ""), *((n, n) for n in wanted)]
        if list(self.pick.options) != options:
            self._picking = True
            try:
                self.pick.options = options
                self.pick.value = self.selected or ""
            finally:
                self._picking = False

    def _picked(self, change: dict[str, Any]) -> None:
        if not self._picking:
            self.select(change["new"] or None)

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
        if (self.pick.value or None) != task:
            names = [r.task for r in self.rows if r.task is not None]
            self._update_pick(names)

    def widgets(self) -> list[Any]:
        """Every widget of the view (to count them, or to close them), rows not shown now
        included; `models` adds the layouts and styles."""
        out: list[Any] = []
        todo: list[Any] = [self.root, *(r.html for r in self.rows)]
        seen: set[int] = set()
        while todo:
            widget = todo.pop()
            if id(widget) in seen:
                continue
            seen.add(id(widget))
            out.append(widget)
            todo.extend(getattr(widget, "children", ()))
        return out

    def models(self) -> list[Any]:
        """Every model of the view sent to the front end: widgets, layouts and styles."""
        out: dict[int, Any] = {}
        for widget in self.widgets():
            for model in (widget, getattr(widget, "layout", None),
                          getattr(widget, "style", None)):
                if model is not None:
                    out.setdefault(id(model), model)
        return list(out.values())


def _chip_run(status: str) -> str:
    color = _RUN_COLORS.get(status, STATUS_COLORS["active"])
    dark = status in ("failed", "cancelled")
    return (f'<span style="background:{color};color:{"white" if dark else "black"};'
            f'padding:1px 6px;border-radius:3px;font-weight:bold">{escape(status)}</span>')
