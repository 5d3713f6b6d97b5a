"""`Housekeeper`: a worker's periodic chores, and when each falls due.

Every turn of the loop (`periodic`): time out a task that outlived its limit, stop a cancelled
job's task that started anyway, heartbeat each held lease every third of its length (a job that
moved on is dropped), hand back prefetched jobs stuck behind a long task; every
`REAP_INTERVAL`, reap the expired leases of the worker's queues (through `Queue.reap_if_due`,
whose schedule is per process: one reaper per process, however many queue handles it holds);
every `BEAT_INTERVAL`, refresh the worker's registry entry, replace the webhook dispatcher
process if it died, and check that its parent process (if watched) is still there; every
`GONE_INTERVAL`, end at once the leases of workers whose registry entry went stale
(`STALE_AFTER`: killed, or cut off from Redis), so that their jobs do not wait out their
leases (30 s by default), and take one bounded step of the namespace's run deletions
(`RunTransitions.sweep`), which also removes what a client that died in the middle of a
staged submit left (orchestrator/submit.py). `next_due` says when the next of these falls due.

The housekeeper owns the registry entry, the webhook dispatcher process and the schedule of
the chores; the tasks it times out, stops or hands back are recorded by the `Settler`
(`settling.py`), the executors it replaces belong to the `ExecutorPool` (`pool.py`).
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import os
import time
from collections.abc import Callable, Mapping

from ironforge_nb.errors import JobStateError
from ironforge_nb.orchestrator.run_transitions import RunTransitions
from ironforge_nb.queue import Queue, RedisConfig
from ironforge_nb.queue.queue import REAP_INTERVAL
from ironforge_nb.status import JobStatus
from ironforge_nb.worker.executor import REDIS_DOWN
from ironforge_nb.worker.pool import ExecutorPool
from ironforge_nb.worker.registry import BEAT_INTERVAL, STALE_AFTER, Registry, gone_workers
from ironforge_nb.worker.settling import MOVED_ON, Settler
from ironforge_nb.worker.slots import RETURN_AFTER, REVOKE_WAIT, Task
from ironforge_nb.worker.webhooks import DispatcherProcess

__all__ = ["GONE_INTERVAL", "Housekeeper", "start_dispatcher"]

log = logging.getLogger("ironforge_nb.worker")

GONE_INTERVAL = 5.0  # seconds between two looks for gone workers (one HGETALL of the registry)


def start_dispatcher(config: RedisConfig, worker: str) -> DispatcherProcess:
    """Fork the webhook dispatcher process of the worker named ``worker``."""
    return DispatcherProcess(config, f"{worker}.webhooks").start()


class Housekeeper:
    """The chores of the worker ``name`` serving ``queues`` with ``pool``'s executors.

    ``lease`` is the lease length in seconds (heartbeats every third of it), ``hooks`` the
    webhook dispatcher process already started (None: the worker runs none), ``parent_pid``
    a process whose end calls ``stop``.
    """

    def __init__(self, config: RedisConfig, name: str, queues: Mapping[str, Queue], *,
                 pool: ExecutorPool, settler: Settler, lease: float,
                 hooks: DispatcherProcess | None, parent_pid: int | None,
                 stop: Callable[[], None]) -> None:
        self.config = config
        self.name = name
        self._queues = queues
        self._pool = pool
        self._settler = settler
        self._beat_every = lease / 3
        self._hooks = hooks
        self._parent_pid = parent_pid
        self._stop = stop
        self._registry = Registry(config, name, list(queues), pool.concurrency)
        self._runs = RunTransitions(config)
        self._next_reap = self._next_beat = 0.0  # monotonic
        self._next_gone = time.monotonic() + GONE_INTERVAL

    def periodic(self, now: float) -> None:
        """Do the chores due at ``now`` (monotonic)."""
        pool, settler = self._pool, self._settler
        for slot in pool.slots:
            head = slot.head
            if head is not None and head.deadline is not None and now >= head.deadline:
                settler.time_out(slot)
            if slot.stale_head(now):  # a cancelled job's task got started: stop it
                settler.settle(slot, pool.drain(slot))
                if slot.stale_head(time.monotonic()):
                    pool.respawn(slot, drop_head=True)
            if now >= slot.beat_due:
                for task in list(slot.tasks):
                    if now >= task.next_beat and not task.dropped:
                        self._heartbeat(task, now)
                slot.beat_due = min((t.next_beat for t in slot.tasks if not t.dropped),
                                    default=float("inf"))
            if stuck := slot.waiting(now):
                settler.hand_back(slot, stuck)
        if now >= self._next_reap:
            self._next_reap = now + REAP_INTERVAL
            for queue in self._queues.values():
                queue.reap_if_due(now)
        if now >= self._next_beat:
            self._next_beat = now + BEAT_INTERVAL
            self._registry.beat(settler.jobs_done, pool.running)
            self.check_dispatcher()
            if now >= self._next_gone:
                self._next_gone = now + GONE_INTERVAL
                self._release_gone()
                self._runs.sweep()
            if self._parent_pid is not None and os.getppid() != self._parent_pid:
                log.warning("worker %s: parent %d is gone", self.name, self._parent_pid)
                self._stop()

    def next_due(self, now: float) -> float:
        """When the next chore falls due (monotonic), ``now`` if one is due already."""
        due = [self._next_reap, self._next_beat]
        for slot in self._pool.slots:
            due.append(slot.beat_due)
            head = slot.head
            if head is not None and head.deadline is not None:
                due.append(head.deadline)
            if head is not None and head.dropped and head.started is not None:
                due.append(head.started + REVOKE_WAIT if head.revoked else now)
            if head is not None and head.started is not None and any(
                    not t.dropped for t in itertools.islice(slot.tasks, 1, None)):
                due.append(head.started + RETURN_AFTER)
        return min(due)

    def check_dispatcher(self) -> None:
        """Start another webhook dispatcher process if the worker's died."""
        if self._hooks is None or self._hooks.alive():
            return
        log.warning("worker %s: webhook dispatcher died; starting another", self.name)
        self._hooks = start_dispatcher(self.config, self.name)

    def close(self) -> None:
        """Stop the webhook dispatcher and remove the worker's registry entry."""
        if self._hooks is not None:
            self._hooks.stop()
        with contextlib.suppress(*REDIS_DOWN):
            self._registry.remove()

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

    def _heartbeat(self, task: Task, now: float) -> None:
        task.next_beat = now + self._beat_every
        try:
            task.queue.heartbeat(task.lease)
        except MOVED_ON as exc:  # expired, cancelled or deleted: stop working on it
            if (isinstance(exc, JobStateError) and exc.status == JobStatus.COMPLETED.value
                    and any(s.head is task and s.proc.claims for s in self._pool.slots)):
                return  # its executor completed it itself: its report is on the pipe
            log.warning("worker %s: stopping job %s: %s", self.name, task.lease.job_id, exc)
            task.dropped = True
            for slot in self._pool.slots:
                if slot.head is task:  # running: kill it
                    self._pool.respawn(slot, drop_head=True)
                elif task in slot.tasks:  # prefetched: must not start (outcome ignored)
                    self._pool.revoke(slot, task)
