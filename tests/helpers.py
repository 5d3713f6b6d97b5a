"""Small helpers shared by several test modules (fixtures live in conftest.py)."""

from __future__ import annotations

import threading
import time

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


def failing() -> Pipeline:
    """a -> bad (always raises RuntimeError) -> after_bad: one completed, failed, skipped."""
    p = Pipeline("failing")
    p.task("a", tasks.one).task("bad", tasks.boom, after="a").then("after_bad", tasks.double)
    return p


def assert_woken_by_enqueue(q: Queue) -> None:
    """A worker blocked in ``q.dequeue`` is woken by an enqueue 0.2 s later, long before its
    5 s timeout, and gets that job."""
    timer = threading.Timer(0.2, q.enqueue, args=(b"wake",))
    timer.start()
    started = time.monotonic()
    lease = q.dequeue("w", timeout=5)
    timer.join()
    assert lease is not None and lease.payload == b"wake"
    assert time.monotonic() - started < 2.0
