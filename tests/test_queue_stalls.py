"""Stalls, held leases and free releases at the `Queue` level, against a real redis-server.

A lease is STARTED (the job runs) or HELD (claimed ahead for a busy executor). When a lease
expires, a started one is a stall (queued again at once, no attempt charged, up to
max_stalls), a held one goes back at no charge, up to a safety cap on free returns.
"""

from __future__ import annotations

import time
from dataclasses import replace

import pytest

from ironforge_nb.errors import InvalidOptionError, LeaseLost
from ironforge_nb.queue import DEFAULT_MAX_STALLS, Queue, RedisConfig
from ironforge_nb.queue.scripting import lua_source
from ironforge_nb.status import EventType, JobStatus
from tests.helpers import claim


@pytest.fixture
def q(config: RedisConfig) -> Queue:
    """A queue named 'work' in this test's namespace."""
    return Queue("work", config)


def expire(q: Queue, seconds: float = 0.1) -> int:
    """Let leases of ``seconds`` run out, then reap; returns how many were reaped."""
    time.sleep(seconds + 0.05)
    return q.reap()


def test_held_lease_goes_back_for_free_and_started_one_stalls(q: Queue) -> None:
    """Of a claim of 3 with started=1, the first stalls on expiry; the held ones go back to
    the front of the queue charged nothing."""
    ids = q.enqueue_batch([b"a", b"b", b"c", b"d"])
    leases = q.dequeue_many("w1", 3, lease=0.1, timeout=0, started=1)
    assert [le.job_id for le in leases] == ids[:3]
    assert q.info(ids[0]).started is not None and q.info(ids[1]).started is None
    assert expire(q) == 3
    got = {j: (i.status, i.attempts, i.stalls, i.claims) for j in ids[:3]
           if (i := q.info(j))}
    assert got == {ids[0]: (JobStatus.QUEUED, 0, 1, 1), ids[1]: (JobStatus.QUEUED, 0, 0, 1),
                   ids[2]: (JobStatus.QUEUED, 0, 0, 1)}
    types = {e.job: e.type for e in q.events() if e.type in (EventType.STALLED,
                                                              EventType.RELEASED)}
    assert types == {ids[0]: EventType.STALLED, ids[1]: EventType.RELEASED,
                     ids[2]: EventType.RELEASED}
    again = q.dequeue_many("w2", 4, timeout=0)
    assert [le.job_id for le in again][-1] == ids[3]  # the returned jobs come first
    assert {le.attempt for le in again} == {1}


def test_start_marks_held_leases(q: Queue) -> None:
    """`Queue.start` marks held leases started (their expiry is then a stall); a lease whose
    job moved on is not counted."""
    ids = q.enqueue_batch([b"a", b"b"])
    a, b = q.dequeue_many("w1", 2, lease=0.1, timeout=0, started=0)
    q.complete(a)
    assert q.start([a, b]) == 1 and q.info(ids[1]).started is not None
    assert expire(q) == 1 and q.info(ids[1]).stalls == 1


def test_complete_marks_the_next_head_and_holds_fetched_jobs(q: Queue) -> None:
    """complete_many(start=...) marks a held lease started; its fetched jobs are held or
    started as asked."""
    ids = q.enqueue_batch([b"a", b"b", b"c", b"d"])
    a, b = q.dequeue_many("w1", 2, lease=0.1, timeout=0, started=1)
    nxt, refused = q.complete_many([a], fetch_next=2, started=0, start=b)
    assert not refused and [le.job_id for le in nxt] == ids[2:]
    assert q.info(ids[1]).started is not None
    assert [q.info(j).started for j in ids[2:]] == [None, None]
    assert expire(q) == 3
    assert [q.info(j).stalls for j in ids[1:]] == [1, 0, 0]


def test_free_returns_are_capped(q: Queue) -> None:
    """A held lease that keeps expiring (a job that kills its worker before its start mark
    lands) goes back for free 10 times; after that, each expiry is a stall, so the job fails
    after max_stalls more."""
    jid = q.enqueue(b"x", max_stalls=1)
    for round_ in range(12):
        assert q.dequeue_many("w", 1, lease=0.05, timeout=0, started=0)
        assert expire(q, 0.05) == 1
        info = q.info(jid)
        if round_ < 10:
            assert (info.status, info.stalls) == (JobStatus.QUEUED, 0), round_
    assert (info.status, info.stalls, info.claims) == (JobStatus.FAILED, 2, 12)
    assert info.error is not None and info.error.startswith("stalled 2 times (max_stalls 1)")
    assert "FREE_CLAIMS = 10" in lua_source("lease_helpers")


def test_release_and_stall_charge_no_attempt(q: Queue) -> None:
    """A released job keeps its attempts and stalls; `Queue.stall` charges a stall (once: the
    same call again answers as it did), refuses another token, and the job runs again as the
    same attempt."""
    jid = q.enqueue(b"x", max_attempts=2, backoff=0)
    first = claim(q)
    assert q.fail(first, "boom") is JobStatus.SCHEDULED
    second = claim(q)
    assert second.attempt == 2
    q.release(second)
    third = claim(q)
    assert q.stall(third, "the executor process was killed by SIGKILL") is JobStatus.QUEUED
    assert q.stall(third, "killed again") is JobStatus.QUEUED  # a resend: no second stall
    with pytest.raises(LeaseLost):
        q.stall(replace(third, token="1"), "a stale token")
    info = q.info(jid)
    assert (info.attempts, info.stalls, info.claims) == (1, 1, 3)
    assert info.last_stall == "the executor process was killed by SIGKILL (worker w1)"
    assert claim(q).attempt == 2


def test_requeue_resets_stalls_and_claims(q: Queue) -> None:
    """A job dead-lettered for stalling starts again from 0 stalls and claims when requeued."""
    jid = q.enqueue(b"x", max_stalls=0)
    assert q.stall(claim(q), "killed") is JobStatus.FAILED
    q.requeue(jid)
    info = q.info(jid)
    assert (info.status, info.attempts, info.stalls, info.claims, info.last_stall) == (
        JobStatus.QUEUED, 0, 0, 0, None)
    assert q.stall(claim(q), "killed") is JobStatus.FAILED  # max_stalls is kept


def test_max_stalls_option(q: Queue) -> None:
    """max_stalls defaults to DEFAULT_MAX_STALLS (not stored), is stored otherwise, and bad
    values are refused before anything is written."""
    plain = q.enqueue(b"x")
    zero = q.enqueue_batch([b"y"], max_stalls=0)[0]
    assert q.info(plain).max_stalls == DEFAULT_MAX_STALLS == 2
    assert q.info(zero).max_stalls == 0 and q.info(zero).meta == {}
    for bad in (-1, 1.5, True, "2"):
        with pytest.raises(InvalidOptionError, match="max_stalls"):
            q.enqueue(b"z", max_stalls=bad)  # type: ignore[arg-type]
    assert q.counts()[JobStatus.QUEUED] == 2


def test_release_worker_ends_only_that_workers_leases(q: Queue) -> None:
    """`Queue.release_worker` ends a gone worker's leases at once (its started job stalls with
    the reason given, its held one goes back for free) and leaves other workers' leases."""
    ids = q.enqueue_batch([b"a", b"b", b"c"])
    q.dequeue_many("gone", 2, timeout=0, started=1)
    alive = claim(q, "alive")
    assert q.release_worker("gone", "worker gone: test") == 2
    got = [(i.status, i.stalls, i.last_stall) for i in map(q.info, ids)]
    assert got == [(JobStatus.QUEUED, 1, "worker gone: test (worker gone)"),
                   (JobStatus.QUEUED, 0, None), (JobStatus.ACTIVE, 0, None)]
    assert q.release_worker("gone", "again") == 0
    q.complete(alive)
