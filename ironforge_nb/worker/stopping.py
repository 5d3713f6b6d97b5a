"""`Stopper`: stopping a worker gracefully.

A stop request (SIGTERM, SIGINT or `Worker.stop`) writes to a self-pipe that the loop waits
on. The first one starts the grace period: claim nothing more, hand prefetched jobs back at
once, let running tasks finish within ``grace`` seconds. Past the grace, or on a second
request, the executors still busy are killed and their jobs go back to the queue, so that
other workers take them at once instead of waiting for the leases to expire: a job whose
code had begun (its lease started, see `slots.py`) as a stall, since it ran and will run
again; one its executor had not taken up yet, for free (`Queue.stall` tells them apart).

The stopper owns the pipe, the count of requests and the grace deadline; what stopping means
for the executors and the jobs is asked of the `ExecutorPool` (`pool.py`), the `Settler`
(`settling.py`) and the `Waker` (`wake.py`).
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import threading
from typing import Any

from ironforge_nb.worker.pool import ExecutorPool
from ironforge_nb.worker.settling import Settler
from ironforge_nb.worker.wake import Waker

__all__ = ["Stopper"]

log = logging.getLogger("ironforge_nb.worker")


class Stopper:
    """Stop requests, the grace period (``grace`` seconds), and handing back what is left."""

    def __init__(self, name: str, grace: float, pool: ExecutorPool, settler: Settler,
                 waker: Waker) -> None:
        self.name = name
        self.grace = grace
        self.deadline: float | None = None  # monotonic end of the grace; set once stopping
        self._pool = pool
        self._settler = settler
        self._waker = waker
        self._requests = 0
        self._read, self._write = os.pipe()
        os.set_blocking(self._write, False)
        self._previous: dict[int, Any] = {}

    def stop(self) -> None:
        """Ask the worker to stop (safe from a signal handler or another thread).

        The first request lets running tasks finish within the grace period; a second one
        hands them back to the queue at once.
        """
        self._requests += 1
        with contextlib.suppress(OSError):
            os.write(self._write, b"x")

    def fileno(self) -> int:
        """The pipe a stop request writes to: the worker's loop waits on it."""
        return self._read

    def drain(self) -> None:
        """Empty the pipe (the requests are counted by `stop`)."""
        with contextlib.suppress(BlockingIOError):
            os.read(self._read, 1024)

    def serving(self, now: float) -> bool:
        """Start the grace period on the first request; False once the worker has nothing
        left to do: no task left, or the grace is over (the tasks still held are handed
        back) or a second request came."""
        if self._requests and self.deadline is None:
            self._begin(now)
        if self.deadline is None:
            return True
        if self._pool.running == 0:
            return False
        if now >= self.deadline or self._requests > 1:
            self._release_running()
            return False
        return True

    def _begin(self, now: float) -> None:
        self.deadline = now + self.grace
        self._settler.wind_down(now)  # deferred successes are completed before anything else
        self._waker.close()
        for slot in self._pool.slots:  # prefetched jobs go back now; running ones get the grace
            self._settler.hand_back(slot, [t for t in list(slot.tasks)[1:] if not t.dropped])
        log.info("worker %s stopping: %d running task(s), grace %g s", self.name,
                 self._pool.running, self.grace)

    def _release_running(self) -> None:
        """Kill the executors still busy and hand their jobs back to the queue now (a
        started one as a stall, a held one for free)."""
        reason = f"the worker stopped and killed the task ({self.grace:g} s grace)"
        for slot in self._pool.slots:
            if slot.tasks:
                self._settler.release_killed(slot, reason)

    def install_signals(self) -> None:
        """SIGTERM and SIGINT request a stop (in the main thread only; `close` restores the
        previous handlers)."""
        if threading.current_thread() is not threading.main_thread():
            return
        for sig in (signal.SIGTERM, signal.SIGINT):
            self._previous[sig] = signal.signal(sig, lambda signum, frame: self.stop())

    def close(self) -> None:
        """Close the pipe, then give the signals back to their previous handlers."""
        for fd in (self._read, self._write):
            with contextlib.suppress(OSError):
                os.close(fd)
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous = {}
