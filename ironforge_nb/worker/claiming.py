"""`Claimer`: claiming jobs for a worker's idle executors, and waiting for work when none came.

One claim (`Queue.dequeue_many`, queues in the order given, one script each) serves all the
idle executors at once; their first jobs start with that claim, the rest are prefetched (see
`slots.py`). Busy executors are left out: each completion claims their next jobs in the same
round trip (`Settler`, `settling.py`), so a claim for them here would cost one more script
call per task. A claim runs when the `ExecutorPool` (`pool.py`) says one is due; when it
leaves an executor idle, the worker blocks on the queues' wake lists (`Waker`, `wake.py`), so
that a wake-up hint goes to a worker that can use it, and claims again once one arrives.
"""

from __future__ import annotations

from collections.abc import Sequence

from ironforge_nb.queue import Lease, Queue
from ironforge_nb.worker.pool import ExecutorPool
from ironforge_nb.worker.settling import Settler
from ironforge_nb.worker.slots import Slot
from ironforge_nb.worker.wake import Waker

__all__ = ["Claimer"]


class Claimer:
    """Claims leases of ``lease`` seconds from ``queues`` for the worker ``name``."""

    def __init__(self, name: str, queues: Sequence[Queue], lease: float, *,
                 pool: ExecutorPool, settler: Settler, waker: Waker) -> None:
        self.name = name
        self.lease = lease
        self._queues = tuple(queues)
        self._pool = pool
        self._settler = settler
        self._waker = waker

    def claim(self) -> None:
        """Claim jobs for the idle executors (queues in the order given), one script each."""
        pool = self._pool
        pool.claim_due = False
        slots = pool.slots
        # idle executors, the warm ones first: the claim starts their first jobs (slots.py)
        idle = sorted((s for s in slots if not s.tasks), key=lambda s: not s.warm)
        most = max((s.free for s in idle), default=0)
        free = [s for k in range(most) for s in idle if k < s.free]  # round robin over idle
        wanted = len(free)
        for queue in self._queues:
            if not free:
                break
            heads = len({id(s) for s in free if not s.tasks and s.warm})  # first in `free`
            given: dict[int, tuple[Slot, list[Lease]]] = {}  # each slot's leases, one message
            for lease in queue.dequeue_many(self.name, len(free), self.lease, timeout=0,
                                            started=heads):
                # more than asked: a claim whose reply was lost, answered now (transitions.py)
                slot = free.pop(0) if free else min(slots, key=lambda s: len(s.tasks))
                given.setdefault(id(slot), (slot, []))[1].append(lease)
            for slot, leases in given.values():
                if (spare := pool.dispatch(slot, queue, leases)) is not None:
                    self._settler.lost_executor(slot, spare)
        self._waker.claimed(wanted, wanted - len(free))
        if pool.idle:
            self._waker.block()

    def idle(self, now: float) -> None:
        """A turn with no claim due: send the BLPOP that a cooldown delayed, once due."""
        self._waker.due(now, idle=self._pool.idle)

    def on_wake(self) -> None:
        """The BLPOP answered (a hint, or its timeout): claim at the next turn."""
        self._waker.collect()
        self._pool.claim_due = True
