"""Behaviour of `Queue` against a real redis-server: life cycle, order, retries, reads."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from ironforge_nb.errors import InvalidNameError, JobNotFoundError, SizeLimitError
from ironforge_nb.queue import Queue, RedisConfig
from ironforge_nb.queue.queue import REAP_INTERVAL
from ironforge_nb.status import Event, EventType, JobStatus
from tests.helpers import assert_woken_by_enqueue, claim, wait_for


@pytest.fixture
def q(config: RedisConfig) -> Queue:
    """A queue named 'work' in this test's namespace."""
    return Queue("work", config)



def test_enqueue_dequeue_complete(q: Queue) -> None:
    """A job's payload reaches the worker and its result and status are stored."""
    jid = q.enqueue(b"hello")
    lease = claim(q)
    assert (lease.job_id, lease.payload, lease.attempt, lease.queue) == (jid, b"hello", 1, "work")
    assert q.complete(lease, b"world") == []
    info = q.info(jid)
    assert info.status is JobStatus.COMPLETED and info.attempts == 1 and info.progress == 1.0
    assert info.worker == "w1" and info.finished is not None and info.started is not None
    assert q.result(jid) == b"world" and q.payload(jid) == b"hello"


def test_priority_then_fifo(q: Queue) -> None:
    """Higher priority is claimed first, and jobs of one priority in enqueue order."""
    low1 = q.enqueue(b"", priority=-5)
    mid1, mid2 = q.enqueue(b""), q.enqueue(b"")
    high = q.enqueue(b"", priority=7)
    low2 = q.enqueue(b"", priority=-5)
    order = [claim(q).job_id for _ in range(5)]
    assert order == [high, mid1, mid2, low1, low2]


def test_delay_holds_job_until_due(q: Queue) -> None:
    """A delayed job is scheduled, not claimable before its due time, then delivered."""
    jid = q.enqueue(b"later", delay=0.3)
    assert q.info(jid).status is JobStatus.SCHEDULED
    assert q.dequeue("w", timeout=0) is None
    start = time.monotonic()
    lease = q.dequeue("w", timeout=3)
    assert lease is not None and lease.job_id == jid
    assert 0.15 <= time.monotonic() - start < 2.0


def test_same_job_id_twice_is_one_job(q: Queue) -> None:
    """Enqueue with a client-chosen id is idempotent: the second call changes nothing."""
    assert q.enqueue(b"first", job_id="order-42") == "order-42"
    assert q.enqueue(b"second", job_id="order-42") == "order-42"
    assert q.counts()[JobStatus.QUEUED] == 1
    assert q.payload("order-42") == b"first"


def test_enqueue_batch_in_chunks(q: Queue) -> None:
    """A batch spread over several chunks creates every job once, in order."""
    ids = q.enqueue_batch([b"%d" % i for i in range(53)], chunk_size=10)
    assert len(set(ids)) == 53 and q.counts()[JobStatus.QUEUED] == 53
    assert [lease.job_id for lease in q.dequeue_many("w", 60, timeout=0)] == ids


def test_enqueue_batch_with_job_ids_is_idempotent(q: Queue) -> None:
    """Sending the same batch of ids twice (a retried chunk) creates no duplicate."""
    ids = [f"job-{i}" for i in range(20)]
    assert q.enqueue_batch([b"x"] * 20, job_ids=ids, chunk_size=7) == ids
    q.enqueue_batch([b"y"] * 20, job_ids=ids, chunk_size=3)
    assert q.counts()[JobStatus.QUEUED] == 20 and q.payload("job-5") == b"x"


def test_dequeue_many_claims_up_to_n(q: Queue) -> None:
    """dequeue_many hands out at most n jobs, each with its own token."""
    q.enqueue_batch([b"a"] * 5)
    leases = q.dequeue_many("w", 3, timeout=0)
    assert len(leases) == 3 and len({lease.token for lease in leases}) == 3
    assert q.counts()[JobStatus.ACTIVE] == 3 and q.counts()[JobStatus.QUEUED] == 2


def test_complete_fetches_next_jobs(q: Queue) -> None:
    """complete(fetch_next=k) claims the next k jobs in the same call."""
    a, b, c = q.enqueue(b"a"), q.enqueue(b"b"), q.enqueue(b"c")
    first = claim(q, lease=12.5)
    assert first.job_id == a
    nxt = q.complete(first, fetch_next=2)
    assert [lease.job_id for lease in nxt] == [b, c]
    assert all(lease.worker == "w1" and lease.lease_ms == 12_500 for lease in nxt)
    assert q.info(b).status is JobStatus.ACTIVE


def test_dequeue_blocks_until_a_job_arrives(q: Queue) -> None:
    """An idle worker blocked in dequeue is woken by an enqueue, long before its timeout."""
    assert_woken_by_enqueue(q)


def test_dequeue_without_wait_returns_none_at_once(q: Queue) -> None:
    """timeout=0 on an empty queue returns None without blocking."""
    start = time.monotonic()
    assert q.dequeue("w", timeout=0) is None
    assert time.monotonic() - start < 0.5


def test_fail_schedules_retry_with_backoff(q: Queue, redis_client: Any) -> None:
    """A failed attempt with attempts left is scheduled after backoff * 2^(attempt-1) (+<=25%)."""
    jid = q.enqueue(b"", max_attempts=3, backoff=10)
    q.fail(claim(q), "boom 1")
    lease = None
    redis_client.zadd(q.config.keys.queue("work").scheduled, {jid: 0})  # make it due now
    lease = claim(q)
    t0 = int(redis_client.time()[0]) * 1000
    assert q.fail(lease, "boom 2") is JobStatus.SCHEDULED
    due = redis_client.zscore(q.config.keys.queue("work").scheduled, jid)
    assert 20_000 - 2_000 <= due - t0 <= 25_000 + 2_000  # attempt 2: 10 s * 2, jitter <= 25%
    info = q.info(jid)
    assert info.status is JobStatus.SCHEDULED and info.error == "boom 2" and info.attempts == 2


def test_exhausted_attempts_go_to_dead_letters_with_history(q: Queue) -> None:
    """After max_attempts failures the job is failed, in the DLQ, with one error per attempt."""
    jid = q.enqueue(b"", max_attempts=2, backoff=0)
    assert q.fail(claim(q), "first") is JobStatus.SCHEDULED
    assert q.fail(claim(q), "second") is JobStatus.FAILED
    [dead] = q.dead_letters()
    assert dead.id == jid and dead.status is JobStatus.FAILED
    assert [(e.attempt, e.error) for e in dead.errors] == [(1, "first"), (2, "second")]


def test_fail_without_retry_dead_letters_at_once(q: Queue) -> None:
    """fail(retry=False) skips the remaining attempts."""
    jid = q.enqueue(b"", max_attempts=5)
    assert q.fail(claim(q), "fatal", retry=False) is JobStatus.FAILED
    assert q.info(jid).attempts == 1 and q.counts()[JobStatus.FAILED] == 1


def test_requeue_resets_attempts_and_keeps_history(q: Queue) -> None:
    """A requeued dead job is claimable again from attempt 1; its old errors stay."""
    jid = q.enqueue(b"", max_attempts=1)
    q.fail(claim(q), "bad data")
    q.requeue(jid)
    info = q.info(jid)
    assert info.status is JobStatus.QUEUED and info.attempts == 0
    lease = claim(q)
    assert lease.attempt == 1 and q.counts()[JobStatus.FAILED] == 0
    q.fail(lease, "still bad", retry=False)
    assert [e.error for e in q.info(jid).errors] == ["bad data", "still bad"]


def test_purge_dead_deletes_jobs_and_keys(q: Queue, redis_client: Any) -> None:
    """purge_dead removes every dead job's hash, payload and result."""
    ids = q.enqueue_batch([b"x" * 10] * 3, max_attempts=1)
    for _ in ids:
        q.fail(claim(q), "x")
    job_keys = q.config.keys.job_prefix + "*"
    assert len(list(redis_client.scan_iter(match=job_keys))) == 6  # 3 hashes + 3 payloads
    assert q.purge_dead() == 3
    assert list(redis_client.scan_iter(match=job_keys)) == []
    with pytest.raises(JobNotFoundError):
        q.info(ids[0])
    assert q.counts()[JobStatus.FAILED] == 0


def test_cancel_queued_job(q: Queue) -> None:
    """A cancelled queued job is never claimed; cancelling it again returns False."""
    jid = q.enqueue(b"")
    assert q.cancel(jid) is True
    assert q.dequeue("w", timeout=0) is None
    assert q.info(jid).status is JobStatus.CANCELLED
    assert q.cancel(jid) is False
    assert q.counts()[JobStatus.CANCELLED] == 1


def test_cancel_scheduled_job(q: Queue) -> None:
    """A cancelled delayed job leaves the scheduled set."""
    jid = q.enqueue(b"", delay=60)
    assert q.cancel(jid)
    assert q.counts()[JobStatus.SCHEDULED] == 0 and q.info(jid).status is JobStatus.CANCELLED


def test_progress_updates_meta_and_emits_event(q: Queue) -> None:
    """progress() sets progress and message on the job and appends a progress event."""
    jid = q.enqueue(b"")
    lease = claim(q)
    q.progress(lease, 0.25, "reading")
    q.progress(lease, 0.5)
    info = q.info(jid)
    assert (info.progress, info.message) == (0.5, "reading")
    events = [e for e in q.events() if e.type is EventType.PROGRESS]
    assert [(e.progress, e.message) for e in events] == [(0.25, "reading"), (0.5, None)]


def test_progress_never_reads_the_payload(q: Queue, redis_client: Any) -> None:
    """Progress updates leave the payload key untouched (its idle time keeps growing)."""
    jid = q.enqueue(b"p" * 100_000)
    lease = claim(q)
    key = q.config.keys.payload(jid)
    # OBJECT IDLETIME counts whole seconds of a clock the server updates in its cron: wait
    # for 2 rather than sleep; a read would set it back to 0 (1 if the clock ticks meanwhile)
    wait_for(lambda: redis_client.object("idletime", key) >= 2, timeout=30)
    for i in range(20):
        q.progress(lease, i / 20, "step")
    assert redis_client.object("idletime", key) >= 2


def test_heartbeat_extends_deadline(q: Queue, redis_client: Any) -> None:
    """heartbeat moves the lease deadline to now + extend."""
    jid = q.enqueue(b"")
    lease = claim(q, lease=1.0)
    deadline = q.heartbeat(lease, extend=100)
    assert deadline >= lease.deadline_ms + 90_000
    assert redis_client.zscore(q.config.keys.queue("work").active, jid) == deadline


def test_reap_turns_expired_lease_into_a_stall(q: Queue) -> None:
    """An expired lease of a started job is a stall, not an attempt: the job is queued again
    at once (no backoff) and its next claim runs the same attempt."""
    jid = q.enqueue(b"", backoff=100)
    claim(q, lease=0.2)
    assert q.reap() == 0
    time.sleep(0.3)
    assert q.reap() == 1
    info = q.info(jid)
    assert (info.status, info.attempts, info.stalls, info.error) == (JobStatus.QUEUED, 0, 1, None)
    assert info.last_stall == "lease expired (worker w1)"
    again = claim(q, "w2")
    assert (again.job_id, again.attempt) == (jid, 1)


def test_stalls_past_max_stalls_dead_letter(q: Queue) -> None:
    """A job that stalls more than its max_stalls fails saying so, whatever attempts remain."""
    jid = q.enqueue(b"", max_attempts=5, max_stalls=1)
    for worker in ("w1", "w2"):
        claim(q, worker, lease=0.1)
        time.sleep(0.2)
        assert q.reap() == 1
    info = q.info(jid)
    assert (info.status, info.attempts, info.stalls) == (JobStatus.FAILED, 0, 2)
    assert info.error == "stalled 2 times (max_stalls 1); last: lease expired (worker w2)"
    assert [(e.attempt, e.error) for e in info.errors] == [(1, info.error)]
    assert q.counts()[JobStatus.FAILED] == 1


def test_one_reaper_per_process(q: Queue) -> None:
    """Every handle on a queue shares the process's reap schedule: a second handle does not
    reap again within REAP_INTERVAL of the first, and does once it has passed."""
    other = Queue(q.name, q.config)
    t0 = time.monotonic() + 1000.0  # past any earlier reap of this queue by this process
    for handle, now, reaped in ((q, t0, 1), (other, t0 + REAP_INTERVAL / 2, 0),
                                (other, t0 + REAP_INTERVAL, 1)):
        q.enqueue(b"")
        claim(q, lease=0.05)
        time.sleep(0.1)
        assert handle.reap_if_due(now) == reaped
        if not reaped:
            assert handle.reap() == 1  # the lease was there to reap: the schedule held it back


def test_complete_replay_is_idempotent(q: Queue) -> None:
    """Completing the same lease twice (a retried call) records one completion."""
    jid = q.enqueue(b"")
    lease = claim(q)
    q.complete(lease, b"r")
    assert q.complete(lease, b"other") == []
    assert q.result(jid) == b"r"
    assert sum(e.type is EventType.COMPLETED for e in q.events()) == 1


def test_fail_replay_is_idempotent(q: Queue) -> None:
    """Failing the same lease twice records one failure."""
    jid = q.enqueue(b"", max_attempts=3)
    lease = claim(q)
    q.fail(lease, "once")
    assert q.fail(lease, "twice") is JobStatus.SCHEDULED
    assert len(q.info(jid).errors) == 1


def test_result_over_limit_is_refused_and_job_stays_active(redis_server: Any,
                                                          namespace: str) -> None:
    """A result beyond max_result_bytes raises SizeLimitError and writes nothing."""
    cfg = RedisConfig(url=redis_server.url, namespace=namespace, max_result_bytes=10)
    q = Queue("work", cfg)
    jid = q.enqueue(b"")
    lease = claim(q)
    with pytest.raises(SizeLimitError) as err:
        q.complete(lease, b"x" * 11)
    assert (err.value.size, err.value.limit) == (11, 10)
    assert q.info(jid).status is JobStatus.ACTIVE and q.result(jid) is None
    cfg.close()


def test_completed_retention_trims_oldest(redis_server: Any, namespace: str) -> None:
    """Only the newest completed_retention completed jobs are kept, with their keys."""
    cfg = RedisConfig(url=redis_server.url, namespace=namespace, completed_retention=3)
    q = Queue("work", cfg)
    ids = q.enqueue_batch([b"x"] * 5)
    for _ in ids:
        q.complete(claim(q), b"r")
    assert q.counts()[JobStatus.COMPLETED] == 3
    for old in ids[:2]:
        with pytest.raises(JobNotFoundError):
            q.info(old)
        assert q.result(old) is None
    assert [info.id for info in q.jobs(JobStatus.COMPLETED)] == ids[:1:-1]
    cfg.close()


def test_meta_fields_reach_lease_and_info(q: Queue) -> None:
    """User meta fields are stored and handed to the worker; a plain job has no run."""
    jid = q.enqueue(b"", meta={"owner": "ana", "team": "sales"})
    lease = claim(q)
    assert lease.meta["owner"] == "ana" and lease.meta["team"] == "sales"
    assert lease.meta["max_attempts"] == "3" and "status" not in lease.meta
    info = q.info(jid)
    assert (info.run, info.task, info.meta) == (None, None, {"owner": "ana", "team": "sales"})


@pytest.mark.parametrize("field", ["run", "task"])
def test_run_fields_are_refused_and_nothing_is_written(q: Queue, field: str) -> None:
    """A plain job may not set `run` or `task` (run bookkeeping): refused, no key written."""
    client = q.config.client()
    before = sorted(client.scan_iter(f"{{{q.config.namespace}}}:*"))
    with pytest.raises(InvalidNameError, match="pipeline run"):
        q.enqueue(b"", meta={field: "r1", "owner": "ana"})
    with pytest.raises(InvalidNameError, match="pipeline run"):
        q.enqueue_batch([b"a", b"b"], meta={field: "r1"})
    assert sorted(client.scan_iter(f"{{{q.config.namespace}}}:*")) == before
    assert q.counts()[JobStatus.QUEUED] == 0


def test_counts_by_status(q: Queue) -> None:
    """counts() reports every status of the queue."""
    q.enqueue_batch([b""] * 4)
    q.enqueue(b"", delay=60)
    q.complete(claim(q))
    claim(q)
    q.fail(claim(q), "x", retry=False)
    assert q.counts() == {
        JobStatus.QUEUED: 1, JobStatus.SCHEDULED: 1, JobStatus.ACTIVE: 1,
        JobStatus.COMPLETED: 1, JobStatus.FAILED: 1, JobStatus.CANCELLED: 0,
    }


def test_jobs_lists_in_claim_order(q: Queue) -> None:
    """jobs(QUEUED) lists queued jobs in the order workers will get them, with paging."""
    low = q.enqueue(b"", priority=-1)
    first, second = q.enqueue(b""), q.enqueue(b"")
    assert [j.id for j in q.jobs(JobStatus.QUEUED)] == [first, second, low]
    assert [j.id for j in q.jobs("queued", limit=1, offset=1)] == [second]


def test_events_record_each_transition(q: Queue) -> None:
    """The queue's stream has one event per transition with the Event fields."""
    jid = q.enqueue(b"")
    lease = claim(q, "w9")
    q.complete(lease)
    events = q.events()
    assert [e.type for e in events] == [EventType.ENQUEUED, EventType.CLAIMED,
                                        EventType.COMPLETED]
    claimed = events[1]
    assert (claimed.job, claimed.queue, claimed.status, claimed.attempt, claimed.worker) == (
        jid, "work", JobStatus.ACTIVE, 1, "w9")
    assert q.events(since=events[1].id) == events[2:]


def test_a_call_writes_its_job_events_as_one_entry_read_as_each_event(q: Queue) -> None:
    """The claimed and completed events of one claim or completion call are one 'job_events'
    entry of the queue's stream (an XADD each cost as much as the rest of a claim), which
    `Queue.events` reads as the events an XADD each wrote, in order, with the entry's id; a
    call's only event is written as it is."""
    jids = q.enqueue_batch([b""] * 4)
    leases = q.dequeue_many("w 1", 4, started=1, timeout=0)
    nxt, refused = q.complete_many(leases[:3], fetch_next=1)
    assert not refused and [le.job_id for le in nxt] == []  # nothing left to fetch
    q.complete_many(leases[3:])
    raw = q.config.client().xrange(q.config.keys.queue("work").events)
    assert [f[b"type"] for _, f in raw] == [b"enqueued"] * 4 + [b"job_events"] * 2 + [
        b"completed"]  # a call with one event writes it as it is
    ids = [eid.decode() for eid, _ in raw]
    ts = [int(f[b"ts"]) for _, f in raw]

    def ev(kind: EventType, at: int, i: int, status: JobStatus) -> Event:
        return Event(kind, ts[at], ids[at], job=jids[i], queue="work", status=status,
                     attempt=1, worker="w 1")

    events = q.events()
    assert events[4:] == [*(ev(EventType.CLAIMED, 4, i, JobStatus.ACTIVE) for i in range(4)),
                          *(ev(EventType.COMPLETED, 5, i, JobStatus.COMPLETED) for i in range(3)),
                          ev(EventType.COMPLETED, 6, 3, JobStatus.COMPLETED)]
    assert q.events(since=ids[4]) == events[8:]


def test_namespaces_are_isolated(redis_server: Any, namespace: str) -> None:
    """Two namespaces on one Redis never see each other's jobs."""
    a = RedisConfig(url=redis_server.url, namespace=namespace + "-a")
    b = RedisConfig(url=redis_server.url, namespace=namespace + "-b")
    qa, qb = Queue("work", a), Queue("work", b)
    jid = qa.enqueue(b"staging")
    assert qb.dequeue("w", timeout=0) is None and qb.counts()[JobStatus.QUEUED] == 0
    with pytest.raises(JobNotFoundError):
        qb.info(jid)
    assert claim(qa).job_id == jid
    a.close()
    b.close()


def test_repr_is_plain(q: Queue, config: RedisConfig) -> None:
    """repr names the queue and namespace without touching Redis."""
    assert repr(q) == f"Queue('work', namespace={config.namespace!r})"


def test_complete_many_completes_all_and_fetches_next(q: Queue) -> None:
    """complete_many ends several attempts and claims the next batch in one call."""
    ids = q.enqueue_batch([b"%d" % i for i in range(6)])
    first = q.dequeue_many("w", 3, timeout=0)
    nxt, refused = q.complete_many(first, [b"r0", None, b"r2"], fetch_next=3)
    assert refused == {} and [lease.job_id for lease in nxt] == ids[3:]
    assert q.result(ids[0]) == b"r0" and q.result(ids[1]) is None
    assert q.counts()[JobStatus.COMPLETED] == 3 and q.counts()[JobStatus.ACTIVE] == 3


def test_complete_many_reports_refusals_and_claims_nothing(q: Queue) -> None:
    """A refused lease in a batch is reported by id; the others complete; no job is claimed."""
    ids = q.enqueue_batch([b""] * 4)
    leases = q.dequeue_many("w", 3, timeout=0)
    q.cancel(ids[1])
    nxt, refused = q.complete_many(leases, fetch_next=5)
    assert nxt == [] and list(refused) == [ids[1]]
    assert refused[ids[1]].status == "cancelled"  # type: ignore[attr-defined]
    assert q.info(ids[0]).status is JobStatus.COMPLETED
    assert q.counts()[JobStatus.QUEUED] == 1


def test_concurrent_enqueues_of_one_id_make_one_job(q: Queue) -> None:
    """Twenty threads enqueueing the same job id create exactly one job and all get the id."""
    got: list[str] = []
    threads = [threading.Thread(target=lambda: got.append(q.enqueue(b"x", job_id="same")))
               for _ in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert got == ["same"] * 20 and q.counts()[JobStatus.QUEUED] == 1
    assert sum(e.type is EventType.ENQUEUED for e in q.events()) == 1


def test_batches_beyond_one_thousand_jobs(q: Queue) -> None:
    """Claims and completions of more than 1000 jobs per call (chunked inside the scripts)."""
    ids = q.enqueue_batch([b""] * 4600, chunk_size=2300)
    first = q.dequeue_many("w", 2200, timeout=0)
    nxt, refused = q.complete_many(first, fetch_next=2300)
    assert refused == {} and len(nxt) == 2300
    assert q.counts()[JobStatus.COMPLETED] == 2200 and q.counts()[JobStatus.ACTIVE] == 2300
    assert sorted(lease.job_id for lease in first + nxt) == sorted(ids[:4500])


def test_batch_with_some_existing_ids_creates_only_the_new_ones(q: Queue) -> None:
    """Ids that already exist, anywhere in a batch of several 1000-id groups, are skipped."""
    ids = [f"j{i}" for i in range(2500)]
    q.enqueue_batch([b"old"] * 11, job_ids=[*ids[1500:1510], ids[10]])
    assert q.enqueue_batch([b"new"] * 2500, job_ids=ids, chunk_size=2500) == ids
    assert q.counts()[JobStatus.QUEUED] == 2500
    assert [q.payload(j) for j in ("j10", "j11", "j1499", "j1500")] == [b"old", b"new", b"new",
                                                                        b"old"]
    assert sum(e.type is EventType.ENQUEUED for e in q.events(count=5000)) == 2500


def test_attempts_count_tries_that_ended(q: Queue) -> None:
    """A new job reports 0 attempts; its first claim carries attempt 1, which counts once the
    task's own outcome ends it (a claim alone charges nothing)."""
    jid = q.enqueue(b"x")
    assert q.info(jid).attempts == 0
    lease = claim(q)
    info = q.info(jid)
    assert (lease.attempt, info.attempts, info.claims) == (1, 0, 1)
    q.complete(lease)
    assert q.info(jid).attempts == 1
