"""`Slot`: one executor process and the leases it holds, in the order it runs them.

The head of a slot's deque is running; the others are prefetched, already written to the
executor's pipe, so that the executor starts the next task while the worker completes the
previous ones in Redis (one round trip for several, which the executor no longer waits for).
Prefetching is adaptive: a slot holds about `PREFETCH_WINDOW` seconds of work ahead at its
recent average task duration, at most ``prefetch`` leases (`PREFETCH` by default): none for
tasks of 20 ms or more, 4 for 5 ms tasks, the whole cap for sub-millisecond ones, whose
completions then travel to Redis in batches. When a task turns out long anyway
(`RETURN_AFTER`), the worker revokes the leases queued behind it and hands them back to the
queue, so that idle workers take them.
A task's timeout counts from the moment it becomes the head.

Held and started leases (what the engine charges when a worker dies). A lease is STARTED in
Redis (its job's ``started`` field is set) before any of the task's code runs, and stays HELD
(claimed, no ``started``) until then. When a worker dies (SIGKILL, OOM, a lost machine) its
leases end, at expiry or as soon as a live worker sees it gone: a started one is a stall (the
task's code began: it may have had effects, and it will run again), a held one goes back to the
queue for free (its code never began). So the record charges every execution and only those:
attempts + stalls >= the times the code began, and a job claimed ahead and never run costs
nothing. Who marks: the claim of an idle, warm executor (one that has run a task already:
`Slot.warm`) marks its first job started (``dequeue_many(started=...)``,
``complete_many(started=...)``: `Task.marked`, sent to the executor with the lease), since that
executor runs it at once, and so does an executor's own claim after a success (the leases it
announces go to the front of its slot, `Slot.adopt`; the count it claims is the slot's capacity,
told with its leases, `Slot.told`); every other lease, prefetched behind a running task, handed
to a replacement executor, or the first job of a fresh executor, is marked by the executor
itself right before it runs it (`Queue.start` on the executor's own connection, fenced by the
lease token, sent as soon as the task before it ended), which waits for Redis's answer and skips
the lease if the job moved on (see `executor.py`). The leases a claim brings for one slot go to
its executor in one pipe message. A fresh executor's first task waits behind its cold start (its
Lua scripts assembled, its connection opened: 99 ms on average from claim to code for a fresh
worker's first job in the chaos suite under load); a claim that marked that job started would
charge it a stall for a worker killed meanwhile, for code that never ran. A start is still
recorded a moment before the code begins (the worker's hand-over and the executor's wake-up
after a claim's mark, the reply's way back after an executor's): a worker that dies within it
charges a stall for code that had not begun (see docs/lifecycle.md). The executor's own mark
costs a sub-millisecond task one round trip of the executor's (overlapped with its report of the
task before); the completions still travel to Redis in batches, from the worker. A prefetched
lease that the worker hands back (`RETURN_AFTER`, stopping) is released only if still held
(``Queue.release(held_only=True)``): if the executor marked it first, it runs and stays this
worker's. Every held lease is heartbeated like the running one, so prefetching never makes a
lease expire.
A slot whose executor runs short leases it claimed itself is read late (`Slot.read_after`,
`READ_LATE`; see executor.py, "Read late, called back").
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass
from typing import Any

from ironforge_nb.queue import Lease, Queue
from ironforge_nb.worker.executor import ExecutorProcess

__all__ = ["PREFETCH", "PREFETCH_WINDOW", "READ_LATE", "RETURN_AFTER", "REVOKE_WAIT", "SHORT_TASK",
           "Slot", "Task", "task_timeout"]

PREFETCH = 32  # default cap on the leases a slot holds beyond the running one
PREFETCH_WINDOW = 0.02  # seconds of work (at the recent average duration) a slot holds ahead
RETURN_AFTER = 0.5  # seconds: a head running this long gets its prefetched leases handed back
REVOKE_WAIT = 1.0  # seconds a revoked head may take to answer "revoked" before it is killed
SHORT_TASK = 0.002  # seconds: below this recent average, a slot's successes may be completed late
READ_LATE = 0.002  # seconds the worker may leave unread the pipe of an executor of short tasks
# that runs leases it claimed itself (`Slot.read_after`)


@dataclass
class Task:
    """A lease given to a slot: running (``started`` set) or waiting in the executor's pipe."""

    lease: Lease
    queue: Queue
    timeout: float | None
    next_beat: float  # monotonic time of the next heartbeat
    started: float | None = None  # monotonic
    deadline: float | None = None  # monotonic, from timeout
    dropped: bool = False  # the job moved on (cancelled...): ignore the outcome
    revoked: bool = False  # the executor was told not to start it
    marked: bool = False  # its claim recorded it started (else held: see the module docstring)

    def start(self, now: float) -> None:
        """Mark the task running from ``now`` (its timeout counts from here)."""
        self.started = now
        self.deadline = None if self.timeout is None else now + self.timeout


class Slot:
    """An executor and its tasks (head running, the rest prefetched)."""

    def __init__(self, proc: ExecutorProcess, prefetch: int = PREFETCH) -> None:
        self.proc = proc
        self.prefetch = prefetch
        self.tasks: deque[Task] = deque()
        # successes whose completion waits to travel with the next ones (see Settler.settle)
        self.deferred: list[tuple[Task, Any]] = []
        self.deferred_since = 0.0  # monotonic time of the oldest deferred success
        self._average: float | None = None  # moving average of task durations, seconds
        self.warm = False  # its executor has run a task: a claim may start its next head
        self.told = 1  # the most jobs its executor was last told to claim by itself
        # no heartbeat of its tasks is due before this (monotonic; a bound kept as tasks come,
        # made exact by the housekeeper's pass over them), so that the worker's loop does
        # not walk every held task on every turn
        self.beat_due = float("inf")
        # before this (monotonic), the worker need not read its executor's pipe: the executor
        # runs short leases it claimed itself, and tells of the next ones it claims without
        # needing an answer (see `Settler.on_message`); its death is still seen at once
        self.read_after = 0.0

    @property
    def head(self) -> Task | None:
        """The running task."""
        return self.tasks[0] if self.tasks else None

    @property
    def free(self) -> int:
        """How many more leases this slot takes now."""
        return self._capacity() - len(self.tasks)

    @property
    def short(self) -> bool:
        """Its tasks take under `SHORT_TASK` on average: a completion call of its own would
        cost about as much as the task, so successes may wait to share one (`Settler`)."""
        return self._average is not None and self._average < SHORT_TASK

    def _capacity(self) -> int:
        ahead = 0
        if self._average is not None and self._average < PREFETCH_WINDOW:
            ahead = min(self.prefetch, int(PREFETCH_WINDOW / max(self._average, 1e-6)))
        return 1 + ahead

    def push(self, tasks: list[Task]) -> None:
        """Give ``tasks`` to the executor, in one message (they run after the ones already
        held, in this order)."""
        if not self.tasks:
            tasks[0].start(time.monotonic())
        self.tasks.extend(tasks)
        self.told = self._capacity()
        self.proc.send_many([(t.lease, t.marked) for t in tasks], self.told)

    def finish(self, ran: bool = True, took: float | None = None) -> Task:
        """Remove the head, whose outcome arrived (``ran`` False: the executor skipped it);
        the next task is now running. ``took``: how long it ran, as its executor measured
        (else from its start here to now)."""
        task = self.tasks.popleft()
        now = time.monotonic()
        if ran:
            self.warm = True
        if task.started is not None and ran:
            took = now - task.started if took is None else took
            self._average = took if self._average is None else 0.7 * self._average + 0.3 * took
        if self.tasks:
            self.tasks[0].start(now)
        return task

    def waiting(self, now: float) -> list[Task]:
        """Prefetched tasks stuck behind a head that has run longer than `RETURN_AFTER`."""
        head = self.head
        if head is None or head.started is None or now - head.started < RETURN_AFTER:
            return []
        return [t for t in list(self.tasks)[1:] if not t.dropped]

    def adopt(self, tasks: list[Task]) -> None:
        """Leases its executor claimed by itself (see `executor.py`), the first already
        running: they come before the ones the worker gave it since (which wait behind)."""
        if self.tasks:
            self.tasks[0].started = self.tasks[0].deadline = None
        self.tasks.extendleft(reversed(tasks))
        tasks[0].start(time.monotonic())
        capacity = self._capacity()  # what its next claim should fetch, told when it moved
        if capacity != self.told and (min(capacity, self.told) == 1  # by a quarter or more
                                      or 4 * abs(capacity - self.told) >= self.told):
            self.told = capacity
            self.proc.fetch(capacity)

    def stale_head(self, now: float) -> bool:
        """True when the executor runs a task whose job moved on: a dropped head that was
        never revoked, or whose revocation came too late (it started anyway)."""
        head = self.head
        if head is None or not head.dropped or head.started is None:
            return False
        return not head.revoked or now - head.started >= REVOKE_WAIT

    def drop_head(self) -> Task | None:
        """Remove the running task (its executor is about to be replaced)."""
        return self.tasks.popleft() if self.tasks else None

    def replace(self, proc: ExecutorProcess) -> None:
        """Kill the executor, take ``proc`` instead and hand it the tasks still held (not
        the dropped ones: their jobs moved on)."""
        self.proc.kill()
        self.proc = proc
        self._average = None  # whatever killed it may come back: no prefetch for now
        self.warm = False
        self.tasks = deque(t for t in self.tasks if not t.dropped)
        if self.tasks:
            self.tasks[0].start(time.monotonic())
        if self.tasks:  # on OSError the tasks stay here, for the next executor; not marked:
            self.told = self._capacity()  # the new one marks them:
            proc.send_many([(t.lease, False) for t in self.tasks], self.told)


def task_timeout(lease: Lease, default: float | None) -> float | None:
    """The task's time limit: the job's ``timeout`` meta field (seconds), else ``default``."""
    raw = lease.meta.get("timeout")
    try:
        value = float(raw) if raw not in (None, "") else default
    except ValueError:
        value = default
    return value if value is not None and value > 0 else None
