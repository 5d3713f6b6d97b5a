"""Safe resends: a request whose reply is lost on a cut connection is sent again by redis-py,
and the second call answers as the first did, without a second effect.

A `FaultProxy` between the client and a real redis-server lets a chosen command run in Redis
and then cuts the connection before its reply reaches the client, exactly once, so each test
knows the first call took effect and the client's retry sent it again (`proxy.fired`).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import redis.exceptions

import ironforge_nb.queue.transitions as scripts_module
from ironforge_nb.errors import LeaseLost
from ironforge_nb.local import RedisServer
from ironforge_nb.queue import Queue, RedisConfig
from ironforge_nb.status import EventType, JobStatus
from tests.fault_proxy import FaultProxy, script_match
from tests.helpers import claim, spawn_worker, wait_for
from tests.worker_tasks import EXECUTOR, command


@pytest.fixture
def proxy(redis_server: RedisServer) -> Iterator[FaultProxy]:
    """A fault proxy in front of the session's redis-server."""
    assert redis_server.port is not None
    with FaultProxy(redis_server.port) as fp:
        yield fp


@pytest.fixture
def pq(proxy: FaultProxy, namespace: str) -> Iterator[Queue]:
    """Queue 'work' of this test's namespace, reached through the proxy."""
    cfg = RedisConfig(url=proxy.url, namespace=namespace)
    yield Queue("work", cfg)
    cfg.close()


def kinds(q: Queue, job: str) -> list[EventType]:
    """The types of the job's events in its queue's stream, oldest first."""
    return [e.type for e in q.events(count=10_000) if e.job == job]


def test_lost_claim_reply_returns_the_same_jobs(pq: Queue, proxy: FaultProxy) -> None:
    """A claim that ran but whose reply was lost: the resend returns the same jobs under the
    same tokens and claims nothing more (no job left active with nobody holding it)."""
    ids = pq.enqueue_batch([b"a", b"b", b"c"])
    proxy.drop_reply(script_match("claim_jobs"))
    leases = pq.dequeue_many("w1", 2, timeout=0)
    assert proxy.fired == 1
    assert [le.job_id for le in leases] == ids[:2]
    for lease in leases:
        info = pq.info(lease.job_id)
        assert (info.status, info.claims, info.worker) == (JobStatus.ACTIVE, 1, "w1")
    assert pq.counts()[JobStatus.QUEUED] == 1
    assert [e.job for e in pq.events() if e.type is EventType.CLAIMED] == ids[:2]
    _, refused = pq.complete_many(leases)  # the tokens handed back are the jobs' own
    assert not refused and {pq.info(j).status for j in ids[:2]} == {JobStatus.COMPLETED}


def test_lost_complete_and_fetch_reply(pq: Queue, proxy: FaultProxy) -> None:
    """complete_many(fetch_next=...) whose reply was lost: the resend reports no refusal and
    returns the same next jobs; each job is completed once and claimed once."""
    ids = pq.enqueue_batch([b"a", b"b", b"c", b"d"])
    first = pq.dequeue_many("w1", 2, timeout=0)
    proxy.drop_reply(script_match("complete_job"))
    nxt, refused = pq.complete_many(first, [b"ra", b"rb"], fetch_next=2)
    assert proxy.fired == 1 and refused == {}
    assert [le.job_id for le in nxt] == ids[2:]
    assert [pq.info(j).claims for j in ids] == [1, 1, 1, 1]
    assert [kinds(pq, j).count(EventType.COMPLETED) for j in ids[:2]] == [1, 1]
    assert pq.result(ids[0]) == b"ra"
    pq.complete_many(nxt)
    assert pq.counts()[JobStatus.COMPLETED] == 4


@pytest.mark.parametrize("backoff", [60.0, 0.0])
def test_lost_fail_reply(pq: Queue, proxy: FaultProxy, backoff: float) -> None:
    """A failure whose reply was lost answers as it did when sent again, even once the job
    has been claimed by another worker (backoff 0); one attempt is charged."""
    jid = pq.enqueue(b"x", max_attempts=3, backoff=backoff)
    lease = claim(pq)
    proxy.drop_reply(script_match("fail_job"))
    assert pq.fail(lease, "boom") is JobStatus.SCHEDULED
    assert proxy.fired == 1 and pq.info(jid).attempts == 1
    if backoff == 0:
        other = claim(pq, "w2")
        assert pq.fail(lease, "boom") is JobStatus.SCHEDULED  # a late resend, same answer
        assert pq.info(jid).attempts == 1 and pq.info(jid).worker == "w2"
        with pytest.raises(LeaseLost):  # a different token is refused
            pq.fail(claim_token(lease, "1"), "zombie")
        pq.complete(other)


def claim_token(lease: object, token: str) -> object:
    """``lease`` with another token (what a zombie worker would hold)."""
    from dataclasses import replace

    return replace(lease, token=token)  # type: ignore[type-var]


def test_lost_release_and_stall_replies(pq: Queue, proxy: FaultProxy) -> None:
    """A release or a stall whose reply was lost answers as it did when sent again, even after
    the job moved on; nothing is charged twice; another token still gets LeaseLost."""
    jid = pq.enqueue(b"x")
    lease = claim(pq)
    proxy.drop_reply(script_match("release_job"))
    pq.release(lease)
    assert proxy.fired == 1
    taken = claim(pq, "w2")
    pq.release(lease)  # late resend: no LeaseLost
    proxy.drop_reply(script_match("stall_job"))
    assert pq.stall(taken, "killed") is JobStatus.QUEUED
    assert proxy.fired == 2
    again = claim(pq, "w3")
    assert pq.stall(taken, "killed") is JobStatus.QUEUED  # late resend, same answer
    info = pq.info(jid)
    assert (info.attempts, info.stalls, info.claims, info.worker) == (0, 1, 3, "w3")
    with pytest.raises(LeaseLost):
        pq.release(claim_token(again, "1"))  # type: ignore[arg-type]
    assert kinds(pq, jid).count(EventType.STALLED) == 1


def test_lost_requeue_and_cancel_replies(pq: Queue, proxy: FaultProxy) -> None:
    """Requeue and cancel whose replies were lost answer as they did (no JobStateError, no
    'already ended')."""
    jid = pq.enqueue(b"x", max_attempts=1)
    pq.fail(claim(pq), "boom")
    proxy.drop_reply(script_match("requeue_job"))
    pq.requeue(jid)
    assert proxy.fired == 1 and pq.info(jid).status is JobStatus.QUEUED
    proxy.drop_reply(script_match("cancel_job"))
    assert pq.cancel(jid) is True
    assert proxy.fired == 2 and kinds(pq, jid).count(EventType.CANCELLED) == 1
    assert pq.cancel(jid) is False  # a new call on an ended job still says so


def test_lost_heartbeat_reply(pq: Queue, proxy: FaultProxy) -> None:
    """A heartbeat whose reply was lost extends the lease when sent again."""
    pq.enqueue(b"x")
    lease = claim(pq, lease=5)
    proxy.drop_reply(script_match("heartbeat_job"))
    assert pq.heartbeat(lease, extend=60) > lease.deadline_ms + 50_000
    assert proxy.fired == 1


def test_resent_claim_answers_from_its_receipt(pq: Queue,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """Two claims with the same request id (what a resend is): the second returns the first's
    jobs with fresh deadlines while they are held, and nothing once they moved on."""
    monkeypatch.setattr(scripts_module, "new_request_id", lambda: "r-fixed")
    ids = pq.enqueue_batch([b"a", b"b", b"c"])
    (first,) = pq.dequeue_many("w1", 1, timeout=0)
    (again,) = pq.dequeue_many("w1", 1, timeout=0)
    assert (again.job_id, again.token) == (first.job_id, first.token) == (ids[0], first.token)
    assert again.deadline_ms >= first.deadline_ms and pq.info(ids[0]).claims == 1
    assert pq.cancel(ids[0])
    assert pq.dequeue_many("w1", 1, timeout=0) == []  # its job moved on: nothing, no new claim
    assert pq.counts()[JobStatus.QUEUED] == 2


def test_worker_rides_out_lost_replies(proxy: FaultProxy, namespace: str,
                                       tmp_path: Path) -> None:
    """A real worker whose claims and completions lose their replies (3 of each, cut right
    after Redis ran them) runs every job once: each is claimed once, never stalls, and none
    waits for its lease to run out."""
    cfg = RedisConfig(url=proxy.url, namespace=namespace)
    q = Queue("work", cfg)
    ids = q.enqueue_batch([command("echo", value=i) for i in range(40)])
    for _ in range(3):
        proxy.drop_reply(script_match("claim_jobs"))
        proxy.drop_reply(script_match("complete_job"))
    worker = spawn_worker(cfg, tmp_path / "w1.log", "w1",
                          ["--queues", "work", "--executor", EXECUTOR])
    try:
        wait_for(lambda: q.counts()[JobStatus.COMPLETED] == len(ids))
        assert proxy.fired == 6
        assert {(q.info(j).claims, q.info(j).stalls, q.info(j).attempts) for j in ids} == {
            (1, 0, 1)}
    finally:
        worker.kill()
        worker.wait()
        cfg.close()


def test_claim_lost_past_the_retries_is_answered_by_the_next_claim(
        proxy: FaultProxy, namespace: str) -> None:
    """A claim that ran in Redis but lost its reply on every try (the client's retries spent,
    the error raised) leaves its jobs to the same worker's next claim, which returns them
    (claimed once, the first started as this call asks) instead of new ones; the call after
    that claims afresh."""
    cfg = RedisConfig(url=proxy.url, namespace=namespace, retries=1)  # 2 tries
    q = Queue("work", cfg)
    try:
        ids = q.enqueue_batch([b"a", b"b", b"c", b"d"])
        for _ in range(2):
            proxy.drop_reply(script_match("claim_jobs"))
        with pytest.raises(redis.exceptions.ConnectionError):
            q.dequeue_many("w1", 2, timeout=0, started=0)
        assert proxy.fired == 2
        assert [q.info(j).status for j in ids] == [JobStatus.ACTIVE] * 2 + [JobStatus.QUEUED] * 2
        assert q.info(ids[0]).started is None  # the lost claim held them
        leases = q.dequeue_many("w1", 1, timeout=0, started=1)
        assert [le.job_id for le in leases] == ids[:2]
        assert [q.info(j).claims for j in ids] == [1, 1, 0, 0]
        assert q.info(ids[0]).started is not None and q.info(ids[1]).started is None
        assert [e.job for e in q.events() if e.type is EventType.CLAIMED] == ids[:2]
        assert [le.job_id for le in q.dequeue_many("w1", 2, timeout=0)] == ids[2:]
        _, refused = q.complete_many([*leases])
        assert not refused
    finally:
        cfg.close()


def test_complete_and_fetch_lost_past_the_retries(proxy: FaultProxy, namespace: str) -> None:
    """The same for a completion that fetches: its jobs were completed and its next jobs
    claimed; the worker's next fetching completion gets those next jobs."""
    cfg = RedisConfig(url=proxy.url, namespace=namespace, retries=1)
    q = Queue("work", cfg)
    try:
        ids = q.enqueue_batch([b"a", b"b", b"c", b"d"])
        a, b = q.dequeue_many("w1", 2, timeout=0)
        for _ in range(2):
            proxy.drop_reply(script_match("complete_job"))
        with pytest.raises(redis.exceptions.ConnectionError):
            q.complete_many([a], fetch_next=1)
        assert q.info(ids[0]).status is JobStatus.COMPLETED
        assert q.info(ids[2]).status is JobStatus.ACTIVE  # claimed by the lost call
        nxt, refused = q.complete_many([b], fetch_next=1)
        assert not refused and [le.job_id for le in nxt] == [ids[2]]
        assert [q.info(j).claims for j in ids] == [1, 1, 1, 0]
        assert q.counts()[JobStatus.QUEUED] == 1
    finally:
        cfg.close()


def test_lost_start_reply_sent_ahead_is_sent_again(pq: Queue, proxy: FaultProxy) -> None:
    """A start mark sent ahead (`Queue.send_start`, as an executor sends the next job's) whose
    reply is lost is sent again when its answer is awaited, and answers as the first did."""
    pq.enqueue(b"x")
    [lease] = pq.dequeue_many("w1", 1, 30, timeout=0, started=0)
    proxy.drop_reply(script_match("start_jobs"))
    answer = pq.send_start([lease])
    assert answer() == 1 and proxy.fired == 1
    assert pq.info(lease.job_id).started is not None


def test_a_call_after_a_mark_sent_ahead_gets_its_own_reply(pq: Queue) -> None:
    """Another call on the same thread while a start mark's reply is pending reads that reply
    first (kept for its awaiter), so each caller gets its own answer."""
    ids = pq.enqueue_batch([b"a", b"b"])
    a, b = pq.dequeue_many("w1", 2, 30, timeout=0, started=0)
    pq.release(b)
    answer_a, answer_b = pq.send_start([a]), pq.send_start([b])  # the second reads the first
    assert pq.info(ids[0]).status is JobStatus.ACTIVE
    assert (answer_b(), answer_a()) == (0, 1)
    assert pq.info(ids[0]).started is not None and pq.info(ids[1]).started is None
