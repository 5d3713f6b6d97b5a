"""`Dashboard`: the namespace's queues, live workers, recent runs and dead letters, live.

``ifn.dashboard()`` shows, for the connected namespace: each queue's jobs by status and its
throughput (completions per second over the last minute), the live workers and what each runs
now (with the job's progress), the recent runs (a bar of ended tasks each), and the newest dead
letters with a ``requeue`` button each, plus ``requeue all`` and ``purge``.

The data half is `ironforge_nb.orchestrator.overview` (plain dicts, six round trips whatever
the namespace's size), read in the loop's thread pool; the drawing half sets widget values on
the kernel's asyncio loop (ipykernel 7 drops display updates sent from other threads). The view
follows until it is closed (`close`); `refresh` does one read-and-draw step now (tests drive it).
Where there is no kernel it prints the text view (`board_text.status_text`) instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable
from html import escape
from typing import Any

import ipywidgets as w

from ironforge_nb.errors import InvalidOptionError, IronForgeError
from ironforge_nb.orchestrator import overview as ov
from ironforge_nb.queue import RedisConfig, default_config
from ironforge_nb.render.palette import STATUS_COLORS
from ironforge_nb.widgets.board_text import queues_table, status_text, workers_text
from ironforge_nb.widgets.loop import Following, kernel_loop, watching_config

__all__ = ["Dashboard", "dashboard"]

_RUN_COLORS = {"succeeded": STATUS_COLORS["completed"], "failed": STATUS_COLORS["failed"],
               "cancelled": STATUS_COLORS["cancelled"], "running": STATUS_COLORS["active"]}


def dashboard(config: RedisConfig | None = None, *, interval: float = 2.0, runs: int = 10,
              dead: int = 20) -> Dashboard:
    """A live view of the namespace (``config``, default: the connected one): queues, workers,
    recent runs (``runs`` of them) and dead letters (the newest ``dead``), re-read every
    ``interval`` seconds until closed. See `Dashboard`."""
    return Dashboard(config, interval=interval, runs=runs, dead=dead)


class RunRow:
    """A recent run: id and pipeline, status, a bar of ended tasks, counts."""

    def __init__(self) -> None:
        self.label = w.HTML(layout=w.Layout(width="320px"))
        self.bar = w.FloatProgress(min=0.0, max=1.0, layout=w.Layout(width="30%"))
        self.facts = w.HTML()
        self.box = w.HBox([self.label, self.bar, self.facts])
        self.box.add_class("ironforge-dashboard-run")

    def show(self, run: dict[str, Any]) -> None:
        self.box.layout.display = None
        self.label.value = (f"<code>{escape(run['id'])}</code> {escape(str(run['pipeline']))} "
                            f"<b>{escape(str(run['status']))}</b>")
        self.bar.value = run["done"] / run["tasks"] if run["tasks"] else 1.0
        self.bar.style.bar_color = _RUN_COLORS.get(str(run["status"]), "#cccccc")
        self.facts.value = escape(f"{run['done']:,}/{run['tasks']:,} ended, "
                                  f"{run['failed']:,} failed")


class DeadRow:
    """A dead letter and its requeue button."""

    def __init__(self, requeue: Callable[[str, str], None]) -> None:
        self.job: tuple[str, str] | None = None  # (queue, job id)
        self.text = w.HTML(layout=w.Layout(width="80%"))
        self.button = w.Button(description="requeue", layout=w.Layout(width="90px"))
        self.button.on_click(lambda _b: self.job is not None and requeue(*self.job))
        self.box = w.HBox([self.button, self.text])
        self.box.add_class("ironforge-dashboard-dead")

    def show(self, dead: dict[str, Any]) -> None:
        self.job = (dead["queue"], dead["job"])
        self.box.layout.display = None
        where = f" · run {dead['run']}: {dead['task']}" if dead["run"] else ""
        self.button.tooltip = ("retry its run's failed tasks" if dead["run"]
                               else "queue this job again")
        self.text.value = (f"<code>{escape(dead['job'])}</code> on "
                           f"<code>{escape(dead['queue'])}</code>{escape(where)} · "
                           f"{dead['attempts']} attempts · {escape(dead['error'] or '')}")


class Dashboard(Following):
    """A live view of a namespace: ``ifn.dashboard()`` (see the module docstring).

    `data` is the last snapshot (`overview.overview`'s dict), `message` the notice line (a
    lost connection, a button's outcome), `refresh` one step now, `close` stops following and
    closes the widgets. It reads through a client of its own that fails fast: a lost Redis
    shows "connection lost, retrying" and the view resumes when it is back.
    """

    def __init__(self, config: RedisConfig | None = None, *, interval: float = 2.0,
                 runs: int = 10, dead: int = 20) -> None:
        if (isinstance(interval, bool) or not isinstance(interval, int | float)
                or not 0 < interval <= 3600):
            raise InvalidOptionError("interval", interval, "a number of seconds > 0, e.g. 2")
        self.config = config if config is not None else default_config()
        self.interval = float(interval)
        self._limits = {"runs": runs, "dead": dead}
        self._config = watching_config(self.config)
        self.data: dict[str, Any] | None = None
        self.message: str | None = None
        self._lost: str | None = None
        self._lock = threading.Lock()
        self._build()
        self._close_with(self.root)
        self.refresh()
        self._loop = kernel_loop()
        if self._loop is not None:
            self._task = self._loop.create_task(self._follow())
        else:
            print(self)

    # ------------------------------------------------------------------ public

    def refresh(self) -> None:
        """Read the namespace now and redraw (does nothing once closed)."""
        if not self._closed:
            self._step()
            self._draw()

    def close(self) -> None:
        """Stop following and close the widgets (closing the root widget from the kernel or
        the front end does the same)."""
        if self._shut:
            return
        self._shut = True
        self._stop_following()
        for widget in _all_widgets(self.root):
            widget.close()
        self._config.close()

    def __repr__(self) -> str:
        return f"Dashboard(namespace {self.config.namespace!r})"

    def __str__(self) -> str:
        if self.data is None:
            return f"namespace {self.config.namespace}: {self._lost or 'not read yet'}"
        return status_text(self.data) + (f"\n\n{self._lost}" if self._lost else "")

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, Any]:
        """The widget view in a kernel (its text part fixed: ``repr``); text elsewhere."""
        if self._loop is None or self._closed:
            return {"text/plain": str(self)}
        bundle: dict[str, Any] = self.root._repr_mimebundle_()
        bundle["text/plain"] = repr(self)
        return bundle

    # ------------------------------------------------------------------ data and drawing

    async def _follow(self) -> None:
        loop = asyncio.get_running_loop()
        while not self._closed:
            try:
                await loop.run_in_executor(None, self._step)
                if not self._closed:
                    self._draw()
            except Exception as exc:  # shown in the view, never raised into the notebook
                self.message = f"dashboard error: {type(exc).__name__}: {exc}"
                with contextlib.suppress(Exception):
                    self._draw()
            await asyncio.sleep(self.interval)

    def _step(self) -> None:
        """The data half (any thread): one snapshot, or the reason there is none."""
        import redis

        try:
            data = ov.overview(self._config, **self._limits)
        except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError) as exc:
            with self._lock:
                self._lost = f"connection lost, retrying ({type(exc).__name__})"
            return
        with self._lock:
            self.data, self._lost = data, None

    def _build(self) -> None:
        def button(label: str, action: Callable[[], None]) -> w.Button:
            made = w.Button(description=label)
            made.on_click(lambda _b: action())
            return made

        self.header = w.HTML()
        self.notice = w.HTML()
        self.notice.add_class("ironforge-dashboard-notice")
        self.queues = w.HTML()
        self.queues.add_class("ironforge-dashboard-queues")
        self.workers = w.HTML()
        self.workers.add_class("ironforge-dashboard-workers")
        self.run_rows: list[RunRow] = []
        self.run_box = w.VBox([])
        self.dead_rows: list[DeadRow] = []
        self.dead_title = w.HTML()
        self.dead_box = w.VBox([])
        self.requeue_all = button("requeue all", self._requeue_all)
        self.purge = button("purge", self._purge)
        self.root = w.VBox([self.header, self.notice, _title("queues"), self.queues,
                            _title("workers"), self.workers, _title("recent runs"),
                            self.run_box, self.dead_title, self.dead_box,
                            w.HBox([self.requeue_all, self.purge])])
        self.root.add_class("ironforge-dashboard")

    def _draw(self) -> None:
        """The drawing half (the kernel's thread): widget values from `data`."""
        with self._lock:
            data, lost = self.data, self._lost
        self.notice.value = escape(lost or self.message or "")
        if data is None:
            return
        self.header.value = (f"namespace <b>{escape(data['namespace'])}</b> on "
                             f"<code>{escape(data['url'])}</code>")
        self.queues.value = f"<pre>{escape(queues_table(data))}</pre>"
        self.workers.value = f"<pre>{escape(workers_text(data))}</pre>"
        _fill(self.run_rows, self.run_box, RunRow, data["runs"])
        _fill(self.dead_rows, self.dead_box, lambda: DeadRow(self._requeue), data["dead"])
        more = data["dead_total"] - len(data["dead"])
        self.dead_title.value = (f"<b>dead letters</b> ({data['dead_total']:,}"
                                 + (f", {more:,} not shown" if more > 0 else "") + ")")
        self.requeue_all.disabled = self.purge.disabled = not data["dead_total"]

    # ------------------------------------------------------------------ buttons

    def _requeue(self, queue: str, job_id: str) -> None:
        self._act(lambda: ov.requeue(self.config, queue, job_id))

    def _requeue_all(self) -> None:
        self._act(lambda: "; ".join(ov.requeue_all(self.config)) or "nothing to requeue")

    def _purge(self) -> None:
        self._act(lambda: f"purged {ov.purge(self.config):,} dead letters")

    def _act(self, action: Callable[[], str]) -> None:
        import redis

        try:
            self.message = action()
        except (IronForgeError, redis.exceptions.RedisError) as exc:
            self.message = f"failed: {exc}"
        self.refresh()


def _title(text: str) -> w.HTML:
    return w.HTML(value=f"<b>{escape(text)}</b>")


def _fill(rows: list[Any], box: w.VBox, make: Callable[[], Any],
          items: list[dict[str, Any]]) -> None:
    """Show ``items`` in a pool of rows that only grows (a refresh never rebuilds rows)."""
    if len(rows) < len(items):
        while len(rows) < len(items):
            rows.append(make())
        box.children = tuple(r.box for r in rows)
    for row, item in zip(rows, items, strict=False):
        row.show(item)
    for row in rows[len(items):]:
        row.box.layout.display = "none"


def _all_widgets(root: Any) -> list[Any]:
    out, todo = [], [root]
    while todo:
        widget = todo.pop()
        out.append(widget)
        todo.extend(getattr(widget, "children", ()))
    return out
