"""`RunMonitor`: a run's live view, following it on the kernel's event loop.

Each step has a data half (`RunTracker.poll`, plus a graph layout when one is due), run in the
loop's default thread pool so that a slow Redis or ``dot`` never freezes the kernel, and a
drawing half (`MonitorView.update`), run on the loop itself: display updates are sent from the
kernel's own thread, never from another one (ipykernel 7 drops those). The loop task sleeps
``interval`` seconds between steps and ends by itself once the run has ended and been drawn,
or when `close` is called.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable
from html import escape
from typing import TYPE_CHECKING, Any

from ironforge_nb.errors import InvalidOptionError, IronForgeError
from ironforge_nb.render.palette import STATUS_ORDER
from ironforge_nb.widgets.graph import GraphPainter
from ironforge_nb.widgets.loop import Following, kernel_loop, watching_config
from ironforge_nb.widgets.text import duration, text_view
from ironforge_nb.widgets.tracker import RunTracker
from ironforge_nb.widgets.view import MonitorView

if TYPE_CHECKING:
    from ironforge_nb.orchestrator.run import Run

__all__ = ["RunMonitor"]

_LOG_LINES = 40  # lines of a task's log shown in the details pane
_CATCH_UP = 5  # bounded reads at most when attaching to a running run
_WORKING = {"cancel": "cancelling…", "retry": "retrying…"}  # shown while a button's action runs


class RunMonitor(Following):
    """A live view of one run: ``run.monitor()`` (see `Run.monitor`).

    In a Jupyter kernel it is an ipywidgets view that displays itself in the cell that
    creates it (``m = run.monitor()`` too; once, also when it is the cell's last value; a
    later ``display(m)`` or ``m`` shows it again) and follows the run on the kernel's
    asyncio loop, without blocking the cell; its text form (``text/plain``) is fixed, so
    checked notebook outputs do not change. Closing its root widget from either side stops
    the loop, as `close` does. Elsewhere it prints a text view when created;
    ``print(monitor)`` prints a fresh one after `refresh`.

    `refresh` does one read-and-update step now; `counts` and `done` describe what the last
    step showed; `close` stops following and closes the widgets. The monitor reads Redis
    through a client of its own without retries: a lost connection shows "connection lost,
    retrying" and the view resumes when Redis is back, never raising into the notebook.
    """

    def __init__(self, run: Run, *, interval: float = 0.5) -> None:
        if (isinstance(interval, bool) or not isinstance(interval, int | float)
                or not 0 < interval <= 3600):
            raise InvalidOptionError("interval", interval, "a number of seconds > 0, e.g. 0.5")
        from ironforge_nb.orchestrator.run import Run

        self.run = run
        self.interval = float(interval)
        self._config = watching_config(run.config)
        # stream entries stay raw lists (no dict per entry: a busy run appends thousands of
        # events per second); the client is the monitor's own, so no one else sees this
        self._config.client().set_response_callback("XRANGE", _raw)
        self._tracker = RunTracker(Run(run.id, self._config, secret=run._secret))
        try:
            dag = self._tracker.load()
        except BaseException:
            self._config.close()
            raise
        self._lock = threading.Lock()
        self._painter = GraphPainter(dag, self._tracker.statuses())
        self._applied = -1  # painter.draws last put on screen
        self._message: str | None = None
        self._counts: dict[str, int] = {}
        self._done = False
        self._closed = False
        self._busy = False  # a button's action is running
        self._actions: set[asyncio.Task[None]] = set()  # (a reference keeps a task alive)
        self._task: asyncio.Task[None] | None = None
        title = (f"run <code>{escape(run.id)}</code> · pipeline "
                 f"<b>{escape(str(self._tracker.info.get('name')))}</b>")
        self._view = MonitorView(title, {"cancel": self._cancel, "retry": self._retry},
                                 self._details)
        self._close_with(self._view.root)
        self._step(initial=True)
        self._draw()
        self._loop = kernel_loop()
        self._shown_in: str | None = None  # the cell that displayed the view at creation
        if self._loop is not None:
            self._start()
            self._display_now()
        else:
            print(text_view(self._tracker))

    # ------------------------------------------------------------------ public

    def refresh(self) -> None:
        """One step now: read what changed in Redis and update the view (and the graph, at
        most once a second). Does nothing once closed."""
        if self._closed:
            return
        self._step()
        self._draw()

    @property
    def counts(self) -> dict[str, int]:
        """Tasks by status as last shown (``{"completed": 5, "active": 2}``), statuses
        without tasks left out, in life-cycle order."""
        return dict(self._counts)

    @property
    def done(self) -> bool:
        """True once the run has ended (or was deleted) and the last refresh showed it."""
        return self._done

    def close(self) -> None:
        """Stop following (the loop task is cancelled) and close the widgets. Closing the
        view's root widget (``widget.close()``, or the front end closing its comm) does the
        same."""
        if self._shut:
            return
        self._shut = True
        self._stop_following()
        for task in list(self._actions):  # the action itself ends in its thread
            task.cancel()
        for model in self._view.models():
            model.close()
        self._painter.close()
        self._config.close()

    def __repr__(self) -> str:
        return (f"RunMonitor(run {self.run.id!r}, pipeline "
                f"{self._tracker.info.get('name')!r})")

    def __str__(self) -> str:
        return text_view(self._tracker)

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, Any]:
        """The widget view in a kernel (its text part fixed: ``repr``); text elsewhere."""
        if self._loop is None or self._closed:
            return {"text/plain": repr(self)}
        bundle: dict[str, Any] = self._view.root._repr_mimebundle_()
        bundle["text/plain"] = repr(self)
        return bundle

    def _ipython_display_(self) -> None:
        """How IPython shows the monitor (``display(m)``, or a cell's last value): the view,
        except in the cell that created it, where it is shown already."""
        from IPython import get_ipython
        from IPython.display import display

        if self._shown_in is not None and _cell(get_ipython()) == self._shown_in:
            return
        display(self._repr_mimebundle_(), raw=True)  # type: ignore[no-untyped-call]

    def _display_now(self) -> None:
        """Show the view in the cell that creates the monitor (``m = run.monitor()`` shows it
        too, not only a bare ``run.monitor()``); remembered, so that the cell's last value
        does not show it twice."""
        from IPython import get_ipython
        from IPython.display import display

        shell = get_ipython()
        if shell is None:
            return
        display(self._repr_mimebundle_(), raw=True)  # type: ignore[no-untyped-call]
        self._shown_in = _cell(shell)


    # ------------------------------------------------------------------ the loop

    def _start(self) -> None:
        if self._loop is not None and not self.following and not self._closed:
            self._task = self._loop.create_task(self._follow())

    async def _follow(self) -> None:
        loop = asyncio.get_running_loop()
        while not self._closed:
            try:
                await loop.run_in_executor(None, self._step)
                if self._closed:
                    return
                self._draw()
            except Exception as exc:  # shown in the view, never raised into the notebook
                self._message = f"monitor error: {type(exc).__name__}: {exc}"
                with contextlib.suppress(Exception):
                    self._draw()
            if self._done:
                return
            await asyncio.sleep(0 if self._tracker.behind else self.interval)

    def _step(self, initial: bool = False) -> None:
        """The data half: poll, and start a graph layout when one is due (any thread); the
        picture of an ended run is drawn here. At ``initial`` (the run was just read) a
        running run is polled until it has caught up (a few bounded reads at most): the
        events of the time attaching took are read before the stream's cap could trim them
        away, which would cost a reread of every status."""
        with self._lock:
            tracker = self._tracker
            if not initial:
                tracker.poll()
            elif not tracker.ended:
                for _ in range(_CATCH_UP):
                    tracker.poll()
                    if not tracker.behind:
                        break
            if tracker.lost is None:
                final = tracker.ended and not tracker.behind
                self._painter.update(tracker.statuses, tracker.version, final)

    def _draw(self) -> None:
        """The drawing half (the kernel's thread)."""
        with self._lock:
            tracker = self._tracker
            graph = None
            self._painter.collect()
            if self._painter.draws != self._applied:
                graph, self._applied = self._painter.html, self._painter.draws
            message = (tracker.lost or ("this run was deleted" if tracker.gone else None)
                       or (self._message if self._busy else None)
                       or ("catching up with the run's events…" if tracker.behind else None)
                       or self._message)
            self._view.update(tracker, graph, message)
            order = [*STATUS_ORDER, *sorted(set(tracker.counts) - set(STATUS_ORDER))]
            self._counts = {s: tracker.counts[s] for s in order if tracker.counts.get(s)}
            self._done = tracker.gone or (tracker.ended and not tracker.behind
                                          and tracker.lost is None)

    # ------------------------------------------------------------------ buttons

    def _cancel(self) -> None:
        self._act("cancel", lambda: f"cancelled {self.run.cancel():,} tasks")

    def _retry(self) -> None:
        self._act("retry", lambda: f"{self.run.retry_failed():,} tasks will run again")

    def _act(self, name: str, action: Callable[[], str]) -> None:
        """Run a button's action. On a kernel's loop it runs in the loop's thread pool (a
        100,000-task cancel takes seconds of Redis scripts, which would freeze the kernel):
        the view says "cancelling…" with both buttons disabled until it is done. Without a
        loop (tests, scripts) it runs here, and the view is refreshed after."""
        if self._busy or self._closed:
            return
        if self._loop is None:
            self._message = self._outcome(name, action)
            self._after(name)
            self.refresh()
            return
        self._busy = self._view.busy = True
        self._message = _WORKING[name]
        with contextlib.suppress(Exception):
            self._draw()
        self._actions.add(self._loop.create_task(self._act_off_loop(name, action)))

    async def _act_off_loop(self, name: str, action: Callable[[], str]) -> None:
        try:
            message = await asyncio.get_running_loop().run_in_executor(
                None, self._outcome, name, action)
        finally:
            self._busy = self._view.busy = False
            self._actions.discard(asyncio.current_task())
        if self._closed:
            return
        self._message = message
        self._after(name)
        with contextlib.suppress(Exception):
            self._draw()
        self._start()  # a retried run is followed again; a cancelled one to its end

    def _after(self, name: str) -> None:
        if name == "retry":
            self._done = False

    @staticmethod
    def _outcome(name: str, action: Callable[[], str]) -> str:
        import redis

        try:
            return action()
        except (IronForgeError, redis.exceptions.RedisError) as exc:
            return f"{name} failed: {exc}"

    def _details(self, task: str | None) -> str:
        """HTML of the details pane for ``task``: its state, full error and logs."""
        record = self._tracker.tasks.get(task) if task is not None else None
        if record is None:
            return ""
        state = record.state
        facts = [f"<b><code>{escape(record.name)}</code></b> {escape(record.status)}"]
        if state is not None:
            facts.append(f"job <code>{escape(state.job_id)}</code> on queue "
                         f"<code>{escape(state.queue)}</code>, attempt "
                         f"{state.attempts}/{state.max_attempts}, {state.stalls} stalls"
                         + (f", {duration(state.elapsed)}" if state.elapsed is not None
                            else "") + (f", worker {escape(state.worker)}"
                                        if state.worker else ""))
            if state.traceback:
                facts.append(f"<pre>{escape(state.traceback)}</pre>")
        facts.append(self._logs(record.name))
        return "<br>".join(f for f in facts if f)

    def _logs(self, task: str) -> str:
        """What the task printed or logged in its latest attempt (`Run.logs`), last lines."""
        try:
            text = self.run.logs(task)
        except Exception as exc:  # the pane says why, the notebook goes on
            return f"<i>output unavailable: {escape(str(exc))}</i>"
        if not text:
            return ""
        lines = text.splitlines()
        head = (f"output (last {_LOG_LINES} of {len(lines)} lines):" if len(lines) > _LOG_LINES
                else "output:")
        return f"{head}<pre>{escape(chr(10).join(lines[-_LOG_LINES:]))}</pre>"


def _cell(shell: Any) -> str | None:
    """Which execution is running now: its request's message id (the execution count where
    the shell has no parent header)."""
    if shell is None:
        return None
    header = getattr(shell, "parent_header", None)
    msg_id = header.get("msg_id") if isinstance(header, dict) else None
    return str(msg_id or shell.execution_count)


def _raw(response: Any, **_options: Any) -> Any:
    return response
