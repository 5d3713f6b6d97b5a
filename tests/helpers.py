"""Small helpers shared by several test modules (fixtures live in conftest.py)."""

from __future__ import annotations

from ironforge_nb.dag import Pipeline
from ironforge_nb.queue import Lease, Queue
from tests import tasks


def claim(q: Queue, worker: str = "w1", lease: float = 30.0) -> Lease:
    """Claim one job without waiting; fail the test if there is none."""
    got = q.dequeue(worker, lease=lease, timeout=0)
    assert got is not None
    return got


def diamond() -> Pipeline:
    """a -> (b, c) -> d with the arithmetic tasks of `tests.tasks`: d == 2*1 + (1+1) == 4."""
    p = Pipeline("diamond")
    p.task("a", tasks.one).task("b", tasks.double, after="a").task("c", tasks.inc, after="a")
    p.task("d", tasks.plus, after=["b", "c"])
    return p
