"""An executor that completes its success and claims its next job itself (worker/executor.py).

When an executor's task succeeds and no lease waits behind it, the executor completes it in
Redis and claims the next job of its queue in the same call (started), tells its worker on
the pipe (the completion, the lease), and only then runs the lease's code. These tests check
the paths of that protocol with real worker processes or real executor processes: the claim
is the executor's (its own receipt), the worker times out and cancels the claimed lease as
any other, a stopping worker's executor claims nothing more, a worker killed after the claim
charges exactly the code that ran, and a claim its executor never told of (it died first)
goes back to the queue for free.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import psutil
import pytest

from ironforge_nb.queue import Lease, Queue, RedisConfig
from ironforge_nb.status import EventType, JobStatus
from ironforge_nb.worker.executor import claim_receipt, claim_request
from ironforge_nb.worker.pool import ExecutorPool
from ironforge_nb.worker.settling import Settler
from ironforge_nb.worker.wake import Waker
from tests.helpers import wait_for, worker_processes
from tests.worker_tasks import EXECUTOR, command

pytestmark = pytest.mark.slow
Spawn = Callable[..., subprocess.Popen[bytes]]


@pytest.fixture
def q(config: RedisConfig) -> Queue:
    """The queue the test workers serve."""
    return Queue("work", config)


@pytest.fixture
def spawn(config: RedisConfig, tmp_path: Path) -> Iterator[Spawn]:
    """Factory of registered worker processes running the test executor; all killed after."""
    with worker_processes(config, tmp_path) as spawn_one:
        def start(name: str = "w1", *, lease: float = 30.0, grace: float = 10.0
                  ) -> subprocess.Popen[bytes]:
            return spawn_one(name, [
                "--queues", "work", "--executor", EXECUTOR, "--lease", str(lease),
                "--grace", str(grace), "--log-level", "INFO"])

        yield start


def claimer_of(config: RedisConfig, job_id: str) -> int:
    """The pid of the executor of worker w1 whose own claim (its receipt) took ``job_id``;
    0 if none did."""
    client = config.client()
    head = config.keys.receipt("work", claim_receipt("w1", 0))[:-1]
    for key in client.scan_iter(match=head + "*"):
        raw = client.get(key)
        if raw and f"\n{job_id} " in raw.decode():
            return int(key.decode()[len(head):])
    return 0


def runs_of(record: Path, job_id: str) -> int:
    """How many times the job's code began (lines of the record)."""
    if not record.exists():
        return 0
    return sum(1 for line in record.read_text().splitlines() if line.split()[0] == job_id)


def second_behind_first(q: Queue, spawn: Spawn, second: bytes, *, lease: float = 30.0,
                        **options: object) -> tuple[subprocess.Popen[bytes], str, str]:
    """A worker running a first job of 0.5 s, and a second job queued while it runs: the one
    the executor claims itself once the first succeeds (the worker holds nothing else)."""
    first = q.enqueue(command("sleep", seconds=0.5))
    worker = spawn(lease=lease)
    wait_for(lambda: q.info(first).status is JobStatus.ACTIVE)
    job = q.enqueue(second, **options)  # type: ignore[arg-type]
    return worker, first, job


def test_the_executor_completes_and_claims_the_next_job_itself(
        q: Queue, spawn: Spawn, config: RedisConfig) -> None:
    """The second job is claimed by the executor (its receipt, not the worker's), started by
    that claim, and both end completed with their results."""
    worker, first, second = second_behind_first(q, spawn, command("echo", value=2))
    wait_for(lambda: q.info(second).status is JobStatus.COMPLETED)
    assert q.info(first).status is JobStatus.COMPLETED
    assert claimer_of(config, second) in {c.pid for c in psutil.Process(worker.pid).children()}
    info = q.info(second)
    assert (info.attempts, info.stalls, info.claims, info.worker) == (1, 0, 1, "w1")
    assert info.started is not None
    assert json.loads(q.result(second) or b"") == 2
    assert json.loads(q.result(first) or b"") == "slept"


def test_a_lease_the_executor_claimed_times_out(q: Queue, spawn: Spawn,
                                                config: RedisConfig) -> None:
    """The worker knows the lease its executor claimed: past the job's timeout it kills the
    executor and fails that attempt (not a stall)."""
    _, _, second = second_behind_first(
        q, spawn, command("sleep", seconds=30), max_attempts=1, meta={"timeout": "2"})
    wait_for(lambda: claimer_of(config, second))  # (the kill hands its receipt back after)
    wait_for(lambda: q.info(second).status is JobStatus.FAILED, timeout=15)
    info = q.info(second)
    assert (info.attempts, info.stalls) == (1, 0)
    assert "timeout after 2 s" in (info.error or "")


def test_a_lease_the_executor_claimed_is_cancelled(q: Queue, spawn: Spawn,
                                                   config: RedisConfig, tmp_path: Path) -> None:
    """Cancelling the job its executor claimed and runs: the worker's heartbeat is refused, it
    replaces the executor (the task stops), the job stays cancelled and nothing is charged;
    the worker goes on with the next jobs."""
    record = tmp_path / "runs.txt"
    worker, _, second = second_behind_first(
        q, spawn, command("sleep", seconds=30, record=str(record)), lease=1.5)
    wait_for(lambda: runs_of(record, second) == 1)
    pid = claimer_of(config, second)
    assert pid in {c.pid for c in psutil.Process(worker.pid).children()}
    assert q.cancel(second)
    wait_for(lambda: not psutil.pid_exists(pid) or psutil.Process(pid).status() == "zombie",
             timeout=10)
    later = q.enqueue(command("echo", value=3))
    wait_for(lambda: q.info(later).status is JobStatus.COMPLETED, timeout=10)
    info = q.info(second)
    assert (info.status, info.attempts, info.stalls) == (JobStatus.CANCELLED, 0, 0)
    assert runs_of(record, second) == 1


def test_a_stopping_worker_has_its_executor_claim_nothing_more(
        q: Queue, spawn: Spawn, config: RedisConfig) -> None:
    """Once the worker is stopping, its executor claims nothing by itself: the running job
    is completed within the grace and the jobs behind it stay queued, never claimed."""
    first = q.enqueue(command("sleep", seconds=1.0))
    worker = spawn()
    wait_for(lambda: q.info(first).status is JobStatus.ACTIVE)
    behind = q.enqueue_batch([command("echo", value=i) for i in range(3)])
    worker.send_signal(signal.SIGTERM)
    assert worker.wait(20) == 0
    assert q.info(first).status is JobStatus.COMPLETED
    for job in behind:
        info = q.info(job)
        assert (info.status, info.claims) == (JobStatus.QUEUED, 0)


def test_a_worker_killed_after_its_executor_claimed(q: Queue, spawn: Spawn,
                                                    config: RedisConfig,
                                                    tmp_path: Path) -> None:
    """The worker is SIGKILLed while the job its executor claimed runs: the executor dies
    with it; the first job stays completed (the executor's completion, not run again), the
    second, whose code began, is charged a stall and runs again elsewhere."""
    record = tmp_path / "runs.txt"
    worker, first, second = second_behind_first(
        q, spawn, command("sleep_first", seconds=30, record=str(record),
                          flag=str(tmp_path / "slept")), lease=2.0)
    wait_for(lambda: runs_of(record, second) == 1)
    assert claimer_of(config, second)
    worker.kill()
    worker.wait()
    spawn("w2", lease=2.0)
    wait_for(lambda: q.info(second).status is JobStatus.COMPLETED, timeout=30)
    info = q.info(second)
    assert (info.attempts, info.stalls, info.worker) == (1, 1, "w2")
    assert runs_of(record, second) == 2
    assert q.info(first).status is JobStatus.COMPLETED and q.info(first).attempts == 1


# -- a claim its executor never told of (the worker's side, with a real executor) -------------


def _execute(config: RedisConfig, lease: Lease) -> bytes | None:
    cmd = json.loads(lease.payload)
    if "began" in cmd:  # the code began: the executor took the lease up
        Path(cmd["began"]).touch()
    time.sleep(cmd.get("sleep", 0))
    return b"1"


def test_a_claim_its_executor_never_told_of_goes_back_free(config: RedisConfig, q: Queue,
                                                           tmp_path: Path) -> None:
    """An executor that died after its completion-and-claim reached Redis but before it told
    its worker: the worker hands the claimed job back for free (its code never began), and
    the claim, resent now, claims nothing."""
    pool = ExecutorPool(config, _execute, 1, prefetch=0, lease=30.0, timeout=None)
    pool.start()
    waker = Waker(config, [config.keys.queue("work").wake])
    settler = Settler("w1", pool, waker, single_queue=True)
    try:
        began = tmp_path / "began"
        head_id = q.enqueue(json.dumps({"sleep": 30, "began": str(began)}).encode())
        [lease] = q.dequeue_many("w1", 1, 30.0, timeout=0, started=1)
        slot = pool.slots[0]
        assert pool.dispatch(slot, q, [lease]) is None
        wait_for(began.exists)  # (its executor runs it: only then could it claim after it)
        nxt = q.enqueue(b"{}")
        # what the executor's call does once the head's code ended (executor.py)
        receipt, rid = claim_receipt("w1", slot.proc.pid), claim_request(lease)
        claimed, refused = q.complete_many([lease], [b"1"], fetch_next=1, started=1,
                                           receipt=receipt, request_id=rid)
        assert [le.job_id for le in claimed] == [nxt] and not refused
        assert q.info(nxt).started is not None
        os.kill(slot.proc.pid, signal.SIGKILL)  # ... and it died before telling
        wait_for(lambda: not slot.proc.alive())
        settler.on_death(slot)
        info = q.info(nxt)
        assert (info.status, info.attempts, info.stalls, info.started) == (
            JobStatus.QUEUED, 0, 0, None)
        assert EventType.RELEASED in {e.type for e in q.events() if e.job == nxt}
        assert q.info(head_id).status is JobStatus.COMPLETED  # its stall was refused
        again, _ = q.complete_many([lease], [b"1"], fetch_next=1, started=1, receipt=receipt,
                                   request_id=rid)
        assert again == [] and q.info(nxt).status is JobStatus.QUEUED
    finally:
        pool.close()
        waker.close()


def test_a_claim_that_reaches_redis_after_its_release_claims_nothing(q: Queue) -> None:
    """`Queue.release_claim` before the claim it names has run (the executor's request was
    still on its way): that claim, when it runs, completes its job but claims nothing."""
    first = q.enqueue(b"a")
    [lease] = q.dequeue_many("w1", 1, 30.0, timeout=0, started=1)
    nxt = q.enqueue(b"b")
    assert q.release_claim("w1#x1", "s-late", lease.lease_ms) == 0
    claimed, refused = q.complete_many([lease], [b"1"], fetch_next=1, started=1,
                                       receipt="w1#x1", request_id="s-late")
    assert claimed == [] and not refused
    assert q.info(first).status is JobStatus.COMPLETED
    info = q.info(nxt)
    assert (info.status, info.claims) == (JobStatus.QUEUED, 0)


def test_an_executor_sees_its_worker_being_killed() -> None:
    """What an executor looks at before it claims by itself (`_Parent`): a process alive is
    not dying; one with a SIGKILL pending (held stopped here, as a loaded machine may hold a
    worker being killed) is, and so is one gone."""
    from ironforge_nb.worker.executor import _Parent

    pid = os.fork()
    if pid == 0:
        time.sleep(30)
        os._exit(0)
    try:
        parent = _Parent(pid)
        assert not parent.dying()
        os.kill(pid, signal.SIGSTOP)
        wait_for(lambda: psutil.Process(pid).status() == psutil.STATUS_STOPPED)
        assert not parent.dying()
        os.kill(pid, signal.SIGKILL)
        assert parent.dying()
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
    assert parent.dying()


def test_an_executor_in_a_chain_spins_for_its_claim_only_while_a_cpu_is_free(
        tmp_path: Path) -> None:
    """What decides whether an executor polls for its own claim's reply (`_Chain`): only
    after a claim that brought back the one job there was (it asked for more), and only while
    the machine's runnable tasks, itself included, fit on its CPUs (``/proc/loadavg``'s 4th
    field, here a file written by the test); never where that count cannot be read."""
    from ironforge_nb.worker.executor import CHAIN_SPIN, _Chain

    loadavg = tmp_path / "loadavg"
    loadavg.write_text("0.52 0.58 0.59 2/345 6789\n")
    chain = _Chain(str(loadavg), cpus=2, every=0.0)  # looks at every claim here
    assert chain.spin() == 0.0  # no claim of its own yet
    chain.claimed(33, 1)
    assert chain.spin() == CHAIN_SPIN
    loadavg.write_text("1.52 0.58 0.59 3/345 6789\n")  # a task more than CPUs: no spinning
    assert chain.spin() == 0.0
    loadavg.write_text("0.52 0.58 0.59 1/345 6789\n")
    assert chain.spin() == CHAIN_SPIN
    chain.claimed(33, 5)  # other jobs were waiting: not a chain
    assert chain.spin() == 0.0
    chain.claimed(1, 1)  # asked for one, got one: nothing tells that the queue is empty
    assert chain.spin() == 0.0
    blind = _Chain(str(tmp_path / "missing"), cpus=2)
    blind.claimed(33, 1)
    assert blind.spin() == 0.0
    # by default it looks at most once per CPU_CHECK_EVERY and keeps what it saw meanwhile
    loadavg.write_text("0.52 0.58 0.59 1/345 6789\n")
    paced = _Chain(str(loadavg), cpus=2, every=60.0)
    paced.claimed(33, 1)
    assert paced.spin() == CHAIN_SPIN
    loadavg.write_text("1.52 0.58 0.59 3/345 6789\n")
    assert paced.spin() == CHAIN_SPIN  # not looked at again within the minute


def test_an_executor_in_a_chain_waits_spinning_for_its_own_claim(
        q: Queue, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The executor's own complete-and-claim call (`_complete_and_claim`) waits for its reply
    polling, with `CHAIN_SPIN`, when `_Chain` says so, and tells `_Chain` what the claim
    brought: the call after a claim of the one job there was polls, the call after a claim of
    several does not. (The poll itself is recorded, then done as usual.)"""
    import multiprocessing

    from ironforge_nb.queue import link
    from ironforge_nb.worker.executor import CHAIN_SPIN, Outcome, _Chain, _complete_and_claim

    polled: list[float] = []
    poll = link._await_reply
    monkeypatch.setattr(link, "_await_reply",
                        lambda conn, budget: (polled.append(budget), poll(conn, budget)))
    loadavg = tmp_path / "loadavg"
    loadavg.write_text("0.52 0.58 0.59 1/345 6789\n")
    chain = _Chain(str(loadavg), cpus=2, every=0.0)
    mine, theirs = multiprocessing.Pipe()
    q.enqueue_batch([command("echo", value=i) for i in range(2)])
    [lease] = q.dequeue_many("w1", 1, 30.0, timeout=0)

    def hop(lease: Lease) -> list[Lease]:
        claimed = _complete_and_claim(mine, q, lease, Outcome(True, b"1"), "w1#x1", 32, 0.0,
                                      chain)
        assert theirs.poll(5)  # the report went to the worker's end of the pipe
        theirs.recv_bytes()
        return claimed

    [lease] = hop(lease)  # not chained yet: no polling; the claim found the one job left
    assert polled == [] and chain.chained
    q.enqueue_batch([command("echo", value=i) for i in range(3)])
    claimed = hop(lease)  # chained: polls; this claim brings 3 jobs: not a chain any more
    assert polled == [CHAIN_SPIN] and len(claimed) == 3 and not chain.chained
    hop(claimed[0])
    assert polled == [CHAIN_SPIN]
