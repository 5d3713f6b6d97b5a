"""Recording in Redis what became of each job a worker holds (part of `Worker`, see `core.py`).

A finished task is completed (successes in one call that also claims the slot's next jobs, see
`slots.py`; while the slot's executor still holds more than half its leases ahead, a success
waits up to `COMPLETE_DELAY` for the next ones, so that a sub-millisecond task's completion
does not cost a call of its own) or failed; a task that outlived its timeout
fails that attempt; a task whose executor process died under it (a signal: the OOM killer, a
SIGKILL) is a stall, not an attempt (`Queue.stall`); a prefetched task that must not wait any
longer is revoked and handed back to the queue. A job that moved on meanwhile (lease lost,
cancelled, deleted) is logged and left alone.
"""

from __future__ import annotations

import contextlib
import time

from ironforge_nb.errors import SizeLimitError
from ironforge_nb.queue import Lease, Queue
from ironforge_nb.worker.core import MOVED_ON, WorkerCore, log
from ironforge_nb.worker.executor import Outcome
from ironforge_nb.worker.slots import Slot, Task, task_timeout

__all__ = ["COMPLETE_BATCH", "COMPLETE_DELAY", "Outcomes"]

COMPLETE_BATCH = 32  # deferred successes of a slot that make its completion call go at once
COMPLETE_DELAY = 0.002  # seconds a success's completion may wait for the next ones


class Outcomes(WorkerCore):
    """Handing leases to executors and recording their outcomes."""

    def _dispatch(self, slot: Slot, queue: Queue, lease: Lease) -> None:
        """Hand ``lease`` to ``slot``; it becomes the head (started by the claim that brought
        it: see `slots.py`) when the slot held nothing, else its executor marks it started
        when it takes it up."""
        task = Task(lease, queue, task_timeout(lease, self.timeout),
                    time.monotonic() + self.lease / 3, marked=not slot.tasks)
        try:
            slot.push(task)
        except OSError:  # the executor died: a new one takes its tasks, this one included
            self._lost_executor(slot, spare=task)

    def _on_message(self, slot: Slot) -> None:
        done = self._drain(slot)
        if (done and len(slot.tasks) > max(1, slot.free) and self._grace_deadline is None
                and all(o.ok and o.ran for _, o in done)
                and len(slot.deferred) + len(done) < COMPLETE_BATCH):
            # successes while the executor still holds more than half its leases ahead: their
            # completion waits (at most COMPLETE_DELAY) to share one call with the next ones;
            # any other outcome, a stop, a timeout or a lost executor sends them at once
            if not slot.deferred:
                slot.deferred_since = time.monotonic()
            slot.deferred += done
            return
        self._settle(slot, done)

    def _flush_deferred(self, now: float) -> None:
        """Complete the deferred successes that waited `COMPLETE_DELAY`, or of a slot whose
        executor is about to run dry."""
        for slot in self._slots:
            if slot.deferred and (now - slot.deferred_since >= COMPLETE_DELAY
                                  or len(slot.tasks) <= 1 or self._grace_deadline is not None):
                self._settle(slot, [])

    def _drain(self, slot: Slot) -> list[tuple[Task, Outcome]]:
        """Every outcome the executor has sent so far, with its task (now off the slot)."""
        done: list[tuple[Task, Outcome]] = []
        while slot.tasks and slot.proc.ready():
            outcome = slot.proc.receive()
            if outcome is None:
                break  # EOF: the executor died, handled by _lost_executor
            done.append((slot.finish(outcome.ran), outcome))
        return done

    def _settle(self, slot: Slot, done: list[tuple[Task, Outcome]]) -> None:
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
        ok = [(t, o) for t, o in done if o.ok and not t.dropped]
        for task, outcome in done:
            if not outcome.ok and not task.dropped:
                self._fail(task, outcome.error, outcome.retry)
        drained = self._complete(slot, ok) if ok else False
        if not slot.tasks and self._grace_deadline is None:
            if drained:
                self._waker.block()
            else:
                self._want_claim = True

    def _complete(self, slot: Slot, done: list[tuple[Task, Outcome]]) -> bool:
        """Complete the finished tasks and refill the slot in the same round trip; True when
        that claim found nothing left in the worker's only queue."""
        queue = done[-1][0].queue
        fetch = 0 if self._grace_deadline is not None else max(slot.free, 0)
        same = [(t, o) for t, o in done if t.queue is queue]
        for task, outcome in done:
            if task.queue is not queue:
                self._complete_one(task, outcome)
        try:  # a fetched job starts now only if the slot is idle (else its executor marks it)
            leases, refused = queue.complete_many(
                [t.lease for t, _ in same], [o.result for _, o in same], fetch_next=fetch,
                started=0 if slot.tasks else 1)
        except SizeLimitError:  # isolate the oversized result(s): one call each
            for task, outcome in same:
                self._complete_one(task, outcome)
            return False
        for job_id, exc in refused.items():
            log.warning("worker %s: result of job %s discarded: %s", self.name, job_id, exc)
        for lease in leases:
            self._dispatch(slot, queue, lease)
        return (fetch > 0 and len(leases) < fetch and not refused
                and len(self.queue_names) == 1)

    def _complete_one(self, task: Task, outcome: Outcome) -> None:
        try:
            task.queue.complete(task.lease, outcome.result)
        except SizeLimitError as exc:
            self._fail(task, str(exc), retry=False)
        except MOVED_ON as exc:
            log.warning("worker %s: result of job %s discarded: %s", self.name,
                        task.lease.job_id, exc)

    def _fail(self, task: Task, error: str, retry: bool = True) -> None:
        try:
            status = task.queue.fail(task.lease, error, retry)
        except MOVED_ON as exc:
            log.warning("worker %s: failure of job %s not recorded: %s", self.name,
                        task.lease.job_id, exc)
            return
        log.warning("worker %s: job %s attempt %d failed (%s): %s", self.name,
                    task.lease.job_id, task.lease.attempt, status.value,
                    error.strip().splitlines()[-1] if error.strip() else error)

    def _on_death(self, slot: Slot) -> None:
        if not slot.proc.alive():
            self._lost_executor(slot)

    def _lost_executor(self, slot: Slot, spare: Task | None = None) -> None:
        """The executor died: count what it finished, fail what it was running, replace it.

        ``spare`` is a task just handed to it, which never started: the new executor runs it.
        """
        slot.proc.process.join(1)  # let the exit code settle before describing it
        done = self._drain(slot)  # outcomes it sent before dying still count
        how = slot.proc.exit_description()
        running = slot.head is not None and slot.head is not spare
        head = self._respawn(slot, drop_head=running)
        self._settle(slot, done)
        if head is not None and not head.dropped:
            self.jobs_done += 1
            self._stall(head, f"the executor process {how} while running the task")

    def _stall(self, task: Task, reason: str) -> None:
        try:
            status = task.queue.stall(task.lease, reason)
        except MOVED_ON as exc:
            log.warning("worker %s: stall of job %s not recorded: %s", self.name,
                        task.lease.job_id, exc)
            return
        log.warning("worker %s: job %s stalled (%s, %s)", self.name, task.lease.job_id,
                    reason, status.value)

    def _time_out(self, slot: Slot) -> None:
        self._settle(slot, self._drain(slot))  # it may have finished just in time
        head = slot.head
        if head is None or head.deadline is None or time.monotonic() < head.deadline:
            return
        self._respawn(slot, drop_head=True)
        if not head.dropped:
            self.jobs_done += 1
            self._fail(head, f"timeout after {head.timeout:g} s")

    def _hand_back(self, slot: Slot, tasks: list[Task]) -> None:
        """Revoke prefetched ``tasks`` (not started) and release their jobs to the queue.

        The executor may have taken one up (marked it started) just before the revocation
        reached it: Redis then refuses the release (``held_only``) and the task stays."""
        self._settle(slot, self._drain(slot))  # some may have run meanwhile
        kept = False
        for task in tasks:
            if task not in slot.tasks or task is slot.head or task.dropped:
                continue
            task.dropped = True  # its "revoked" outcome will be ignored
            self._revoke(slot, task)
            try:
                if not task.queue.release(task.lease, held_only=True):
                    task.dropped = task.revoked = False  # started: its executor runs it
                    kept = True
            except MOVED_ON as exc:
                log.warning("worker %s: job %s not handed back: %s", self.name,
                            task.lease.job_id, exc)
        if kept:
            self._settle(slot, self._drain(slot))

    @staticmethod
    def _revoke(slot: Slot, task: Task) -> None:
        task.revoked = True
        with contextlib.suppress(OSError):  # a dead executor is replaced without it anyway
            slot.proc.revoke(task.lease)
