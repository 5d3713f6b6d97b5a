"""`ExecutorPool`: a worker's executor processes, the leases handed to them, their outcomes.

The pool owns the slots (`slots.py`: one executor process each, with the leases it holds in
the order it runs them): it forks the executors (`start`), hands a claimed lease to a slot
(`dispatch`; the slot's executor runs it after those it already holds), reads the outcomes
they sent (`drain`), tells an executor not to start a prefetched lease (`revoke`), replaces
an executor (`respawn`: after a death, a timeout, a job that moved on) and kills a busy one
(`kill`, a stop past the grace). What becomes of a job in Redis is not the pool's business:
the `Settler` (`settling.py`) records the outcomes it drains.

`claim_due` says that some slot has room no claim has tried to fill yet (a new executor, a
slot left idle by a completion whose call did not claim): the worker's next turn claims
(`claiming.py`), and clears it.
"""

from __future__ import annotations

import contextlib
import time

from ironforge_nb.queue import Lease, Queue, RedisConfig
from ironforge_nb.worker.executor import Executor, ExecutorProcess, Outcome
from ironforge_nb.worker.slots import Slot, Task, task_timeout
from ironforge_nb.worker.wire import lease_from

__all__ = ["ExecutorPool"]


class ExecutorPool:
    """``concurrency`` executors running ``execute`` on leases of ``lease`` seconds (each
    holding at most ``prefetch`` extra ones; ``timeout`` is the default per-task limit)."""

    def __init__(self, config: RedisConfig, execute: Executor, concurrency: int, *,
                 prefetch: int, lease: float, timeout: float | None) -> None:
        self._config = config
        self._execute = execute
        self.concurrency = concurrency
        self._prefetch = prefetch
        self._beat_every = lease / 3  # a lease is heartbeated every third of its length
        self._timeout = timeout
        self.slots: list[Slot] = []
        self.claim_due = True
        # executors complete a success and claim their next job themselves when they hold
        # nothing else (executor.py); off for good once the worker stops (`no_claims`)
        self.claims = True

    def start(self) -> None:
        """Fork the executors (before the worker opens any connection or thread)."""
        self.slots = [Slot(self._spawn(), self._prefetch) for _ in range(self.concurrency)]

    @property
    def running(self) -> int:
        """How many claimed jobs the slots hold now (running or prefetched)."""
        return sum(len(s.tasks) for s in self.slots)

    @property
    def idle(self) -> bool:
        """True when some slot holds nothing."""
        return any(not s.tasks for s in self.slots)

    def dispatch(self, slot: Slot, queue: Queue, leases: list[Lease]) -> Task | None:
        """Hand ``leases`` to ``slot``, in one message; the first becomes the head when the
        slot held nothing, and was started by the claim that brought it if the slot is also
        warm (see `slots.py`), else its executor marks it started when it takes it up (and
        the others, held, likewise). Returns the first task when the executor turned out
        dead: they all stay on the slot, and the caller has the executor replaced
        (`Settler.lost_executor`), whose successor runs them."""
        now = time.monotonic()
        beat = now + self._beat_every
        tasks = [Task(lease, queue, task_timeout(lease, self._timeout), beat)
                 for lease in leases]
        tasks[0].marked = not slot.tasks and slot.warm
        slot.beat_due = min(slot.beat_due, beat)
        try:
            slot.push(tasks)
        except OSError:
            return tasks[0]
        return None

    def drain(self, slot: Slot) -> list[tuple[Task, Outcome]]:
        """Every outcome the executor has sent so far, with its task (now off the slot). The
        leases an executor claimed by itself with a success (`Outcome.claimed`) go on the
        slot at once, the first as its running head: the outcomes after it are theirs."""
        done: list[tuple[Task, Outcome]] = []
        for outcome in slot.proc.outcomes():
            if outcome is None or not slot.tasks:
                break  # EOF: the executor died (see Settler.lost_executor)
            task = slot.finish(outcome.ran, outcome.took)
            done.append((task, outcome))
            if outcome.claimed:
                beat = time.monotonic() + self._beat_every
                slot.adopt([Task(lease, task.queue, task_timeout(lease, self._timeout), beat,
                                 marked=True)
                            for lease in map(lease_from, outcome.claimed)])
                slot.beat_due = min(slot.beat_due, beat)
        return done

    def no_claims(self) -> None:
        """The worker stops: no executor claims by itself from now on (see `executor.py`)."""
        self.claims = False
        for slot in self.slots:
            slot.proc.no_claims()

    @staticmethod
    def revoke(slot: Slot, task: Task) -> None:
        """Tell the slot's executor not to start the prefetched ``task``."""
        task.revoked = True
        with contextlib.suppress(OSError):  # a dead executor is replaced without it anyway
            slot.proc.revoke(task.lease)

    def respawn(self, slot: Slot, *, drop_head: bool) -> Task | None:
        """Replace the slot's executor; returns the running task when ``drop_head``."""
        self.claim_due = True
        head = slot.drop_head() if drop_head else None
        for attempt in range(3):
            try:
                slot.replace(self._spawn())
                break
            except OSError:  # the new one died at once: try again with the same tasks
                if attempt == 2:
                    raise
        return head

    @staticmethod
    def kill(slot: Slot) -> list[Task]:
        """Kill the slot's executor and take its tasks off it (the slot is not used again)."""
        slot.proc.kill()
        tasks, slot.tasks = list(slot.tasks), type(slot.tasks)()
        return tasks

    def close(self) -> None:
        """Stop the idle executors, kill the busy ones (only after an unexpected error: their
        leases will expire)."""
        for slot in self.slots:
            if slot.tasks:
                slot.proc.kill()
            else:
                slot.proc.stop()

    def _spawn(self) -> ExecutorProcess:
        return ExecutorProcess(self._config, self._execute, self.claims)
