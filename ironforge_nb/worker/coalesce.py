"""`Coalescer`: the timing shared by writers that coalesce a task's updates into a few writes.

A subclass keeps what is pending and writes it in `flush`; it calls `_schedule` (with its lock
held) when something is pending and the interval since the last write (``_last``, which
`flush` sets) has not passed. A timer thread then calls `flush` once it has; `close` cancels
the timer and writes what is left. Used by progress reporting (`context.Reporter`) and output
capture (`logs.Capture`).
"""

from __future__ import annotations

import threading
import time

__all__ = ["Coalescer"]


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
        with self._lock:
            self._timer = None
        self._timer_flush()

    def _timer_flush(self) -> None:
        """The timer's write (subclasses may catch what a thread cannot raise)."""
        self.flush()
