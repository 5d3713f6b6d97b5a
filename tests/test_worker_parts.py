"""The worker as parts: each concern of `Worker` is an object of its own (`pool.py`,
`settling.py`, `claiming.py`, `housekeeping.py`, `stopping.py`), composed by `worker.py`.

The structure is checked on the source (no part imports another's private names, or reaches
into another object's private attributes, or inherits from another part), and each part is
exercised alone here, with real executor processes against a real redis-server: the tests of
the whole worker are in test_worker.py.
"""

from __future__ import annotations

import ast
import json
import os
import select
import signal
import time
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import pytest

from ironforge_nb.queue import Lease, Queue, RedisConfig
from ironforge_nb.status import JobStatus
from ironforge_nb.worker import Worker, list_workers
from ironforge_nb.worker.claiming import Claimer
from ironforge_nb.worker.housekeeping import Housekeeper
from ironforge_nb.worker.pool import ExecutorPool
from ironforge_nb.worker.settling import Settler
from ironforge_nb.worker.slots import READ_LATE, Slot
from ironforge_nb.worker.stopping import Stopper
from ironforge_nb.worker.wake import Waker
from tests.helpers import REPO, wait_for

PACKAGE = REPO / "ironforge_nb" / "worker"
PARTS = ("pool", "settling", "claiming", "housekeeping", "stopping", "worker")
NAME = "parts-test"
T = TypeVar("T")


# -- the structure -----------------------------------------------------------------------------


def _tree(part: str) -> ast.Module:
    return ast.parse((PACKAGE / f"{part}.py").read_text(), filename=f"{part}.py")


def _private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


@pytest.mark.parametrize("part", PARTS)
def test_a_part_imports_no_private_name(part: str) -> None:
    """Nothing a part imports from the worker package starts with ``_``."""
    found = [f"{node.module}.{alias.name}" for node in ast.walk(_tree(part))
             if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("ironforge_nb")
             for alias in node.names if _private(alias.name)]
    assert found == [], f"{part}.py imports private names: {found}"


@pytest.mark.parametrize("part", PARTS)
def test_a_part_reads_private_attributes_of_itself_only(part: str) -> None:
    """``x._name`` appears only as ``self._name``: a part reaches other objects (the other
    parts, slots, executors, queues) through their public interface."""
    found = [f"line {node.lineno}: {ast.unparse(node)}" for node in ast.walk(_tree(part))
             if isinstance(node, ast.Attribute) and _private(node.attr)
             and not (isinstance(node.value, ast.Name) and node.value.id == "self")]
    assert found == [], f"{part}.py reaches into private state: {found}"


def test_parts_are_composed_not_inherited() -> None:
    """Every class of the parts derives from nothing, and no part imports the worker that
    composes them: each module reads, and runs, alone."""
    for part in PARTS:
        tree = _tree(part)
        classes = [n for n in ast.walk(tree) if isinstance(n, ast.ClassDef)]
        assert classes and all(not c.bases for c in classes), part
        imported = {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
        assert part == "worker" or "ironforge_nb.worker.worker" not in imported, part
    assert not (PACKAGE / "core.py").exists() and not (PACKAGE / "outcomes.py").exists()


# -- each part alone ---------------------------------------------------------------------------


def execute(config: RedisConfig, lease: Lease) -> bytes | None:
    """The executor of these tests: ``{"value": v}`` returns v, ``{"fail": m}`` raises m,
    ``{"sleep": s}`` sleeps s seconds first."""
    cmd = json.loads(lease.payload)
    time.sleep(cmd.get("sleep", 0))
    if "fail" in cmd:
        raise RuntimeError(cmd["fail"])
    return json.dumps(cmd.get("value")).encode()


def job(**cmd: Any) -> bytes:
    """A payload for `execute`."""
    return json.dumps(cmd).encode()


@pytest.fixture
def q(config: RedisConfig) -> Queue:
    """The queue of these tests."""
    return Queue("parts", config)


@pytest.fixture
def pool(config: RedisConfig) -> Iterator[ExecutorPool]:
    """One started executor, no prefetch; closed after. Its executor reports every outcome
    for the settler to record (``claims`` off: what every executor does while a lease waits
    behind its task); an executor's own completions and claims: test_worker_selfclaim.py."""
    pool = ExecutorPool(config, execute, 1, prefetch=0, lease=30.0, timeout=None)
    pool.claims = False
    pool.start()
    pool.claim_due = False  # as after the first claim
    yield pool
    pool.close()


@pytest.fixture
def waker(config: RedisConfig, q: Queue) -> Iterator[Waker]:
    """The wake-up BLPOP of the queue ``q``."""
    waker = Waker(config, [config.keys.queue(q.name).wake])
    yield waker
    waker.close()


@pytest.fixture
def settler(pool: ExecutorPool, waker: Waker) -> Settler:
    """The settler of ``pool``, for a worker serving one queue."""
    return Settler(NAME, pool, waker, single_queue=True)


def hand_one(pool: ExecutorPool, q: Queue) -> Slot:
    """Claim one job as an idle executor's claim does (started) and hand it to the slot."""
    [lease] = q.dequeue_many(NAME, 1, 30.0, timeout=0, started=1)
    slot = pool.slots[0]
    assert pool.dispatch(slot, q, [lease]) is None
    return slot


def promptly(check: Callable[[], T], timeout: float = 10.0) -> T:
    """``check()`` once it is truthy, polled every 0.2 ms (a slot measures its tasks'
    duration up to the moment its outcome is read: a slower poll would make them long)."""
    deadline = time.monotonic() + timeout
    while not (value := check()):
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.0002)
    return value


def evalsha_calls(client: Any) -> int:
    """Script calls Redis has served so far."""
    return int(client.info("commandstats").get("cmdstat_evalsha", {}).get("calls", 0))


def test_pool_runs_a_lease_and_replaces_an_executor(pool: ExecutorPool, q: Queue) -> None:
    """A dispatched lease comes back as the executor's outcome (its task off the slot); a
    respawn gives the slot a new process and asks for a claim."""
    jid = q.enqueue(job(value=7))
    slot = hand_one(pool, q)
    assert pool.running == 1 and not pool.idle
    done = wait_for(lambda: pool.drain(slot))
    [(task, outcome)] = done
    assert task.lease.job_id == jid and outcome.ok and json.loads(outcome.result or b"") == 7
    assert pool.running == 0 and pool.idle
    before = slot.proc.pid
    assert pool.respawn(slot, drop_head=True) is None  # nothing was running
    assert slot.proc.pid != before and slot.proc.alive() and pool.claim_due


def test_settler_completes_and_refills_in_one_call(pool: ExecutorPool, settler: Settler,
                                                   waker: Waker, q: Queue,
                                                   redis_client: Any) -> None:
    """A success is completed by one script call that also hands the slot the next job; the
    completion that finds the only queue empty leaves the slot waiting on the wake list."""
    ids = q.enqueue_batch([job(value=i) for i in range(3)])
    slot = hand_one(pool, q)
    for i in range(3):
        done = wait_for(lambda: pool.drain(slot))
        before = evalsha_calls(redis_client)
        settler.settle(slot, done)
        assert evalsha_calls(redis_client) - before == 1
        assert q.info(ids[i]).status is JobStatus.COMPLETED
        assert pool.running == (1 if i < 2 else 0)
    assert [json.loads(q.result(j) or b"") for j in ids] == [0, 1, 2]
    assert settler.jobs_done == 3 and waker.pending and not pool.claim_due


def test_settler_completes_a_task_of_milliseconds_at_once(config: RedisConfig, waker: Waker,
                                                          q: Queue) -> None:
    """Successes wait to share a completion call only when the slot's tasks are shorter than
    SHORT_TASK: a 5 ms task's success is completed as soon as it arrives, even while its
    executor still holds prefetched leases, so a worker killed a moment later repeats only
    the task it was running (the chaos suite's 'one repeat per kill')."""
    pool = ExecutorPool(config, execute, 1, prefetch=32, lease=30.0, timeout=None)
    pool.start()
    try:
        settler = Settler(NAME, pool, waker, single_queue=True)
        ids = q.enqueue_batch([job(value=i, sleep=0.005) for i in range(40)])
        slot = hand_one(pool, q)
        # the first outcomes teach the slot its tasks' duration (the first one includes the
        # executor's cold start); then the slot prefetches about 20 ms of work, topped up here
        for _ in range(20):
            settler.settle(slot, promptly(lambda: pool.drain(slot)))
            if len(slot.tasks) + slot.free >= 3:
                break
        assert not slot.short and len(slot.tasks) + slot.free >= 3
        if slot.free:
            for lease in q.dequeue_many(NAME, slot.free, 30.0, timeout=0, started=0):
                assert pool.dispatch(slot, q, [lease]) is None
        assert len(slot.tasks) > max(1, slot.free)  # what made a success wait before
        promptly(slot.proc.ready)
        settler.on_message(slot)
        assert not slot.deferred
        assert q.info(ids[0]).status is JobStatus.COMPLETED
        assert sum(q.info(j).status is JobStatus.COMPLETED for j in ids) == settler.jobs_done
    finally:
        pool.close()


def test_settler_reads_late_an_executor_that_claims_by_itself(config: RedisConfig,
                                                              waker: Waker, q: Queue) -> None:
    """A short success that its executor completed itself, with the next lease it claimed and
    now runs, needs no answer: the worker may read that pipe up to READ_LATE later
    (`Slot.read_after`), so a chain of such hops does not wake it for each one. A message
    that needs the worker after such a report (here a failure) comes with a call back on the
    executor's alert pipe, which the worker always watches."""
    pool = ExecutorPool(config, execute, 1, prefetch=32, lease=30.0, timeout=None)
    pool.start()  # executors claim by themselves (the worker's default)
    try:
        settler = Settler(NAME, pool, waker, single_queue=True)
        ids = q.enqueue_batch([job(value=0), job(value=1, sleep=0.5), job(fail="boom")],
                              max_attempts=1)
        slot = hand_one(pool, q)
        promptly(slot.proc.ready)  # job 0 done: completed by its executor, job 1 claimed
        before = time.monotonic()
        settler.on_message(slot)
        assert before + READ_LATE <= slot.read_after <= time.monotonic() + READ_LATE
        assert q.info(ids[0]).status is JobStatus.COMPLETED
        assert slot.head is not None and slot.head.lease.job_id == ids[1] and slot.short
        # job 1 takes 500 ms (the slot's tasks are no longer short), then job 2, claimed by
        # the executor too, fails: that outcome needs the worker, so the executor calls it
        # back (one byte on its alert pipe, which the worker always watches)
        promptly(lambda: select.select([slot.proc.alert_fd], [], [], 0)[0])
        settler.on_alert(slot)
        assert slot.read_after == 0.0 and not slot.tasks
        assert q.info(ids[2]).status is JobStatus.FAILED
    finally:
        pool.close()


def test_an_executor_left_idle_after_its_own_claims_calls_its_worker_back(
        config: RedisConfig, waker: Waker, q: Queue) -> None:
    """An executor whose own claim finds nothing, after a report of leases it claimed (which
    its worker may read late), calls the worker back on its alert pipe: it now waits for the
    worker, which must not leave it idle for READ_LATE. No call back while its reports need
    no answer."""
    pool = ExecutorPool(config, execute, 1, prefetch=32, lease=30.0, timeout=None)
    pool.start()
    try:
        settler = Settler(NAME, pool, waker, single_queue=True)
        ids = q.enqueue_batch([job(value=0), job(value=1, sleep=0.3)])
        slot = hand_one(pool, q)
        promptly(slot.proc.ready)  # job 0 completed by its executor, job 1 claimed and running
        settler.on_message(slot)
        assert slot.read_after > 0.0
        assert not select.select([slot.proc.alert_fd], [], [], 0)[0]  # no call back yet
        promptly(lambda: select.select([slot.proc.alert_fd], [], [], 0)[0])  # job 1 done,
        settler.on_alert(slot)                                 # its claim found nothing
        assert not slot.tasks and slot.read_after == 0.0 and waker.pending
        assert all(q.info(j).status is JobStatus.COMPLETED for j in ids)
        assert settler.jobs_done == 2
    finally:
        pool.close()


def test_the_worker_loop_leaves_a_pipe_read_late_unwatched_until_then(
        config: RedisConfig) -> None:
    """While a slot is read late (`Slot.read_after`), the worker's poll set holds its alert
    pipe but not its lease pipe, and a turn of the loop waits no longer than that moment, so
    the reports it skipped are read then; afterwards both pipes are watched again."""
    worker = Worker(config, ["parts"], executor=execute, webhooks=False)
    pool = worker._pool
    pool.start()
    try:
        slot = pool.slots[0]
        lease_fd, alert_fd = slot.proc.conn.fileno(), slot.proc.alert_fd
        assert {lease_fd, alert_fd} <= set(worker._handlers())
        slot.read_after = time.monotonic() + 0.05
        watched = worker._handlers(frozenset([slot]))
        assert alert_fd in watched and lease_fd not in watched
        start = time.monotonic()
        worker._wait_and_handle(30.0)  # nothing to read: returns once read_after has come
        assert time.monotonic() - start < 20.0
        assert time.monotonic() >= slot.read_after
        assert {lease_fd, alert_fd} <= set(worker._handlers())
    finally:
        pool.close()
        worker._stopper.close()
        worker._waker.close()


def test_settler_fails_an_attempt_and_asks_for_a_claim(pool: ExecutorPool, settler: Settler,
                                                       q: Queue) -> None:
    """A failed task fails its attempt with the error (retried while attempts remain); the
    slot it leaves idle is claimed for again."""
    jid = q.enqueue(job(fail="flaky"), max_attempts=2, backoff=0.01)
    slot = hand_one(pool, q)
    settler.settle(slot, wait_for(lambda: pool.drain(slot)))
    info = q.info(jid)
    assert info.attempts == 1 and "RuntimeError: flaky" in info.errors[0].error
    assert info.status in (JobStatus.QUEUED, JobStatus.SCHEDULED)
    assert pool.claim_due and settler.jobs_done == 1


def test_settler_stalls_the_task_of_a_dead_executor(pool: ExecutorPool, settler: Settler,
                                                    q: Queue) -> None:
    """An executor killed under its task: the job stalls (no attempt charged, saying how),
    and a new executor takes the slot."""
    jid = q.enqueue(job(sleep=30))
    slot = hand_one(pool, q)
    before = slot.proc.pid
    os.kill(before, signal.SIGKILL)
    wait_for(lambda: not slot.proc.alive())
    settler.on_death(slot)
    info = q.info(jid)
    assert info.stalls == 1 and info.attempts == 0 and "SIGKILL" in (info.last_stall or "")
    assert slot.proc.pid != before and pool.running == 0 and settler.jobs_done == 1


def test_stopper_hands_running_jobs_back_past_the_grace(pool: ExecutorPool, settler: Settler,
                                                        waker: Waker, q: Queue) -> None:
    """The first request starts the grace (the worker keeps serving); the second one kills the
    busy executor and hands its job back to the queue as a stall (its code had begun)."""
    stopper = Stopper(NAME, 10.0, pool, settler, waker)
    try:
        jid = q.enqueue(job(sleep=30))
        hand_one(pool, q)
        assert stopper.serving(time.monotonic()) and stopper.deadline is None
        stopper.stop()
        assert stopper.serving(time.monotonic()) and stopper.deadline is not None
        assert settler.closing
        stopper.stop()
        assert not stopper.serving(time.monotonic())
        info = q.info(jid)
        assert info.status is JobStatus.QUEUED and info.stalls == 1 and pool.running == 0
    finally:
        stopper.close()


def test_claimer_serves_each_idle_executor(config: RedisConfig, settler: Settler,
                                           waker: Waker, q: Queue) -> None:
    """One claim gives each idle executor its first job: held, since a fresh executor marks
    its first job started itself, after its cold start (see `slots.py`); the first job of an
    idle executor that has run a task is started by the claim. A claim that finds the queue
    empty blocks on the wake list."""
    pool = ExecutorPool(config, execute, 2, prefetch=0, lease=30.0, timeout=None)
    pool.start()
    try:
        claimer = Claimer(NAME, [q], 30.0, pool=pool, settler=settler, waker=waker)
        ids = q.enqueue_batch([job(sleep=30), job(value=1)])
        claimer.claim()
        assert not pool.claim_due and [len(s.tasks) for s in pool.slots] == [1, 1]
        assert sorted(s.tasks[0].lease.job_id for s in pool.slots) == sorted(ids)
        assert not any(s.tasks[0].marked for s in pool.slots) and not waker.pending
        wait_for(lambda: all(q.info(j).started is not None for j in ids))  # by the executors
        wait_for(lambda: any(pool.drain(s) for s in pool.slots))  # the short one: idle, warm
        third = q.enqueue(job(value=2))
        claimer.claim()
        assert q.info(third).started is not None  # started by the claim itself
        wait_for(lambda: any(pool.drain(s) for s in pool.slots))
        claimer.claim()
        assert waker.pending and pool.running == 1
    finally:
        pool.close()


def test_housekeeper_keeps_the_registry_entry(config: RedisConfig, pool: ExecutorPool,
                                              settler: Settler, q: Queue) -> None:
    """Its first chores register the worker (with what it holds and has done); closing
    removes the entry. Nothing falls due again before the next beat."""
    stopped: list[bool] = []
    keeper = Housekeeper(config, NAME, {q.name: q}, pool=pool, settler=settler, lease=30.0,
                         hooks=None, parent_pid=None, stop=lambda: stopped.append(True))
    now = time.monotonic()
    keeper.periodic(now)
    [info] = [w for w in list_workers(config) if w.name == NAME]
    assert info.queues == (q.name,) and info.running == 0 and info.jobs_done == 0
    assert keeper.next_due(now) > now and not stopped
    keeper.close()
    assert [w for w in list_workers(config) if w.name == NAME] == []

