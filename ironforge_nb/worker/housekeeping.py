"""A worker's periodic chores (part of `Worker`, see `core.py`).

Every turn of the loop: time out a task that outlived its limit, stop a cancelled job's task
that started anyway, heartbeat each held lease every third of its length (a job that moved on
is dropped), hand back prefetched jobs stuck behind a long task; every `REAP_INTERVAL`, reap
the expired leases of the worker's queues (through `Queue.reap_if_due`, whose schedule is per
process: one reaper per process, however many queue handles it holds); every
`BEAT_INTERVAL`, refresh the worker's registry entry, replace the webhook dispatcher process if
it died, and check that its parent process (if watched) is still there; every `GONE_INTERVAL`,
end at once the leases of workers whose registry entry went stale (`STALE_AFTER`: killed, or
cut off from Redis), so that their jobs do not wait out their leases (30 s by default).
`_next_wakeup` says when the next of these, or a claim, falls due.
"""

from __future__ import annotations

import os
import time

from ironforge_nb.queue import Queue
from ironforge_nb.queue.queue import REAP_INTERVAL
from ironforge_nb.worker.core import MOVED_ON, log
from ironforge_nb.worker.outcomes import COMPLETE_DELAY
from ironforge_nb.worker.registry import BEAT_INTERVAL, STALE_AFTER, gone_workers
from ironforge_nb.worker.slots import RETURN_AFTER, REVOKE_WAIT, Task
from ironforge_nb.worker.stopping import Stopping

__all__ = ["GONE_INTERVAL", "Housekeeping"]

GONE_INTERVAL = 5.0  # seconds between two looks for gone workers (one HGETALL of the registry)


class Housekeeping(Stopping):
    """Timeouts, heartbeats, reaping and the registry beat, and when each falls due."""

    def _periodic(self, now: float) -> None:
        self._flush_deferred(now)
        for slot in self._slots:
            head = slot.head
            if head is not None and head.deadline is not None and now >= head.deadline:
                self._time_out(slot)
            if slot.stale_head(now):  # a cancelled job's task got started: stop it
                self._settle(slot, self._drain(slot))
                if slot.stale_head(time.monotonic()):
                    self._respawn(slot, drop_head=True)
            for task in list(slot.tasks):
                if now >= task.next_beat and not task.dropped:
                    self._heartbeat(task, now)
            if stuck := slot.waiting(now):
                self._hand_back(slot, stuck)
        if now >= self._next_reap:
            self._next_reap = now + REAP_INTERVAL
            for queue in self._queues.values():
                queue.reap_if_due(now)
        if now >= self._next_beat:
            self._next_beat = now + BEAT_INTERVAL
            self._registry.beat(self.jobs_done, self.running)
            self._check_dispatcher()
            if now >= self._next_gone:
                self._next_gone = now + GONE_INTERVAL
                self._release_gone()
            if self._parent_pid is not None and os.getppid() != self._parent_pid:
                log.warning("worker %s: parent %d is gone", self.name, self._parent_pid)
                self.stop()

    def _release_gone(self) -> None:
        """End the leases of the workers whose registry entry went stale, in every queue
        they served, then forget them (a worker that comes back registers again)."""
        reason = f"worker gone: no sign of life for {STALE_AFTER:g} s"
        for info in gone_workers(self.config):
            if info.name == self.name:
                continue
            ended = 0
            for name in info.queues:
                queue = self._queues.get(name)
                if queue is None:  # a queue this worker does not serve
                    queue = Queue(name, self.config)
                ended += queue.release_worker(info.name, reason)
            self._registry.forget(info.name)
            log.warning("worker %s: worker %s is gone; %d of its leases ended", self.name,
                        info.name, ended)

    def _next_wakeup(self, now: float) -> float:
        due = [self._next_reap, self._next_beat]
        for slot in self._slots:
            if slot.deferred:
                due.append(slot.deferred_since + COMPLETE_DELAY)
            due.extend(t.next_beat for t in slot.tasks)
            head = slot.head
            if head is not None and head.deadline is not None:
                due.append(head.deadline)
            if head is not None and head.dropped and head.started is not None:
                due.append(head.started + REVOKE_WAIT if head.revoked else now)
            if head is not None and head.started is not None and any(
                    not t.dropped for t in list(slot.tasks)[1:]):
                due.append(head.started + RETURN_AFTER)
        if self._grace_deadline is not None:
            due.append(self._grace_deadline)
        elif self._want_claim:
            due.append(now)
        elif self._waker.arm_at is not None:
            due.append(self._waker.arm_at)
        return max(0.0, min(due) - now)

    def _heartbeat(self, task: Task, now: float) -> None:
        task.next_beat = now + self.lease / 3
        try:
            task.queue.heartbeat(task.lease)
        except MOVED_ON as exc:  # expired, cancelled or deleted: stop working on it
            log.warning("worker %s: stopping job %s: %s", self.name, task.lease.job_id, exc)
            task.dropped = True
            for slot in self._slots:
                if slot.head is task:  # running: kill it
                    self._respawn(slot, drop_head=True)
                elif task in slot.tasks:  # prefetched: must not start (outcome ignored)
                    self._revoke(slot, task)
