"""Bounded walks: cancel, retry_failed and the skip of a failed task's descendants run in steps
of a few hundred tasks (walk_helpers.lua, walk_run.lua) and end in the same state as the
atomic scripts they replace (kept in tests/reference_lua/, the code before the change), also
when a caller stops after the first step and the reaper finishes the work."""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from ironforge_nb.dag import Pipeline
from ironforge_nb.orchestrator import Run, submit
from ironforge_nb.orchestrator.run_transitions import RunTransitions
from ironforge_nb.queue import Queue, RedisConfig
from ironforge_nb.queue.keys import (
    JOB_LOGS_SUFFIX,
    JOB_PAYLOAD_SUFFIX,
    JOB_RESULT_SUFFIX,
    RUNS_WALKING,
)
from ironforge_nb.queue.walks import Walks
from ironforge_nb.status import RunStatus
from tests import tasks
from tests.runloop import run_one

pytestmark = pytest.mark.usefixtures("signing_secret")

REFERENCE = Path(__file__).parent / "reference_lua"
BUDGET = 256  # WALK_BUDGET of run_helpers.lua
RUN_ID = "walk-run"
# fields that hold times (or derive from them): equal only up to the clock
_TIMES = {"created", "enqueued", "started", "finished", "ts",
          "ended"}  # and the resend receipt of the last transition: it holds a random request id
_MS = re.compile(rb"\b\d{13}\b")  # a time in ms inside a value (the error history)


def reference(client: Any, name: str, keys: list[Any], args: list[Any]) -> Any:
    """Run the atomic script ``name`` as it was before the bounded walks."""
    source = (REFERENCE / "run_helpers.lua").read_text() + "\n" + (
        REFERENCE / f"{name}.lua").read_text()
    return client.eval(source, len(keys), *keys, *args)


def pipeline(width: int) -> Pipeline:
    """A root, a map of ``width`` tasks gathered by one, a tolerated failure with a child, a
    failure with two generations below it, and a task retried far in the future."""
    p = Pipeline("walk")
    p.task("root", tasks.one)
    p.map("sq", tasks.square, over=list(range(width)), after="root")
    p.task("total", tasks.total, after="sq")
    p.task("soft", tasks.boom, after="root", allow_failure=True)
    p.task("after_soft", tasks.maybe, after="soft")
    p.task("bad", tasks.boom, after="root")
    p.task("below", tasks.double, after="bad").then("below2", tasks.double)
    p.task("later", tasks.boom, after="root", retries=2)
    return p


def prepare(config: RedisConfig, width: int, ran: int, held: int) -> Run:
    """Submit `pipeline` as run `RUN_ID` and run ``ran`` jobs in FIFO order, then claim
    ``held`` more and keep them active: the same state in any namespace."""
    run = submit(pipeline(width), config=config, run_id=RUN_ID, backoff=3600)
    queue = Queue("default", config)
    for _ in range(ran):
        lease = queue.dequeue("test-worker", lease=600, timeout=0)
        if lease is None:
            break
        run_one(queue, lease)
    if held:
        queue.dequeue_many("test-worker", held, lease=600, timeout=0)
    return run


def state(config: RedisConfig, client: Any) -> dict[str, Any]:
    """Everything a walk may change, times left out: job hashes, the run's hashes, the
    membership of the queue's ZSETs (wait with its scores), and the events as multisets."""
    keys, rk, qk = config.keys, config.keys.run(RUN_ID), config.keys.queue("default")
    total = int(client.hget(rk.meta, "total"))
    jobs = {}
    for pos in range(total):
        raw = client.hgetall(keys.job(f"{RUN_ID}.{pos}"))
        jobs[pos] = {k: _MS.sub(b"<ms>", v) for k, v in raw.items()
                     if k.decode() not in _TIMES}

    def events(stream: str) -> Counter[tuple[Any, ...]]:
        return Counter(tuple(sorted((k, v) for k, v in fields.items()
                                    if k.decode() not in _TIMES))
                       for _, fields in client.xrange(stream))

    return {
        "jobs": jobs,
        # `failure` (run.failed's error) came after the reference was frozen: the reference
        # never writes or clears it (a retry's clearing is tested in test_webhooks_delivery)
        "meta": {k: v for k, v in client.hgetall(rk.meta).items()
                 if k.decode() not in _TIMES and k != b"failure"},
        "remaining": client.hgetall(rk.remaining),
        # members only: the atomic retry queued tasks in its tasks HASH's order, the walk in
        # the run's order (the seq scores differ; the order of a hash is no contract)
        "sets": {name: sorted(client.zrange(getattr(qk, name), 0, -1))
                 for name in ("wait", "scheduled", "active", "dead", "cancelled",
                              "completed")},
        "run_events": events(rk.events),
        "queue_events": events(qk.events),
        "pending": [client.exists(rk.walk, rk.skips, rk.ready),
                    client.zscore(keys.runs_walking, RUN_ID)],
    }


def twins(redis_server: Any, namespace: str) -> tuple[RedisConfig, RedisConfig]:
    """Two namespaces on the session server: one for the reference, one for the walk."""
    return (RedisConfig(redis_server.url, namespace=namespace + "-ref"),
            RedisConfig(redis_server.url, namespace=namespace + "-new"))


def last_event(run: Run) -> dict[bytes, bytes]:
    """The fields of the run's newest event."""
    newest = run.config.client().xrevrange(run.config.keys.run(run.id).events, count=1)
    return dict(newest[0][1])


def reap_now(config: RedisConfig) -> None:
    """What a worker's next periodic reap does (this test's namespace is reaped now, and by
    this process never again: its schedule is pushed to infinity)."""
    Queue("default", config).reap_if_due(now=float("inf"))


def ref_cancel(config: RedisConfig) -> Any:
    k, rk = config.keys, config.keys.run(RUN_ID)
    return reference(config.client(), "cancel_run", [rk.meta, rk.tasks],
                     [k.job_prefix, k.run_prefix, k.queue_prefix, config.events_maxlen, RUN_ID])


def ref_retry(config: RedisConfig) -> Any:
    k, rk = config.keys, config.keys.run(RUN_ID)
    return reference(config.client(), "retry_run",
                     [rk.meta, rk.tasks, rk.remaining, rk.children],
                     [k.job_prefix, k.run_prefix, k.queue_prefix, config.events_maxlen, RUN_ID])


def ref_cancel_job(config: RedisConfig, job_id: str) -> Any:
    k, qk = config.keys, config.keys.queue("default")
    return reference(config.client(), "cancel_job",
                     [k.job(job_id), qk.wait, qk.scheduled, qk.active, qk.cancelled, qk.events],
                     [k.job_prefix, JOB_PAYLOAD_SUFFIX, JOB_RESULT_SUFFIX, "default",
                      config.events_maxlen, job_id, config.completed_retention, k.run_prefix,
                      k.queue_prefix, JOB_LOGS_SUFFIX, ""])


@pytest.mark.parametrize(("width", "ran", "held"),
                         [(3, 0, 0), (3, 4, 2), (40, 30, 5), (700, 400, 40), (700, 760, 0)])
def test_cancel_ends_as_the_atomic_cancel(redis_server: Any, namespace: str, width: int,
                                          ran: int, held: int) -> None:
    """Small and medium runs, fresh, mid-way (active, scheduled, dead, completed, queued and
    waiting tasks) or ended: the walked cancel leaves what the atomic one left."""
    ref, new = twins(redis_server, namespace)
    prepare(ref, width, ran, held)
    run = prepare(new, width, ran, held)
    assert state(ref, ref.client()) == state(new, new.client())
    expected = ref_cancel(ref)
    cancelled = run.cancel()
    assert [expected[0], cancelled] in ([1, expected[1]], [0, 0])
    assert state(ref, ref.client()) == state(new, new.client())


@pytest.mark.parametrize(("width", "ran", "cancel_first"),
                         [(3, 100, False), (40, 100, False), (40, 10, True),
                          (700, 2000, False), (700, 300, True)])
def test_retry_ends_as_the_atomic_retry(redis_server: Any, namespace: str, width: int,
                                        ran: int, cancel_first: bool) -> None:
    """Runs that ended failed (a failure, its skipped descendants, a tolerated failure) or were
    cancelled mid-way: the walked retry leaves what the atomic one left."""
    ref, new = twins(redis_server, namespace)
    for config in (ref, new):
        run = prepare(config, width, ran, 0)
        if cancel_first:
            ref_cancel(config)
    assert state(ref, ref.client()) == state(new, new.client())
    expected = ref_retry(ref)
    assert list(RunTransitions(new).retry_run(RUN_ID)) == expected
    assert state(ref, ref.client()) == state(new, new.client())
    assert run.status is RunStatus.RUNNING


@pytest.mark.parametrize("width", [3, 700])
def test_cancelling_a_task_skips_its_descendants_as_before(
        redis_server: Any, namespace: str, width: int) -> None:
    """Queue.cancel of the root skips every descendant (hundreds: several steps) as the
    atomic skip did, the later steps done by the reaper."""
    ref, new = twins(redis_server, namespace)
    for config in (ref, new):
        prepare(config, width, 0, 0)
    ref_cancel_job(ref, f"{RUN_ID}.0")
    assert Queue("default", new).cancel(f"{RUN_ID}.0")
    if width > BUDGET:
        assert Run(RUN_ID, new).status is RunStatus.RUNNING  # skips still pending
        assert new.client().zscore(new.keys.runs_walking, RUN_ID) is not None
    reap_now(new)
    assert state(ref, ref.client()) == state(new, new.client())
    assert Run(RUN_ID, new).status is RunStatus.CANCELLED


def test_a_root_failure_skips_a_big_map_in_steps(config: RedisConfig) -> None:
    """The root of a 2,000-task map fails for good: its script skips the first descendants,
    the rest is skipped by later steps, and the run ends failed with every count right."""
    p = Pipeline("fail")
    p.task("root", tasks.boom).map("sq", tasks.square, over=list(range(2000)), after="root")
    p.task("total", tasks.total, after="sq")
    run = submit(p, config=config)
    queue = Queue("default", config)
    lease = queue.dequeue("w", timeout=0)
    assert lease is not None
    queue.fail(lease, "boom", retry=False)
    info = run.info()
    assert info["status"] == "running" and 0 < info["skipped"] < 2001
    steps = 0
    while Walks(config).step(run.id)[1]:
        steps += 1
    assert steps >= 2000 // BUDGET
    info = run.info()
    assert info["status"] == "failed" and info["skipped"] == 2001 and info["waiting"] == 0
    assert [e.type.value for e in run.events(count=5000)].count("skipped") == 2001
    assert last_event(run)[b"run_status"] == b"failed"


def test_cancel_and_retry_of_a_few_thousand_tasks_take_several_steps(
        config: RedisConfig) -> None:
    """A 3,000-task run's cancel: the first script cancels at most a step's worth and marks
    the run cancelled; no task of it is claimed any more; later steps finish it. Its retry
    then takes several steps too and queues every task again."""
    p = Pipeline("big")
    p.task("root", tasks.one).map("sq", tasks.square, over=list(range(3000)), after="root")
    run = submit(p, config=config)
    queue = Queue("default", config)
    run_one(queue, queue.dequeue("w", timeout=0) or pytest.fail("no root"))
    scripts = RunTransitions(config)
    k = config.keys
    first = scripts._cancel([k.run(run.id).meta, k.queues],
                            [*scripts._head(), run.id])
    assert first[0] == 1 and first[1] == 1 and first[2] <= BUDGET + 1
    assert run.status is RunStatus.CANCELLED
    assert queue.dequeue_many("w", 100, timeout=0) == []
    assert config.client().zcard(k.queue("default").wait) < 3000  # the claim dropped some
    steps = 1
    while Walks(config).step(run.id)[1]:
        steps += 1
    assert steps >= 3000 // BUDGET
    assert run.counts() == {"waiting": 0, "in_flight": 0, "completed": 1, "failed": 0,
                            "skipped": 0, "cancelled": 3000}
    assert last_event(run)[b"run_status"] == b"cancelled"
    assert config.client().zcard(k.queue("default").wait) == 0
    begun = scripts._retry([k.run(run.id).meta], [*scripts._head(), run.id])
    assert begun[0] == 1 and begun[1] == 1 and run.status is RunStatus.RUNNING
    steps = 1
    while Walks(config).step(run.id)[1]:
        steps += 1
    assert steps >= 3 * (3000 // BUDGET)  # three passes: parents, reset, queue
    assert run.counts() == {"waiting": 0, "in_flight": 3000, "completed": 1, "failed": 0,
                            "skipped": 0, "cancelled": 0}
    assert config.client().zcard(k.queue("default").wait) == 3000


def test_a_cancel_stopped_after_its_first_step_is_finished_by_the_reaper(
        redis_server: Any, namespace: str) -> None:
    """A canceller that dies after the first step: the run reads cancelled, nothing of it is
    claimed, and the next reap finishes the walk, with the atomic cancel's end state."""
    ref, new = twins(redis_server, namespace)
    for config in (ref, new):
        prepare(config, 700, 300, 20)
    ref_cancel(ref)
    scripts, k = RunTransitions(new), new.keys
    scripts._cancel([k.run(RUN_ID).meta, k.queues], [*scripts._head(), RUN_ID])
    assert Run(RUN_ID, new).status is RunStatus.CANCELLED
    assert state(ref, ref.client()) != state(new, new.client())
    reap_now(new)
    assert state(ref, ref.client()) == state(new, new.client())


def test_a_retry_stopped_after_its_first_step_is_finished_by_the_next_caller(
        redis_server: Any, namespace: str) -> None:
    """A retry that stops after its first step is finished by the next call that needs the
    run (here a cancel, which first completes the retry, then cancels)."""
    ref, new = twins(redis_server, namespace)
    for config in (ref, new):
        prepare(config, 700, 2000, 0)
    ref_retry(ref)
    ref_cancel(ref)
    scripts, k = RunTransitions(new), new.keys
    begun = scripts._retry([k.run(RUN_ID).meta], [*scripts._head(), RUN_ID])
    assert begun[0] == 1 and begun[1] == 1
    assert Run(RUN_ID, new).status is RunStatus.RUNNING
    # nothing queued yet (read directly: a claim would reap when due, which gives pending
    # walks a slice and would finish this one; on a slow machine the preparation outlasts
    # the 1 s reap interval)
    assert new.client().zcard(k.queue("default").wait) == 0
    Run(RUN_ID, new).cancel()
    assert state(ref, ref.client()) == state(new, new.client())


def test_walking_key_name_matches_the_lua_derivation() -> None:
    """run_helpers.lua reaches runs, runs:ended and runs:walking from run_prefix minus 'run:'."""
    from ironforge_nb.queue.keys import Keys
    from ironforge_nb.queue.scripting import lua_source

    keys = Keys("ns")
    assert keys.run_prefix[: -len("run:")] + RUNS_WALKING == keys.runs_walking
    helpers = lua_source("run_helpers")
    for name, key in (("runs", keys.runs), ("runs:ended", keys.runs_ended),
                      ("runs:walking", keys.runs_walking)):
        assert f"ns .. '{name}'" in helpers and key.endswith(name)


def test_wait_finishes_a_failure_skip_of_many_descendants(config: RedisConfig) -> None:
    """A notebook waiting on a run whose root failed sees it end failed: Run.wait takes the
    skip's remaining steps itself (no worker or reaper needed)."""
    p = Pipeline("fail")
    p.task("root", tasks.boom).map("sq", tasks.square, over=list(range(1500)), after="root")
    run = submit(p, config=config)
    queue = Queue("default", config)
    queue.fail(queue.dequeue("w", timeout=0) or pytest.fail("no root"), "boom", retry=False)
    assert run.status is RunStatus.RUNNING
    assert run.wait(timeout=60).status is RunStatus.FAILED
    assert run.counts()["skipped"] == 1500 and run.counts()["waiting"] == 0


def test_delete_mid_walk_finishes_the_walk_first(config: RedisConfig) -> None:
    """delete(force=True) of a run whose cancel stopped after its first step finishes the
    cancel, then deletes every key of the run; retention never picks a run mid-walk."""
    p = Pipeline("big")
    p.task("root", tasks.one).map("sq", tasks.square, over=list(range(1000)), after="root")
    run = submit(p, config=config)
    scripts, k = RunTransitions(config), config.keys
    scripts._cancel([k.run(run.id).meta, k.queues], [*scripts._head(), run.id])
    assert config.client().zscore(k.runs_ended, run.id) is None  # not ended until walked
    assert run.delete(force=True) == 1001
    client = config.client()
    assert [key for key in client.scan_iter(match=k.prefix + "*") if run.id.encode() in key] == []
    assert client.zscore(k.runs_walking, run.id) is None
