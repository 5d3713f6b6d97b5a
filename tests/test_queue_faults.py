"""Faults against real redis-server processes: SIGKILLed worker processes, zombie workers,
SCRIPT FLUSH racing the calls, Redis restarts mid-batch (AOF), namespaces, bad input.

Worker processes are the stand-in of `tests/queue_worker_proc.py`. Each test that kills or
restarts Redis gets a server of its own (`fresh_server`).
"""

from __future__ import annotations

import random
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from subprocess import Popen
from typing import Any

import pytest
import redis
from queue_worker_proc import ZOMBIE_CALLS, Entry, read_log, spawn, wait_for_entries

from ironforge_nb.errors import (
    InvalidNameError,
    InvalidOptionError,
    JobNotFoundError,
    SizeLimitError,
    ValidationError,
)
from ironforge_nb.local import RedisServer
from ironforge_nb.queue import Lease, Queue, RedisConfig
from ironforge_nb.status import EventType, JobStatus


@pytest.fixture
def procs() -> Iterator[list[Popen[bytes]]]:
    """Worker processes started by the test; every one still alive is SIGKILLed afterwards."""
    started: list[Popen[bytes]] = []
    yield started
    for proc in started:
        if proc.poll() is None:
            proc.kill()
        proc.wait(10)


def completed_all(q: Queue, n: int, timeout: float) -> dict[JobStatus, int]:
    """Poll counts() until ``n`` jobs are completed (or ``timeout``); returns the last counts."""
    deadline = time.monotonic() + timeout
    while True:
        counts = q.counts()
        if counts[JobStatus.COMPLETED] >= n or time.monotonic() > deadline:
            return counts
        time.sleep(0.05)


def job_keys(server: RedisServer) -> int:
    """DBSIZE of a server whose only namespace holds one queue: 2 keys (hash, payload) per job
    plus wait, events, seq, wake list and queue set."""
    client = redis.Redis.from_url(server.url)
    try:
        return int(client.dbsize()) - 5
    finally:
        client.close()


# -- SIGKILLed worker processes ----------------------------------------------------------------

def kill_workers(q: Queue, spawn_worker: Callable[[str], Popen[bytes]], logs: Path,
                 kills: int, rng: random.Random) -> list[str]:
    """Kill ``kills`` workers one by one, preferring one holding leases, and start a replacement
    each time; returns the names of the killed workers."""
    live = {f"w{i}": spawn_worker(f"w{i}") for i in range(4)}
    completed_all(q, 20, 15)  # every kill lands while work is in full swing
    killed = []
    for k in range(kills):
        time.sleep(rng.uniform(0.15, 0.35))
        busy = [name for name in live if _holding(read_log(logs / name))]
        victim = rng.choice(sorted(busy) or sorted(live))
        live[victim].kill()
        live[victim].wait()
        killed.append(victim)
        del live[victim]
        live[f"r{k}"] = spawn_worker(f"r{k}")
    return killed


def _holding(entries: list[Entry]) -> bool:
    ended = {(e.job, e.attempt) for e in entries if e.kind in ("acked", "lost")}
    return any(e.kind == "claimed" and (e.job, e.attempt) not in ended for e in entries)


@pytest.mark.slow
def test_sigkilled_worker_processes_lose_no_job(fresh_server: Callable[..., RedisServer],
                                                 procs: list[Popen[bytes]],
                                                 tmp_path: Path) -> None:
    """300 jobs, 4 worker processes, 6 random SIGKILLs: every job ends completed exactly once,
    on its first attempt; every claim a kill cut short is a stall, none an attempt."""
    server, n, seed = fresh_server(), 300, random.randrange(1 << 30)
    config = RedisConfig(url=server.url, namespace="chaos")
    q = Queue("work", config)
    ids = q.enqueue_batch([b"%d" % i for i in range(n)], max_attempts=1, max_stalls=50)

    def spawn_worker(name: str) -> Popen[bytes]:
        procs.append(spawn(server.url, "chaos", "work", tmp_path / name, name,
                           "--lease", "0.4", "--batch", "3", "--work", "0.02"))
        return procs[-1]

    killed = kill_workers(q, spawn_worker, tmp_path, 6, random.Random(seed))
    counts = completed_all(q, n, 40)
    assert counts == {**dict.fromkeys(counts, 0), JobStatus.COMPLETED: n}, f"seed {seed}"
    log = [e for path in tmp_path.iterdir() for e in read_log(path)]
    done = {(e.worker, e.job, e.attempt) for e in log if e.kind == "done"}
    assert {e.job for e in log if e.kind == "done"} == set(ids)
    logged = Counter(e.job for e in log if e.kind == "claimed")
    for jid in ids:
        info, result = q.info(jid), q.result(jid)
        assert result == f"{info.worker}:1".encode()  # the final (first) attempt's result
        assert (info.worker, jid, 1) in done  # ... which really ran
        assert (info.attempts, info.errors) == (1, ())  # no kill was charged as an attempt
        # every claim but the last ended in a stall (a kill between a claim and its log line
        # leaves the claim out of the log, never the other way round)
        assert info.stalls == info.claims - 1 >= logged[jid] - 1, f"seed {seed}: {info}"
    for e in log:  # every claim cut short by a kill was delivered again, as a stall
        if e.kind == "claimed" and e.worker in killed and q.result(e.job) != (
                f"{e.worker}:{e.attempt}".encode()):
            assert q.info(e.job).stalls >= 1, f"seed {seed}: {e}"
    redelivered = sum(q.info(jid).stalls for jid in ids)
    assert redelivered >= 1, f"seed {seed}: no kill hit a held lease"
    finals = Counter(ev.job for ev in q.events(count=100_000) if ev.type is EventType.COMPLETED)
    assert set(finals) == set(ids) and set(finals.values()) == {1}


# -- zombie worker process ----------------------------------------------------------------------

def test_zombie_process_is_refused_and_the_new_attempt_stands(
        redis_server: RedisServer, config: RedisConfig, procs: list[Popen[bytes]],
        tmp_path: Path) -> None:
    """A stalled worker process whose lease was handed on is refused at every call (LeaseLost),
    before and after the new attempt completes, and the new attempt's result and meta stand."""
    q = Queue("work", config)
    jid = q.enqueue(b"job", backoff=0)
    log, go = tmp_path / "zombie", tmp_path / "go"
    procs.append(spawn(redis_server.url, config.namespace, "work", log, "Z", "--mode", "zombie",
                       "--lease", "0.2", "--go", str(go), "--rounds", "2"))
    wait_for_entries(log, lambda es: any(e.kind == "claimed" for e in es))
    time.sleep(0.25)
    assert q.reap() == 1
    b = q.dequeue("B", lease=30, timeout=0)
    assert b is not None and (b.job_id, b.attempt) == (jid, 1)  # Z's expiry: a stall

    def refused(round_: int) -> None:
        (go.parent / f"go.{round_}").touch()
        tag = f"round{round_}:"
        outcomes = wait_for_entries(log, lambda es: sum(e.kind.startswith(tag) for e in es) == 4)
        assert {e.kind[len(tag):]: e.outcome for e in outcomes if e.kind.startswith(tag)} == (
            dict.fromkeys(ZOMBIE_CALLS, "LeaseLost"))

    refused(1)  # while B holds the job
    q.progress(b, 0.5, "B working")
    q.complete(b, b"from B")
    refused(2)  # after B completed it
    assert procs[-1].wait(10) == 0
    info = q.info(jid)
    assert q.result(jid) == b"from B"
    assert (info.status, info.worker, info.attempts, info.progress, info.message) == (
        JobStatus.COMPLETED, "B", 1, 1.0, "B working")
    assert (info.stalls, info.last_stall, info.errors) == (1, "lease expired (worker Z)", ())
    events = [ev for ev in q.events() if ev.job == jid]
    assert [ev.type for ev in events].count(EventType.COMPLETED) == 1
    assert {ev.worker for ev in events if ev.type is EventType.COMPLETED} == {"B"}


# -- SCRIPT FLUSH and restarts -----------------------------------------------------------------

class Flusher:
    """A thread that empties the script cache in a tight loop (`with Flusher(url):`)."""

    def __init__(self, url: str) -> None:
        self.client = redis.Redis.from_url(url)
        self.flushes = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.client.script_flush()
            self.flushes += 1

    def __enter__(self) -> Flusher:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.client.close()


def drain(q: Queue, n: int, timeout: float = 20.0) -> Counter[str]:
    """Claim and complete jobs until ``n`` are completed; how often each job was claimed."""
    claims: Counter[str] = Counter()
    deadline = time.monotonic() + timeout
    while q.counts()[JobStatus.COMPLETED] < n:
        assert time.monotonic() < deadline, q.counts()
        for lease in q.dequeue_many("w", 50, lease=0.5, timeout=0.1):
            claims[lease.job_id] += 1
            q.complete(lease)
    return claims


def test_script_flush_racing_batches_and_claims(config: RedisConfig,
                                                redis_server: RedisServer) -> None:
    """With SCRIPT FLUSH looping in another connection, batches and claims never fail, and
    every job is created and completed once."""
    q = Queue("work", config)
    with Flusher(redis_server.url) as flusher:
        ids = [jid for _ in range(5) for jid in q.enqueue_batch([b"x"] * 200, chunk_size=20)]
        claims = drain(q, len(ids))
    assert flusher.flushes > 10
    assert len(set(ids)) == 1000 and set(claims) == set(ids) and set(claims.values()) == {1}


def restart_when(server: RedisServer, ready: Callable[[], bool], *, crash: bool = False,
                 down: float = 0.0) -> threading.Thread:
    """A started thread that restarts ``server`` as soon as ``ready()``: gracefully (SIGTERM),
    or with ``crash`` a SIGKILL, ``down`` seconds offline, then a start on the same port."""
    def run() -> None:
        while not ready():
            time.sleep(0.001)
        if crash:
            server.kill()
            time.sleep(down)
            server.start()
        else:
            server.restart()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def queued(server: RedisServer, config: RedisConfig) -> Callable[[], int]:
    """ZCARD of the 'work' queue's wait set, read on a connection of its own."""
    client = redis.Redis.from_url(server.url)
    return lambda: int(client.zcard(config.keys.queue("work").wait))


def test_restart_mid_batch_with_aof(fresh_server: Callable[..., RedisServer]) -> None:
    """A graceful restart (AOF on) in the middle of a 20k-job batch reaches no caller: every
    id returned is one queued job in Redis, none twice, none extra."""
    server = fresh_server(appendonly=True)
    config = RedisConfig(url=server.url, namespace="restart")
    q, n = Queue("work", config), 20_000
    before = server.pid
    wait_len = queued(server, config)
    thread = restart_when(server, lambda: wait_len() >= 2_000)
    ids = q.enqueue_batch([b"p%d" % i for i in range(n)], chunk_size=250)
    thread.join(20)
    assert server.pid != before  # it did restart mid-batch
    waiting = {m.decode() for m in config.client().zrange(config.keys.queue("work").wait, 0, -1)}
    assert waiting == set(ids) and len(ids) == n == len(set(ids))
    assert job_keys(server) == 2 * n  # no job created twice under two ids


def test_crash_between_chunks_with_client_ids(fresh_server: Callable[..., RedisServer]) -> None:
    """SIGKILL + restart mid-batch (fsync always): client-chosen ids make retried chunks
    idempotent, so each id is one job; sending the whole batch again adds nothing."""
    server = fresh_server(appendonly=True, extra_args=["--appendfsync", "always"])
    config = RedisConfig(url=server.url, namespace="crash")
    q, n = Queue("work", config), 5_000
    ids = [f"order-{i}" for i in range(n)]
    wait_len = queued(server, config)
    thread = restart_when(server, lambda: wait_len() >= 1_000, crash=True)
    assert q.enqueue_batch([b"x"] * n, job_ids=ids, chunk_size=100) == ids
    thread.join(20)
    assert wait_len() == n and job_keys(server) == 2 * n
    q.enqueue_batch([b"again"] * n, job_ids=ids, chunk_size=1000)
    assert wait_len() == n and q.payload(ids[0]) == b"x"


def test_restart_while_draining(fresh_server: Callable[..., RedisServer]) -> None:
    """A restart while workers claim and complete loses no job: a claim whose reply was lost
    is answered again when resent (its receipt), and every job completes once."""
    server = fresh_server(appendonly=True)
    config = RedisConfig(url=server.url, namespace="drain")
    q = Queue("work", config)
    ids = q.enqueue_batch([b"x"] * 3_000, backoff=0)
    wait_len = queued(server, config)
    thread = restart_when(server, lambda: wait_len() <= 2_000)
    claims = drain(q, len(ids))
    thread.join(20)
    completions = Counter(ev.job for ev in q.events(count=100_000)
                          if ev.type is EventType.COMPLETED)
    assert set(claims) == set(ids) and set(completions.values()) == {1}
    assert len(completions) == len(ids)


def test_default_config_rides_out_a_one_second_restart(
        fresh_server: Callable[..., RedisServer]) -> None:
    """A Redis that is down for 1 s mid-batch (a slow restart) reaches no caller."""
    server = fresh_server(appendonly=True, extra_args=["--appendfsync", "always"])
    config = RedisConfig(url=server.url, namespace="slow")
    q = Queue("work", config)
    wait_len = queued(server, config)
    thread = restart_when(server, lambda: wait_len() >= 500, crash=True, down=1.0)
    try:
        ids = q.enqueue_batch([b"x"] * 5_000, chunk_size=100)
    finally:
        thread.join(20)
    assert wait_len() == len(ids)


def test_larger_retry_budget_rides_out_a_one_second_restart(
        fresh_server: Callable[..., RedisServer]) -> None:
    """With ``RedisConfig(retries=8)`` the same 1 s outage reaches no caller and loses nothing."""
    server = fresh_server(appendonly=True, extra_args=["--appendfsync", "always"])
    config = RedisConfig(url=server.url, namespace="slow", retries=8)
    q = Queue("work", config)
    wait_len = queued(server, config)
    thread = restart_when(server, lambda: wait_len() >= 500, crash=True, down=1.0)
    ids = q.enqueue_batch([b"x"] * 5_000, chunk_size=100)
    thread.join(20)
    assert wait_len() == len(set(ids)) == 5_000 and job_keys(server) == 10_000


# -- namespaces -------------------------------------------------------------------------------

@pytest.fixture
def two(redis_server: RedisServer, namespace: str) -> Iterator[tuple[Queue, Queue]]:
    """Queue 'work' in two namespaces of the session server."""
    configs = [RedisConfig(url=redis_server.url, namespace=f"{namespace}-{s}") for s in "ab"]
    yield Queue("work", configs[0]), Queue("work", configs[1])
    for cfg in configs:
        cfg.close()


def test_namespaces_see_only_their_own_jobs(two: tuple[Queue, Queue]) -> None:
    """Claims, counts, listings and events of a namespace show only its own jobs."""
    a, b = two
    a_ids = a.enqueue_batch([b"a1", b"a2", b"a3"])
    a.enqueue(b"a-later", delay=60)
    b_ids = b.enqueue_batch([b"b1", b"b2"])
    assert {job.id for job in a.jobs(JobStatus.QUEUED)} == set(a_ids)
    assert {ev.job for ev in b.events()} == set(b_ids)
    assert b.counts()[JobStatus.SCHEDULED] == 0 and a.counts()[JobStatus.SCHEDULED] == 1
    got = [lease.job_id for lease in b.dequeue_many("w", 10, timeout=0)]
    assert got == b_ids and b.dequeue("w", timeout=0) is None
    assert a.counts()[JobStatus.QUEUED] == 3


def test_namespaces_refuse_each_others_ids_and_maintenance(two: tuple[Queue, Queue]) -> None:
    """By-id calls on another namespace's job find nothing; reap and purge stay at home."""
    a, b = two
    expired, dead = b.enqueue(b"x", max_attempts=1), b.enqueue(b"y", max_attempts=1)
    b.dequeue("w", lease=0.05, timeout=0)
    lease = b.dequeue("w", timeout=0)
    assert lease is not None and lease.job_id == dead
    b.fail(lease, "boom")
    for call in (a.info, a.cancel, a.requeue, a.payload):
        with pytest.raises(JobNotFoundError):
            call(dead)
    assert a.result(expired) is None
    time.sleep(0.1)
    assert a.reap() == 0 and a.purge_dead() == 0
    assert b.info(expired).status is JobStatus.ACTIVE and b.info(dead).status is JobStatus.FAILED


def test_namespaces_write_only_their_own_keys(two: tuple[Queue, Queue]) -> None:
    """Every key a namespace writes starts with its own ``{namespace}:`` hash tag."""
    a, b = two
    for q in two:
        q.enqueue_batch([b"x"] * 3, delay=0.0)
        lease = q.dequeue("w", timeout=0)
        assert lease is not None
        q.complete(lease, b"r")
    client = a.config.client()
    keys_a = {k.decode() for k in client.scan_iter(match="{" + a.config.namespace + "}*")}
    keys_b = {k.decode() for k in client.scan_iter(match="{" + b.config.namespace + "}*")}
    assert keys_a and keys_b and not keys_a & keys_b
    assert all(k.startswith(a.config.keys.prefix) for k in keys_a)


# -- bad input: the cases tests/test_queue_validation.py leaves out ---------------------------

def _lease_of_other_queue(q: Queue) -> Any:
    """A lease as queue 'other' hands out (made here: a claim would write its receipt)."""
    return Lease("j", "1", 1, b"", "other", 0, worker="w")


BAD: dict[str, tuple[Callable[[Queue, Any], object], type[ValidationError]]] = {
    "namespace with colon": (lambda q, le: RedisConfig(q.config.url, "a:b"), InvalidNameError),
    "max_payload_bytes 0": (
        lambda q, le: RedisConfig(q.config.url, "ok", max_payload_bytes=0), InvalidOptionError),
    "queue name newline": (lambda q, le: Queue("a\nb", q.config), InvalidNameError),
    "queue name 129 chars": (lambda q, le: Queue("q" * 129, q.config), InvalidNameError),
    "queue name non-ascii": (lambda q, le: Queue("caf\u00e9", q.config), InvalidNameError),
    "empty job id": (lambda q, le: q.enqueue(b"", job_id=""), InvalidNameError),
    "priority bool": (lambda q, le: q.enqueue(b"", priority=True), InvalidOptionError),
    "priority -1001": (lambda q, le: q.enqueue(b"", priority=-1001), InvalidOptionError),
    "max_attempts -1": (lambda q, le: q.enqueue(b"", max_attempts=-1), InvalidOptionError),
    "max_attempts float": (lambda q, le: q.enqueue(b"", max_attempts=2.0), InvalidOptionError),  # type: ignore[arg-type]
    "max_attempts bool": (lambda q, le: q.enqueue(b"", max_attempts=True), InvalidOptionError),
    "infinite delay": (lambda q, le: q.enqueue(b"", delay=float("inf")), InvalidOptionError),
    "str delay": (lambda q, le: q.enqueue(b"", delay="1"), InvalidOptionError),  # type: ignore[arg-type]
    "nan backoff": (lambda q, le: q.enqueue(b"", backoff=float("nan")), InvalidOptionError),
    "meta field colon": (lambda q, le: q.enqueue(b"", meta={"a:b": "x"}), InvalidNameError),
    "meta field error.n": (lambda q, le: q.enqueue(b"", meta={"error.1": "x"}), InvalidNameError),
    "meta not a mapping": (lambda q, le: q.enqueue(b"", meta=[("a", "b")]), InvalidOptionError),  # type: ignore[arg-type]
    "batch priority": (lambda q, le: q.enqueue_batch([b""] * 3, priority=2000),
                       InvalidOptionError),
    "batch max_attempts 0": (lambda q, le: q.enqueue_batch([b""] * 3, max_attempts=0),
                             InvalidOptionError),
    "batch reserved meta": (lambda q, le: q.enqueue_batch([b""], meta={"token": "t"}),
                            InvalidNameError),
    "batch ids, oversize middle": (
        lambda q, le: q.enqueue_batch([b"", b"x" * 17, b""], job_ids=["i", "j", "k"],
                                      chunk_size=1), SizeLimitError),
    "lease negative": (lambda q, le: q.dequeue("w", lease=-1, timeout=0), InvalidOptionError),
    "lease infinite": (lambda q, le: q.dequeue("w", lease=float("inf"), timeout=0),
                       InvalidOptionError),
    "timeout nan": (lambda q, le: q.dequeue("w", timeout=float("nan")), InvalidOptionError),
    "worker too long": (lambda q, le: q.dequeue("w" * 201, timeout=0), InvalidOptionError),
    "worker not str": (lambda q, le: q.dequeue(7, timeout=0), InvalidOptionError),  # type: ignore[arg-type]
    "n bool": (lambda q, le: q.dequeue_many("w", True, timeout=0), InvalidOptionError),
    "heartbeat extend 0": (lambda q, le: q.heartbeat(le, extend=0), InvalidOptionError),
    "result str": (lambda q, le: q.complete(le, "done"), InvalidOptionError),  # type: ignore[arg-type]
    "result oversize": (lambda q, le: q.complete(le, b"x" * 17), SizeLimitError),
    "fetch_next -1": (lambda q, le: q.complete(le, fetch_next=-1), InvalidOptionError),
    "fail error not str": (lambda q, le: q.fail(le, ValueError("x")), InvalidOptionError),  # type: ignore[arg-type]
    "lease of other queue": (lambda q, le: q.complete(_lease_of_other_queue(q)),
                             InvalidOptionError),
    "cancel bad id": (lambda q, le: q.cancel("a b"), InvalidNameError),
    "requeue bad id": (lambda q, le: q.requeue("{x}"), InvalidNameError),
    "info bad id": (lambda q, le: q.info("a:b"), InvalidNameError),
    "result bad id": (lambda q, le: q.result("x y"), InvalidNameError),
    "jobs limit 0": (lambda q, le: q.jobs(JobStatus.QUEUED, limit=0), InvalidOptionError),
    "jobs offset -1": (lambda q, le: q.jobs(JobStatus.QUEUED, offset=-1), InvalidOptionError),
    "events count 0": (lambda q, le: q.events(count=0), InvalidOptionError),
    "reap limit bool": (lambda q, le: q.reap(True), InvalidOptionError),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_more_bad_input_raises_and_writes_nothing(redis_server: RedisServer, namespace: str,
                                                  case: str) -> None:
    """Each bad input raises its specific error, and no key of the namespace is created,
    changed or deleted (compared whole, with DUMP: other tests share the server, so its
    DBSIZE says nothing)."""
    config = RedisConfig(url=redis_server.url, namespace=namespace, max_payload_bytes=16,
                         max_result_bytes=16)
    q = Queue("work", config)
    Queue("other", config).enqueue(b"")
    q.enqueue(b"")
    lease = q.dequeue("w", timeout=0)
    client = config.client()

    def snapshot() -> dict[bytes, bytes | None]:
        keys = client.scan_iter(match="{" + namespace + "}*", count=1000)
        return {key: client.dump(key) for key in keys}

    before = snapshot()
    assert before  # the setup above wrote the jobs this compares
    with pytest.raises(BAD[case][1]):
        BAD[case][0](q, lease)
    assert snapshot() == before
    config.close()
