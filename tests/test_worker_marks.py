"""Start marks: no lease's code runs before Redis records it started (issue 9, held leases).

An executor process gets a lease either already started (its claim marked it) or held
(prefetched); it marks a held one started itself and waits for Redis's answer before running
it, and skips it if the job moved on. A held lease is released or stalled for free, a started
one is not released by a hand-back (``held_only``). Real redis-server, real forked executors.
"""

from __future__ import annotations

import pytest

from ironforge_nb.queue import Lease, Queue, RedisConfig
from ironforge_nb.status import EventType, JobStatus
from ironforge_nb.worker.executor import ExecutorProcess


@pytest.fixture
def q(config: RedisConfig) -> Queue:
    """A queue named 'work' in this test's namespace."""
    return Queue("work", config)


def started_seen(config: RedisConfig, lease: Lease) -> bytes:
    """The executor of these tests: what Redis said about the job's start when its code ran."""
    info = Queue(lease.queue, config).info(lease.job_id)
    return b"started" if info.started is not None else b"held"


def test_held_leases_are_marked_started_before_their_code_runs(q: Queue) -> None:
    """Three held leases handed to an executor unmarked: each one's code sees its job started
    in Redis; a lease whose job went back to the queue first is not run at all."""
    ids = q.enqueue_batch([b"a", b"b", b"c", b"d"])
    leases = q.dequeue_many("w1", 4, lease=30, timeout=0, started=0)
    assert all(q.info(j).started is None for j in ids)
    q.release(leases[3])  # handed back before the executor got it: must not run
    proc = ExecutorProcess(q.config, started_seen)
    try:
        for lease in leases:
            proc.send(lease, marked=False)
        outcomes = [proc.receive() for _ in leases]
    finally:
        proc.stop()
    assert [(o.ok, o.ran, o.result) for o in outcomes if o is not None][:3] == [
        (True, True, b"started")] * 3
    last = outcomes[3]
    assert last is not None and (last.ok, last.ran) == (False, False)
    assert "moved on" in last.error
    info = q.info(ids[3])
    assert (info.status, info.started, info.stalls) == (JobStatus.QUEUED, None, 0)


def next_still_held(config: RedisConfig, lease: Lease) -> bytes:
    """The executor of the next test: what Redis said about this job's start and about the
    job named by the payload (the lease after this one) while this one's code ran."""
    queue, other = Queue(lease.queue, config), lease.payload.decode()
    mine = started_seen(config, lease)
    if not other:
        return mine + b":last"
    return mine + (b":held" if queue.info(other).started is None else b":started")


def test_the_next_held_lease_is_marked_only_after_the_code_before_it(q: Queue) -> None:
    """Leases sent in one message: the executor sends each next job's mark ahead, but only
    once the code before it has ended (a worker killed meanwhile charges it nothing), and each
    job's code still sees its own job started."""
    ids = q.enqueue_batch([b"x"] * 4)
    leases = q.dequeue_many("w1", 4, lease=30, timeout=0, started=0)
    chained = [Lease(le.job_id, le.token, le.attempt, (ids[i + 1] if i < 3 else "").encode(),
                     le.queue, le.deadline_ms, le.meta, le.worker, le.lease_ms, le.inputs)
               for i, le in enumerate(leases)]
    proc = ExecutorProcess(q.config, next_still_held)
    try:
        proc.send_many([(lease, False) for lease in chained])
        outcomes = [proc.receive() for _ in chained]
    finally:
        proc.stop()
    assert [(o.ok, o.ran, o.result) for o in outcomes if o is not None] == [
        (True, True, b"started:held")] * 3 + [(True, True, b"started:last")]
    assert all(q.info(j).started is not None for j in ids)


def test_a_marked_lease_runs_without_a_second_mark(q: Queue) -> None:
    """A lease its claim started runs as sent (its code sees it started)."""
    q.enqueue(b"a")
    (lease,) = q.dequeue_many("w1", 1, lease=30, timeout=0, started=1)
    proc = ExecutorProcess(q.config, started_seen)
    try:
        proc.send(lease, marked=True)
        outcome = proc.receive()
    finally:
        proc.stop()
    assert outcome is not None and (outcome.ok, outcome.ran, outcome.result) == (
        True, True, b"started")


def test_hand_back_releases_only_held_leases(q: Queue) -> None:
    """``release(held_only=True)`` releases a held lease and leaves a started one to its
    worker (answer False, nothing written); a plain release still releases either."""
    a_id, b_id = q.enqueue_batch([b"a", b"b"])
    a, b = q.dequeue_many("w1", 2, lease=30, timeout=0, started=0)
    assert q.start([a]) == 1
    assert q.release(a, held_only=True) is False
    info = q.info(a_id)
    assert (info.status, info.worker) == (JobStatus.ACTIVE, "w1") and info.started is not None
    assert q.release(b, held_only=True) is True
    assert q.info(b_id).status is JobStatus.QUEUED
    assert q.release(a) is True and q.info(a_id).status is JobStatus.QUEUED


def test_stall_of_a_held_lease_is_free(q: Queue) -> None:
    """An executor that died before marking its lease started: `Queue.stall` sends the job
    back charged nothing ('released'), where a started one counts a stall."""
    held_id, run_id = q.enqueue_batch([b"a", b"b"])
    held, running = q.dequeue_many("w1", 2, lease=30, timeout=0, started=0)
    q.start([running])
    assert q.stall(held, "killed") is JobStatus.QUEUED
    assert q.stall(running, "killed") is JobStatus.QUEUED
    assert (q.info(held_id).stalls, q.info(run_id).stalls) == (0, 1)
    kinds = {e.job: e.type for e in q.events()
             if e.type in (EventType.STALLED, EventType.RELEASED)}
    assert kinds == {held_id: EventType.RELEASED, run_id: EventType.STALLED}
