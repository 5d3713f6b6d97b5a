"""`Settler`: recording in Redis what became of each job a worker holds.

A finished task is completed (successes in one call that also claims the slot's next jobs, see
`slots.py`; a success its executor completed itself, with the leases it claimed, is only
counted: `executor.py`; while the slot's executor still holds more than half its leases ahead
and its tasks are short, under `SHORT_TASK` on average, a success waits up to `COMPLETE_DELAY`
for the next ones, so that a sub-millisecond task's completion does not cost a call of its own)
or failed; a task that outlived its timeout fails that attempt; a task whose executor process
died under it (a signal: the OOM killer, a SIGKILL) is a stall, not an attempt (`Queue.stall`);
a prefetched task that must not wait any longer is revoked and handed back to the queue; once
the worker stops past its grace, the tasks of the executors it killed go back to the queue
(`release`). A job that moved on meanwhile (lease lost, cancelled, deleted) is logged and left
alone.

What a deferred success costs if the worker dies (SIGKILL, a lost machine) before its
completion call: the task runs again, charged a stall, like the one that was running. Deferring
only short tasks bounds that: a kill repeats at most the successes of the last `COMPLETE_DELAY`
(and at most `COMPLETE_BATCH` of them) per executor, about as much work as the one running
task; a task of `SHORT_TASK` or more is completed at once, so a kill repeats only the task that
was running (and, rarely, one whose completion call was on its way). The chaos suite's bound,
one repeat per kill, is checked with 10 ms tasks (tests/chaos/).

The settler reads outcomes from, and refills, the slots of the worker's `ExecutorPool`
(`pool.py`). A slot it leaves idle is claimed for again (`ExecutorPool.claim_due`), or, when
its completion's claim found the worker's only queue empty, waits for a wake-up hint
(`Waker.block`). After `wind_down` (the worker is stopping) it completes at once, claims
nothing and leaves idle slots idle.
"""

from __future__ import annotations

import logging
import time

from ironforge_nb.errors import JobNotFoundError, JobStateError, LeaseLost, SizeLimitError
from ironforge_nb.worker.executor import REDIS_DOWN, Outcome, claim_receipt, claim_request
from ironforge_nb.worker.pool import ExecutorPool
from ironforge_nb.worker.slots import READ_LATE, Slot, Task
from ironforge_nb.worker.wake import Waker

__all__ = ["COMPLETE_BATCH", "COMPLETE_DELAY", "MOVED_ON", "Settler"]

log = logging.getLogger("ironforge_nb.worker")

COMPLETE_BATCH = 32  # deferred successes of a slot that make its completion call go at once
COMPLETE_DELAY = 0.002  # seconds a success's completion may wait for the next ones
MOVED_ON = (LeaseLost, JobStateError, JobNotFoundError)  # the job is no longer ours


class Settler:
    """Records the outcomes of the tasks of ``pool``'s slots, for the worker ``name``.

    ``single_queue``: the worker serves one queue, so a completion whose claim came back
    short means that queue is empty (the slot then waits on ``waker``).
    """

    def __init__(self, name: str, pool: ExecutorPool, waker: Waker, *,
                 single_queue: bool) -> None:
        self.name = name
        self.jobs_done = 0  # tasks that ran to an outcome (or died or timed out trying)
        self.closing = False  # the worker is stopping: see wind_down
        self._pool = pool
        self._waker = waker
        self._single_queue = single_queue
        self._drain = pool.drain  # bound once: per outcome, on the hot path
        self._dispatch = pool.dispatch

    # -- outcomes arriving -------------------------------------------------------------------

    def on_message(self, slot: Slot) -> None:
        """The slot's executor sent outcomes: record them, or defer its successes.

        When the last of them is a short success its executor completed itself, with the
        next leases it claimed (running now), the worker may read that pipe up to `READ_LATE`
        later (`Slot.read_after`): what the executor writes meanwhile are the same reports,
        which need no answer, so the worker is not woken for each hop of a chain (and the
        executor's write wakes nobody). A message that needs the worker meanwhile (a
        failure, a claim that found nothing) comes with a call back (`on_alert`)."""
        done = self._drain(slot)
        last = done[-1][1] if done else None
        slot.read_after = (time.monotonic() + READ_LATE
                           if last is not None and last.completed and last.claimed
                           and slot.short and slot.tasks and not self.closing else 0.0)
        if (done and slot.short and len(slot.tasks) > max(1, slot.free) and not self.closing
                and all(o.ok and o.ran and not o.completed for _, o in done)
                and len(slot.deferred) + len(done) < COMPLETE_BATCH):
            # short successes while the executor still holds more than half its leases ahead: their
            # completion waits (at most COMPLETE_DELAY) to share one call with the next ones;
            # any other outcome, a stop, a timeout or a lost executor sends them at once
            if not slot.deferred:
                slot.deferred_since = time.monotonic()
            slot.deferred += done
            return
        self.settle(slot, done)

    def on_alert(self, slot: Slot) -> None:
        """The slot's executor calls its worker back (`executor._Alert`): a message that
        needs the worker follows reports it may have been reading late."""
        slot.proc.clear_alert()
        slot.read_after = 0.0
        if slot.proc.ready():
            self.on_message(slot)

    def on_death(self, slot: Slot) -> None:
        """The slot's executor process ended (or its sentinel says so)."""
        if not slot.proc.alive():
            self.lost_executor(slot)

    def flush_deferred(self, now: float) -> None:
        """Complete the deferred successes that waited `COMPLETE_DELAY`, or of a slot whose
        executor is about to run dry."""
        for slot in self._pool.slots:
            if slot.deferred and (now - slot.deferred_since >= COMPLETE_DELAY
                                  or len(slot.tasks) <= 1 or self.closing):
                self.settle(slot, [])

    def next_due(self) -> float:
        """When the oldest deferred success must be completed (monotonic; inf: none)."""
        due = float("inf")
        for slot in self._pool.slots:
            if slot.deferred:
                due = min(due, slot.deferred_since + COMPLETE_DELAY)
        return due

    def settle(self, slot: Slot, done: list[tuple[Task, Outcome]]) -> None:
        """Record finished tasks in Redis: failures one by one, successes in one call that
        also claims the slot's next jobs. A slot left idle claims again, or, when that call
        found the queue empty, waits for a wake-up hint."""
        if slot.deferred:  # deferred successes go first, in the same call as these
            done, slot.deferred = slot.deferred + done, []
        if not done:
            return
        for task, outcome in done:
            if not outcome.ran and not task.dropped:  # the job moved on before it started
                task.dropped = True
                log.warning("worker %s: job %s not run: %s", self.name, task.lease.job_id,
                            outcome.error)
        done = [(t, o) for t, o in done if o.ran]
        self.jobs_done += len(done)
        ok = [(t, o) for t, o in done if o.ok and not t.dropped and not o.completed]
        for task, outcome in done:
            if outcome.completed:  # its executor completed it itself (executor.py)
                if outcome.error:
                    log.warning("worker %s: result of job %s discarded: %s", self.name,
                                task.lease.job_id, outcome.error)
            elif outcome.lost:  # and its call's reply never came: what it claimed goes back
                self._recover(task, slot.proc.pid, outcome.lost)
            if not outcome.ok and not task.dropped:
                self.fail(task, outcome.error, outcome.retry)
        drained = self._complete(slot, ok) if ok else False
        last = done[-1][1] if done else None
        if last is not None and last.completed and last.drained and self._single_queue:
            drained = True  # its executor's claim found the worker's only queue empty
        if not slot.tasks and not self.closing:
            if drained:
                self._waker.block()
            else:
                self._pool.claim_due = True

    def _complete(self, slot: Slot, done: list[tuple[Task, Outcome]]) -> bool:
        """Complete the finished tasks and refill the slot in the same round trip; True when
        that claim found nothing left in the worker's only queue."""
        queue = done[-1][0].queue
        fetch = 0 if self.closing else max(slot.free, 0)
        same = [(t, o) for t, o in done if t.queue is queue]
        for task, outcome in done:
            if task.queue is not queue:
                self._complete_one(task, outcome)
        try:  # a fetched job starts now only if the slot is idle and warm (else its executor
            leases, refused = queue.complete_many(  # marks it: see `slots.py`)
                [t.lease for t, _ in same], [o.result for _, o in same], fetch_next=fetch,
                started=1 if not slot.tasks and slot.warm else 0)
        except SizeLimitError:  # isolate the oversized result(s): one call each
            for task, outcome in same:
                self._complete_one(task, outcome)
            return False
        for job_id, exc in refused.items():
            log.warning("worker %s: result of job %s discarded: %s", self.name, job_id, exc)
        if leases and (spare := self._dispatch(slot, queue, leases)) is not None:
            self.lost_executor(slot, spare)
        return fetch > 0 and len(leases) < fetch and not refused and self._single_queue

    def _complete_one(self, task: Task, outcome: Outcome) -> None:
        try:
            task.queue.complete(task.lease, outcome.result)
        except SizeLimitError as exc:
            self.fail(task, str(exc), retry=False)
        except MOVED_ON as exc:
            log.warning("worker %s: result of job %s discarded: %s", self.name,
                        task.lease.job_id, exc)

    def fail(self, task: Task, error: str, retry: bool = True) -> None:
        """Fail the task's attempt (retried while attempts remain, if ``retry``)."""
        try:
            status = task.queue.fail(task.lease, error, retry)
        except MOVED_ON as exc:
            log.warning("worker %s: failure of job %s not recorded: %s", self.name,
                        task.lease.job_id, exc)
            return
        log.warning("worker %s: job %s attempt %d failed (%s): %s", self.name,
                    task.lease.job_id, task.lease.attempt, status.value,
                    error.strip().splitlines()[-1] if error.strip() else error)

    # -- tasks that end otherwise ------------------------------------------------------------

    def lost_executor(self, slot: Slot, spare: Task | None = None,
                      done: list[tuple[Task, Outcome]] | None = None) -> None:
        """The executor died: count what it finished, stall what it was running, replace it.

        ``spare`` is a task just handed to it, which never started: the new executor runs it.
        ``done``: outcomes of it already drained (and not settled yet).
        """
        slot.proc.process.join(1)  # let the exit code settle before describing it
        done = [*(done or ()), *self._drain(slot)]  # outcomes it sent before dying still count
        how = slot.proc.exit_description()
        running = slot.head is not None and slot.head is not spare
        claims, pid = slot.proc.claims, slot.proc.pid
        head = self._pool.respawn(slot, drop_head=running)
        self.settle(slot, done)
        if head is not None and claims:
            self._recover(head, pid)
        if head is not None and not head.dropped:
            self.jobs_done += 1
            self._stall(head, f"the executor process {how} while running the task")

    def _recover(self, task: Task, pid: int, request: str | None = None) -> None:
        """Hand back for free what the executor ``pid`` may have claimed by itself with the
        completion of ``task`` without telling this worker (it died first, or the call's
        reply never came): no code of it began, since an executor tells before it runs a
        lease it claimed (see executor.py); a claim that reaches Redis only later claims
        nothing."""
        lease = task.lease
        try:
            back = task.queue.release_claim(claim_receipt(lease.worker, pid),
                                            request or claim_request(lease), lease.lease_ms)
        except (*MOVED_ON, *REDIS_DOWN) as exc:  # its lease will expire
            log.warning("worker %s: the claim after job %s not handed back: %s", self.name,
                        lease.job_id, exc)
            return
        if back:
            log.warning("worker %s: %d job(s) its executor claimed after job %s but never "
                        "ran handed back", self.name, back, lease.job_id)

    def _stall(self, task: Task, reason: str) -> None:
        try:
            status = task.queue.stall(task.lease, reason)
        except MOVED_ON as exc:
            log.warning("worker %s: stall of job %s not recorded: %s", self.name,
                        task.lease.job_id, exc)
            return
        log.warning("worker %s: job %s stalled (%s, %s)", self.name, task.lease.job_id,
                    reason, status.value)

    def time_out(self, slot: Slot) -> None:
        """Kill the slot's executor if its task outlived its deadline, and fail that attempt
        (unless the task finished just in time)."""
        self.settle(slot, self._drain(slot))  # it may have finished just in time
        head = slot.head
        if head is None or head.deadline is None or time.monotonic() < head.deadline:
            return
        slot.proc.kill()
        done = self._drain(slot)  # what it sent before the kill
        if slot.head is not head:  # it ended just then: what ran next died under the kill
            self.lost_executor(slot, done=done)
            return
        claims, pid = slot.proc.claims, slot.proc.pid
        self._pool.respawn(slot, drop_head=True)
        if claims:
            self._recover(head, pid)
        if not head.dropped:
            self.jobs_done += 1
            self.fail(head, f"timeout after {head.timeout:g} s")

    def hand_back(self, slot: Slot, tasks: list[Task]) -> None:
        """Revoke prefetched ``tasks`` (not started) and release their jobs to the queue.

        The executor may have taken one up (marked it started) just before the revocation
        reached it: Redis then refuses the release (``held_only``) and the task stays."""
        self.settle(slot, self._drain(slot))  # some may have run meanwhile
        kept = False
        for task in tasks:
            if task not in slot.tasks or task is slot.head or task.dropped:
                continue
            task.dropped = True  # its "revoked" outcome will be ignored
            self._pool.revoke(slot, task)
            try:
                if not task.queue.release(task.lease, held_only=True):
                    task.dropped = task.revoked = False  # started: its executor runs it
                    kept = True
            except MOVED_ON as exc:
                log.warning("worker %s: job %s not handed back: %s", self.name,
                            task.lease.job_id, exc)
        if kept:
            self.settle(slot, self._drain(slot))

    # -- stopping ----------------------------------------------------------------------------

    def wind_down(self, now: float) -> None:
        """The worker is stopping: complete the deferred successes now, and from now on
        complete at once, claim nothing more and leave idle slots idle."""
        self.closing = True
        self._pool.no_claims()
        self.flush_deferred(now)

    def release_killed(self, slot: Slot, reason: str) -> None:
        """The worker stops past its grace: kill the slot's executor and hand its tasks back
        (`release`), after recording what it finished before the kill (a lease it claimed
        and told of by then is among its tasks; one it did not tell of goes back free)."""
        claims, pid = slot.proc.claims, slot.proc.pid
        slot.proc.kill()
        self.settle(slot, self._drain(slot))
        tasks = self._pool.kill(slot)
        if tasks and claims:
            self._recover(tasks[0], pid)
        self.release(tasks, reason)

    def release(self, tasks: list[Task], reason: str) -> None:
        """Hand the tasks of a killed executor back to the queue now: a started one as a
        stall, a held one for free (`Queue.stall` tells them apart)."""
        for task in (t for t in tasks if not t.dropped):
            try:
                task.queue.stall(task.lease, reason)
                log.info("worker %s: job %s handed back", self.name, task.lease.job_id)
            except MOVED_ON as exc:
                log.warning("worker %s: job %s not handed back: %s", self.name,
                            task.lease.job_id, exc)
