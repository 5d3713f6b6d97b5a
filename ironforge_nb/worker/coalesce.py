"""`Coalescer`: the timing shared by writers that coalesce a task's updates into a few writes.

A subclass keeps what is pending and writes it in `flush`; it calls `_schedule` (with its lock
held) when something is pending and the interval since the last write (``_last``, which
`flush` sets) has not passed. A timer thread then calls `flush` once it has; `close` cancels
the timer and writes what is left. Used by progress reporting (`context.Reporter`) and output
capture (`logs.Capture`), each through a `PerTask`: the running task's coalescer, made by its
first update, so that a task that reports and prints nothing pays for neither.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any, Generic, TypeVar

__all__ = ["Coalescer", "PerTask"]

C = TypeVar("C", bound="Coalescer")


class Coalescer:
    """At most one write per ``interval`` seconds, from a timer thread, and a last one at
    `close` (thread-safe; subclasses hold ``_lock`` around their state)."""

    def __init__(self, interval: float) -> None:
        self._interval = interval
        self._lock = threading.Lock()
        self._last = float("-inf")  # monotonic time of the last write
        self._timer: threading.Timer | None = None
        self._closed = False

    def flush(self) -> None:
        """Write what is pending now (subclasses)."""
        raise NotImplementedError

    def _has_pending(self) -> bool:
        """Whether something waits for a write (subclasses; call with ``_lock`` held)."""
        raise NotImplementedError

    def _wait(self) -> float:
        """Seconds until the next write is allowed (<= 0: now)."""
        return self._last + self._interval - time.monotonic()

    def _schedule(self, wait: float) -> None:
        """Have the timer thread flush in ``wait`` s, unless it will already or we are closed
        (call with ``_lock`` held)."""
        if self._timer is None and not self._closed:
            self._timer = threading.Timer(max(0.0, wait), self._flush_later)
            self._timer.daemon = True
            self._timer.start()

    def close(self) -> None:
        """Stop the timer and write what is pending (the task has ended)."""
        with self._lock:
            self._closed = True
            timer, self._timer = self._timer, None
        if timer is not None:
            timer.cancel()
        self.flush()

    def _flush_later(self) -> None:
        # The timer counts as scheduled until its write is done: a write arriving before the
        # flush took the lock and set ``_last`` would otherwise see no timer and the old
        # ``_last``, and schedule a second write at once. What arrived during the write is
        # scheduled now, one interval after it.
        self._timer_flush()
        with self._lock:
            self._timer = None
            if self._has_pending():
                self._schedule(self._wait())

    def _timer_flush(self) -> None:
        """The timer's write (subclasses may catch what a thread cannot raise)."""
        self.flush()


class PerTask(Generic[C]):
    """The coalescer of the running task (executor side), made by ``make(*task)`` on first use
    (`get`), ``task`` being what `start` was given (its queue, its lease...): a task that
    never uses it costs an assignment in `start` and a lock in `stop` (plain methods, not a
    context manager: they run for every task)."""

    def __init__(self, make: Callable[..., C]) -> None:
        self._make = make
        self.task: tuple[Any, ...] | None = None  # what `start` was given, while a task runs
        self._current: C | None = None
        self._lock = threading.Lock()  # guards making and dropping _current

    def start(self, *task: Any) -> None:
        """A task begins: `get` makes its coalescer from now on."""
        self.task = task

    def stop(self) -> None:
        """The task ended: its coalescer, if made, writes what is pending (`close`)."""
        with self._lock:
            current, self.task, self._current = self._current, None, None
        if current is not None:
            current.close()

    def get(self) -> C | None:
        """The running task's coalescer (made now if need be), or None between tasks."""
        current = self._current
        if current is None and self.task is not None:
            with self._lock:
                if self._current is None and self.task is not None:
                    self._current = self._make(*self.task)
                current = self._current
        return current
