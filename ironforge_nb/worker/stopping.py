"""Stopping a worker gracefully (part of `Worker`, see `core.py`).

A stop request (SIGTERM, SIGINT or `Worker.stop`) writes to a self-pipe that the loop waits
on. The first one starts the grace period: claim nothing more, hand prefetched jobs back at
once, let running tasks finish within ``grace`` seconds. Past the grace, or on a second
request, the executors still busy are killed and their jobs go back to the queue, so that
other workers take them at once instead of waiting for the leases to expire: a job whose
code had begun (its lease started, see `slots.py`) as a stall, since it ran and will run
again; one its executor had not taken up yet, for free (`Queue.stall` tells them apart).
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
from typing import Any

from ironforge_nb.worker.core import MOVED_ON, REDIS_DOWN, log
from ironforge_nb.worker.outcomes import Outcomes

__all__ = ["Stopping"]


class Stopping(Outcomes):
    """Stop requests, the grace period, and the final shutdown of the executors."""

    def stop(self) -> None:
        """Ask the worker to stop (safe from a signal handler or another thread).

        The first request lets running tasks finish within the grace period; a second one
        hands them back to the queue at once.
        """
        self._stop_requests += 1
        with contextlib.suppress(OSError):
            os.write(self._stop_w, b"x")

    def _drain_stop_pipe(self) -> None:
        with contextlib.suppress(BlockingIOError):
            os.read(self._stop_r, 1024)

    def _begin_stop(self, now: float) -> None:
        self._grace_deadline = now + self.grace
        self._flush_deferred(now)  # deferred successes are completed before anything else
        self._waker.close()
        for slot in self._slots:  # prefetched jobs go back now; running ones get the grace
            self._hand_back(slot, [t for t in list(slot.tasks)[1:] if not t.dropped])
        log.info("worker %s stopping: %d running task(s), grace %g s", self.name,
                 self.running, self.grace)

    def _release_running(self) -> None:
        """Kill the executors still busy and hand their jobs back to the queue now (a
        started one as a stall, a held one for free)."""
        reason = f"the worker stopped and killed the task ({self.grace:g} s grace)"
        for slot in self._slots:
            if not slot.tasks:
                continue
            slot.proc.kill()
            tasks, slot.tasks = list(slot.tasks), type(slot.tasks)()
            for task in (t for t in tasks if not t.dropped):
                try:
                    task.queue.stall(task.lease, reason)
                    log.info("worker %s: job %s handed back", self.name, task.lease.job_id)
                except MOVED_ON as exc:
                    log.warning("worker %s: job %s not handed back: %s", self.name,
                                task.lease.job_id, exc)

    def _shutdown(self) -> None:
        for slot in self._slots:
            if slot.tasks:
                slot.proc.kill()  # only after an unexpected error: its leases will expire
            else:
                slot.proc.stop()
        with contextlib.suppress(Exception):
            self._waker.close()
        if self._hooks is not None:
            self._hooks.stop()
        with contextlib.suppress(*REDIS_DOWN):
            self._registry.remove()
        for fd in (self._stop_r, self._stop_w):
            with contextlib.suppress(OSError):
                os.close(fd)
        log.info("worker %s stopped after %d job(s)", self.name, self.jobs_done)

    def _install_signals(self) -> dict[int, Any]:
        if threading.current_thread() is not threading.main_thread():
            return {}
        previous: dict[int, Any] = {}
        for sig in (signal.SIGTERM, signal.SIGINT):
            previous[sig] = signal.signal(sig, lambda signum, frame: self.stop())
        return previous
