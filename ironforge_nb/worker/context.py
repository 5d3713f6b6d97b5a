"""Progress reporting from inside a task: ``ifn.progress(0.4, "reading")`` and ``ifn.track(rows)``.

While a worker runs a task, its executor process binds the task's lease (`start_reporting`);
every call then updates the job's meta hash through `Queue.progress` (fenced by the lease
token), so monitors see it. The `Reporter` is made by the first call: a task that reports
nothing costs two assignments and a lock per run (`stop_reporting`), not a reporter. Updates
are coalesced to at most one write per `INTERVAL` seconds: the newest value wins, and the last
one is always written (a timer writes a pending value once the interval has passed, and the
executor flushes when the task ends).

Outside a task (a notebook calling the function directly, a unit test) both are harmless: the
value is still validated, then dropped, and `track` simply yields the items. A write refused
because the job moved on (lease lost, job cancelled) is ignored here: the worker notices on its
next heartbeat and stops the task. Redis failures are not swallowed: a synchronous write raises
into the task, and a failed timer write is raised by the task's next progress call.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterable, Iterator, Sized
from typing import TYPE_CHECKING, TypeVar

from ironforge_nb.errors import InvalidOptionError, QueueError
from ironforge_nb.worker.coalesce import Coalescer, PerTask

if TYPE_CHECKING:
    from ironforge_nb.queue import Lease, Queue

__all__ = ["INTERVAL", "Reporter", "progress", "reporting", "start_reporting", "stop_reporting",
           "track"]

INTERVAL = 0.25  # seconds between two progress writes of one task, at least
T = TypeVar("T")
Send = Callable[[float, "str | None"], None]


class Reporter(Coalescer):
    """Coalesces progress updates of one task into a few writes per second (thread-safe)."""

    def __init__(self, send: Send, interval: float = INTERVAL) -> None:
        super().__init__(interval)
        self._send = send
        self._pending: tuple[float, str | None] | None = None
        self._error: BaseException | None = None

    def report(self, value: float, message: str | None) -> None:
        """Record ``value``/``message``; written now if the interval has passed, else soon."""
        with self._lock:
            if self._error is not None:
                error, self._error = self._error, None
                raise error
            if self._pending is not None and message is None:
                message = self._pending[1]  # a value-only update keeps the pending message
            self._pending = (value, message)
            wait = self._wait()
            if wait > 0:
                self._schedule(wait)
                return
        self.flush()

    def _has_pending(self) -> bool:
        return self._pending is not None

    def flush(self) -> None:
        """Write the pending update, if any, now."""
        with self._lock:
            item, self._pending = self._pending, None
            if item is None:
                return
            self._last = time.monotonic()
            with contextlib.suppress(QueueError):  # lease lost / cancelled: the worker stops us
                self._send(*item)

    def _timer_flush(self) -> None:
        try:
            self.flush()
        except Exception as exc:  # handed to the task's next call: a thread cannot raise
            with self._lock:
                self._error = exc


def _make_reporter(queue: Queue, lease: Lease, interval: float) -> Reporter:
    def send(value: float, message: str | None) -> None:
        queue.progress(lease, value, message)

    return Reporter(send, interval)


_reporters: PerTask[Reporter] = PerTask(_make_reporter)  # the running task's, on first report


def start_reporting(queue: Queue, lease: Lease, interval: float = INTERVAL) -> None:
    """Bind progress reports to ``lease``'s job from now on (executor side, one task). Plain
    functions rather than a context manager: this runs for every task, and a generator-based
    ``with`` and a reporter per task would cost more than the rest of it (the `Reporter` is
    made by the first report, `coalesce.PerTask`)."""
    _reporters.start(queue, lease, interval)


def stop_reporting() -> None:
    """End the binding; the last pending update, if any, is written now."""
    _reporters.stop()


@contextlib.contextmanager
def reporting(queue: Queue, lease: Lease, interval: float = INTERVAL) -> Iterator[None]:
    """`start_reporting` ... `stop_reporting` around a block."""
    start_reporting(queue, lease, interval)
    try:
        yield
    finally:
        stop_reporting()


def progress(value: float, message: str | None = None) -> None:
    """Report the running task's progress (0 to 1) and an optional message.

    Coalesced to a few writes per second; a no-op outside a task (see the module docstring).
    Raises `InvalidOptionError` for a value outside [0, 1] or a message that is not a str.
    """
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
        raise InvalidOptionError("value", value, "a number from 0 to 1, e.g. 0.4 for 40%")
    if message is not None and not isinstance(message, str):
        raise InvalidOptionError("message", message, "a str or None")
    reporter = _reporters.get()
    if reporter is not None:
        reporter.report(float(value), message)


def track(iterable: Iterable[T], total: int | None = None,
          message: str | None = None) -> Iterator[T]:
    """Yield the items of ``iterable``, reporting ``done/total`` as the task's progress.

    ``total`` defaults to ``len(iterable)`` when it has one; with no total the progress stays at
    0 (the message counts the items) until the iterable is exhausted, then reads 1.
    ``message`` prefixes the count: ``"reading files: 3/10"``. Outside a task, a plain loop.
    """
    if total is None and isinstance(iterable, Sized):
        total = len(iterable)
    if total is not None and (isinstance(total, bool) or not isinstance(total, int) or total < 0):
        raise InvalidOptionError("total", total, "an int >= 0 or None")
    if _reporters.task is None:
        yield from iterable
        return
    prefix = f"{message}: " if message else ""
    done = 0
    progress(0.0, f"{prefix}0/{total}" if total is not None else f"{prefix}0")
    for item in iterable:
        yield item
        done += 1
        if total:
            progress(min(done / total, 1.0), f"{prefix}{done}/{total}")
        else:
            progress(0.0, f"{prefix}{done}")
    progress(1.0, f"{prefix}{done}/{total}" if total is not None else f"{prefix}{done}")
