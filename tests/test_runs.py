"""Runs end to end on a real redis-server: results, retries, failures, JSON mode, views.

Jobs are executed in-process by `runloop.work` (claim -> execute_task -> complete/fail), so
these tests exercise the orchestrator and the queue scripts without worker processes.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import ironforge_nb as ifn
from ironforge_nb.dag import Pipeline
from ironforge_nb.errors import (
    ConfigError,
    InvalidOptionError,
    RunNotFoundError,
    RunTimeoutError,
    TaskFailedError,
    UnknownTaskError,
)
from ironforge_nb.local import RedisServer
from ironforge_nb.orchestrator import Run, codec, submit
from ironforge_nb.orchestrator.execute import execute_task
from ironforge_nb.queue import Queue, RedisConfig
from ironforge_nb.status import Event, EventType, JobStatus, RunStatus
from tests import tasks
from tests.helpers import claim, diamond
from tests.runloop import SECRET, run_one, work

pytestmark = pytest.mark.usefixtures("signing_secret")



def test_diamond_gives_the_right_results(config: RedisConfig) -> None:
    """a=1, b=2a, c=a+1, d=b+c: every task's result and the run's success."""
    run = submit(diamond(), config=config)
    work(config)
    assert run.status is RunStatus.SUCCEEDED
    assert run.results() == {"a": 1, "b": 2, "c": 2, "d": 4}
    assert run.result("d") == 4


def test_counts_sum_to_the_total_and_the_old_name_still_answers(config: RedisConfig) -> None:
    """counts(): queued, scheduled and active tasks are ``in_flight``; the values sum to the
    run's total. ``["pending"]`` (in_flight's name up to 0.1.0) answers with a FutureWarning,
    without being a key."""
    run = submit(diamond(), config=config)
    claim(Queue("default", config))  # a: active; b, c, d: waiting
    counts = run.counts()
    assert counts == {"waiting": 3, "completed": 0, "failed": 0, "skipped": 0, "cancelled": 0,
                      "in_flight": 1}
    assert sum(counts.values()) == run.info()["total"] == 4 and "pending" not in counts
    with pytest.warns(FutureWarning, match=r'counts\(\)\["pending"\] is deprecated'):
        assert counts["pending"] == 1
    with pytest.warns(FutureWarning, match="in_flight"):
        assert counts.get("pending") == 1
    assert counts.get("nothing", 7) == 7
    with pytest.raises(KeyError):
        counts["nothing"]


def test_payloads_are_json_whatever_the_strings_hold(config: RedisConfig) -> None:
    """Payload JSON is written from pieces (orchestrator/submit.py `_Plan`), each string quoted
    by the json encoder: parameter names beyond ASCII, and items and constants holding quotes,
    backslashes, control characters and non-ASCII, give JSON that json.loads reads back as
    they were, and the tasks get them."""
    tricky = ['q"uote', "back\\slash", "new\nline\ttab\x01", "città ü 日本", "</script>"]
    const = {'k"\\': tricky}
    p = Pipeline("escapes")
    p.task("src", lambda: "parent\"s")
    p.map("m", lambda voilà, src, città: [voilà, src, città], over=tricky, after="src",
          params={"città": const})
    p.task("all", lambda m: m)
    run = submit(p, config=config)
    queue = Queue("default", config)
    members = 0
    for task, jid in run.job_ids():
        head = json.loads(queue.payload(jid))  # plain values only: the payload is all JSON
        assert head["task"] == task and "blob" not in head
        if task.startswith("m["):
            members += 1
            assert head["item"] in tricky and head["item_param"] == "voilà"
            assert head["consts"] == {"città": const}
    assert members == len(tricky)
    work(config)
    assert run.result("all") == [[item, "parent\"s", const] for item in tricky]


def test_fan_out_fan_in_with_notebook_functions(config: RedisConfig) -> None:
    """Lambdas shipped by value fan out over a map and are gathered in item order."""
    p = Pipeline("fan")
    p.task("base", lambda: 10)
    p.map("scaled", lambda item, base: item * base, over=[3, 1, 2], after="base")
    p.task("listed", lambda scaled: list(scaled))
    run = p.submit(config=config)
    work(config)
    assert run.result("listed") == [30, 10, 20]
    assert run.result("scaled") == [30, 10, 20]


def test_map_over_a_dict_gathers_a_dict(config: RedisConfig) -> None:
    """A map over a dict (non-JSON keys) gives its gather a dict keyed like ``over``."""
    p = Pipeline("keyed")
    p.map("sq", tasks.square, over={(1, "a"): 2, (2, "b"): 3})
    p.task("out", lambda sq: sq, after="sq")
    run = submit(p, config=config)
    work(config)
    assert run.result("out") == {(1, "a"): 4, (2, "b"): 9}


def test_run_params_and_constants_reach_tasks(config: RedisConfig) -> None:
    """Run params feed the parameters that ask for them; constants come from ``params``."""
    p = Pipeline("params")
    p.task("x", tasks.one)
    p.task("by_param", tasks.scale, after="x")
    p.task("by_const", tasks.scale, after="x", params={"factor": 7})
    run = submit(p, {"factor": 5}, config=config)
    work(config)
    assert run.results() == {"x": 1, "by_param": 5, "by_const": 7}


def test_missing_run_param_writes_nothing(quiet_config: RedisConfig) -> None:
    """A run param no task can get is rejected before the first write."""
    p = Pipeline("params")
    p.task("x", tasks.one).task("y", tasks.scale, after="x")
    before = quiet_config.client().dbsize()
    with pytest.raises(InvalidOptionError, match="factor"):
        submit(p, config=quiet_config)
    assert quiet_config.client().dbsize() == before


def test_dataframe_result_round_trips(config: RedisConfig) -> None:
    """A pandas DataFrame returned by a task is what run.result gives back."""
    import pandas as pd

    p = Pipeline("frame")
    p.task("df", lambda: pd.DataFrame({"x": [1, 2]}))
    run = submit(p, config=config)
    work(config)
    pd.testing.assert_frame_equal(run.result("df"), pd.DataFrame({"x": [1, 2]}))


def test_retries_then_success(config: RedisConfig, tmp_path: Path) -> None:
    """A task failing twice with retries=2 completes on its third attempt."""
    p = Pipeline("flaky")
    p.task("f", tasks.flaky, retries=2, params={"marker": str(tmp_path / "n"), "fail_times": 2})
    run = submit(p, config=config, backoff=0)
    work(config)
    assert run.result("f") == "ok"
    frame = run.to_dataframe()
    assert frame.loc[0, "attempts"] == 3
    assert [e.type for e in run.events() if e.task == "f"].count(EventType.RETRYING) == 2


def test_failure_skips_descendants_and_fails_the_run(config: RedisConfig) -> None:
    """A failed task skips its descendants; an independent branch still completes."""
    p = Pipeline("fails")
    p.task("bad", tasks.boom).task("child", tasks.maybe, after="bad")
    p.task("grandchild", tasks.maybe, after="child")
    p.task("other", tasks.one)
    run = submit(p, config=config)
    work(config)
    statuses = dict(zip(*(run.to_dataframe()[c] for c in ("task", "status")), strict=True))
    assert statuses == {"bad": "failed", "child": "skipped", "grandchild": "skipped",
                        "other": "completed"}
    assert run.status is RunStatus.FAILED
    with pytest.raises(TaskFailedError, match="boom"):
        run.result("bad")


def test_allow_failure_lets_children_run(config: RedisConfig) -> None:
    """A failed allow_failure task's child runs, receiving None; the run succeeds."""
    p = Pipeline("tolerant")
    p.task("bad", tasks.boom, allow_failure=True)
    p.task("child", tasks.maybe, after="bad")
    run = submit(p, config=config)
    work(config)
    assert run.result("child") == "got none"
    assert run.status is RunStatus.SUCCEEDED


def test_tasks_go_to_their_own_queues(config: RedisConfig) -> None:
    """A child on another queue is released into that queue by its parent's completion."""
    p = Pipeline("queues")
    p.task("a", tasks.one).task("b", tasks.double, after="a", queue="other")
    run = submit(p, config=config)
    work(config, ["default"])
    assert Queue("other", config).counts()[JobStatus.QUEUED] == 1
    work(config, ["other"])
    assert run.result("b") == 2


def test_json_mode_end_to_end_without_pickle(config: RedisConfig, redis_client: Any) -> None:
    """Path tasks with JSON data run with no secret, and no payload or result is a pickle."""
    codec.set_default_secret(None)
    p = Pipeline("json")
    p.task("a", "tests.tasks:one")
    p.map("sq", "tests.tasks:square", over=[1, 2, 3])
    p.task("total", "tests.tasks:sum_sq", after="sq", params={"unused": None})
    run = submit(p, config=config, mode="json")
    assert work(config, secret=None, json_only=True) == 5
    assert run.results() == {"a": 1, "sq[0]": 1, "sq[1]": 4, "sq[2]": 9, "total": 14}
    for _, jid in run.job_ids():
        for key in (config.keys.payload(jid), config.keys.result(jid)):
            blob = redis_client.get(key)
            assert codec.SIGNED_MAGIC not in blob and b"\x80" not in blob


def test_demanded_json_mode_rejects_a_notebook_function(config: RedisConfig) -> None:
    """mode='json' with a Python function names the task and writes nothing."""
    p = Pipeline("json")
    p.task("f", tasks.one)
    with pytest.raises(InvalidOptionError, match="'f'"):
        submit(p, config=config, mode="json")


def test_pickled_code_without_secret_is_a_config_error(quiet_config: RedisConfig,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """Submitting a notebook function with no secret anywhere says how to set one."""
    codec.set_default_secret(None)
    monkeypatch.delenv(codec.SECRET_ENV, raising=False)
    before = quiet_config.client().dbsize()
    with pytest.raises(ConfigError, match="IRONFORGE_SECRET"):
        submit(diamond(), config=quiet_config)
    assert quiet_config.client().dbsize() == before


def test_code_is_stored_once_per_function(config: RedisConfig, redis_client: Any) -> None:
    """A map of 50 tasks sharing one function stores one code key."""
    p = Pipeline("once")
    p.map("sq", tasks.square, over=list(range(50)))
    submit(p, config=config)
    assert len(redis_client.keys(config.keys.code("*"))) == 1


def test_timeout_is_in_payload_and_job_meta(config: RedisConfig) -> None:
    """A task's timeout is readable by the worker from the lease's meta."""
    p = Pipeline("timeout")
    p.task("t", tasks.one, timeout=2.5)
    submit(p, config=config)
    lease = Queue("default", config).dequeue("w", timeout=0)
    assert lease is not None and float(lease.meta["timeout"]) == 2.5
    assert lease.meta["task"] == "t"


def test_thousand_task_pipeline_completes(config: RedisConfig) -> None:
    """998 mapped tasks between a root and a gather all run, and the sum is right."""
    p = Pipeline("big")
    p.task("zero", lambda: 0)
    p.map("inc", lambda item, zero: item + zero, over=list(range(998)), after="zero")
    p.task("sum", tasks.total, after="inc")
    run = submit(p, config=config)
    assert work(config) == 1000
    assert run.result("sum") == sum(range(998))
    assert run.info()["completed"] == 1000


def test_dataframe_matches_the_job_hashes(config: RedisConfig) -> None:
    """Each row of to_dataframe() agrees with Queue.info of its job."""
    run = submit(diamond(), config=config)
    work(config)
    frame = run.to_dataframe()
    queue = Queue("default", config)
    assert list(frame["task"]) == ["a", "b", "c", "d"]
    for row in frame.itertuples():
        info = queue.info(row.job)
        assert (row.status, row.attempts, row.worker) == (info.status.value, info.attempts,
                                                          info.worker)
        assert row.finished.to_pydatetime() == info.finished
        assert row.duration == pytest.approx((info.finished - info.started).total_seconds())


def test_wait_returns_when_the_run_ends(config: RedisConfig) -> None:
    """wait() follows the event stream and returns once another thread finished the run."""
    import threading

    run = submit(diamond(), config=config)
    worker = threading.Thread(target=lambda: (time.sleep(0.2), work(config)))
    worker.start()
    assert run.wait(timeout=60) is run
    worker.join()
    assert run.status is RunStatus.SUCCEEDED


def test_wait_times_out(config: RedisConfig) -> None:
    """wait(timeout) on a run nobody works on raises RunTimeoutError."""
    run = submit(diamond(), config=config)
    with pytest.raises(RunTimeoutError):
        run.wait(timeout=0.2)


def test_unknown_task_suggests_close_names(config: RedisConfig) -> None:
    """run.result of a misspelt task names the close matches."""
    run = submit(diamond(), config=config)
    with pytest.raises(UnknownTaskError, match="'a'"):
        run.result("aa")


def test_run_stream_tells_every_transition_of_every_task(config: RedisConfig) -> None:
    """run_submitted first, run_finished last, and between them each task's whole story: a
    root is claimed then completed; a child is enqueued once its parents are done, then
    claimed, then completed."""
    run = submit(diamond(), config=config)
    work(config)
    events = run.events()
    assert events[0].type is EventType.RUN_SUBMITTED
    assert events[-1].type is EventType.RUN_FINISHED
    assert events[-1].run_status is RunStatus.SUCCEEDED
    story: dict[str | None, list[EventType]] = {}
    for event in events[1:-1]:
        story.setdefault(event.task, []).append(event.type)
    queued, claimed, done = EventType.ENQUEUED, EventType.CLAIMED, EventType.COMPLETED
    assert story == {"a": [claimed, done], "b": [queued, claimed, done],
                     "c": [queued, claimed, done], "d": [queued, claimed, done]}
    starts = [e for e in events if e.type is claimed]
    assert {(e.status, e.attempt, e.worker, e.run) for e in starts} == {
        (JobStatus.ACTIVE, 1, "test-worker", run.id)}


def test_a_call_writes_its_task_events_as_one_entry_read_as_each_event(
        config: RedisConfig) -> None:
    """The claimed, enqueued and completed events of one script call are one 'task_events'
    entry of the run's stream (an XADD each cost as much as the rest of a claim), which
    `Run.events()` reads as the events an XADD each wrote, in order, with the entry's id: a
    claim of 10 tasks, then one call completing them that releases the gather and claims it,
    then the gather's completion (a call's only event is written as it is), and the run's end
    after it."""
    p = Pipeline("batched")
    p.map("sq", tasks.square, over=list(range(10))).task("total", tasks.total, after="sq")
    run = submit(p, config=config)
    queue = Queue("default", config)
    leases = queue.dequeue_many("w1", 10, started=1, timeout=0)
    assert len(leases) == 10
    nxt, refused = queue.complete_many(leases, [b"1"] * 10, fetch_next=5)
    assert not refused and [le.job_id for le in nxt] == [f"{run.id}.10"]
    queue.complete_many(nxt, [b"10"])
    assert run.status is RunStatus.SUCCEEDED
    raw = config.client().xrange(config.keys.run(run.id).events)
    assert [fields[b"type"] for _, fields in raw] == [
        b"run_submitted", b"task_events", b"task_events", b"completed", b"run_finished"]
    ids = [eid.decode() for eid, _ in raw]
    ts = [int(fields[b"ts"]) for _, fields in raw]
    jobs = [f"{run.id}.{i}" for i in range(11)]
    names = [f"sq[{i}]" for i in range(10)] + ["total"]

    def ev(kind: EventType, at: int, i: int, status: JobStatus, attempt: int | None) -> Event:
        return Event(kind, ts[at], ids[at], job=jobs[i], queue="default", status=status,
                     attempt=attempt, worker=None if attempt is None else "w1", run=run.id,
                     task=names[i])

    claimed, done, queued = EventType.CLAIMED, EventType.COMPLETED, EventType.ENQUEUED
    active, completed = JobStatus.ACTIVE, JobStatus.COMPLETED
    events = run.events()
    assert events[1:-1] == [
        *(ev(claimed, 1, i, active, 1) for i in range(10)),
        *(ev(done, 2, i, completed, 1) for i in range(10)),
        ev(queued, 2, 10, JobStatus.QUEUED, None), ev(claimed, 2, 10, active, 1),
        ev(done, 3, 10, completed, 1)]
    assert events[-1].type is EventType.RUN_FINISHED and events[-1].id == ids[4]
    assert run.events(since=ids[1]) == events[11:]


def test_run_stream_tells_a_retry_going_back_to_the_queue(config: RedisConfig,
                                                        tmp_path: Path) -> None:
    """A failed attempt is 'retrying' (scheduled); when its delay is over, 'enqueued' again."""
    p = Pipeline("again")
    p.task("f", tasks.flaky, retries=1, params={"marker": str(tmp_path / "n"), "fail_times": 1})
    run = submit(p, config=config, backoff=0)
    work(config)
    types = [e.type for e in run.events() if e.task == "f"]
    assert types == [EventType.CLAIMED, EventType.RETRYING, EventType.ENQUEUED,
                     EventType.CLAIMED, EventType.COMPLETED]


def test_runs_lists_recent_runs_newest_first(config: RedisConfig) -> None:
    """ifn.runs() gives one row per run with its counts."""
    first = submit(diamond(), config=config)
    work(config)
    second = submit(diamond(), config=config)
    frame = ifn.runs(config)
    assert list(frame["id"]) == [second.id, first.id]
    assert list(frame["status"]) == ["running", "succeeded"]
    assert frame.loc[1, "completed"] == 4


def test_reattached_handle_reads_the_same_run(config: RedisConfig) -> None:
    """Run(run_id) built later sees the same results as the handle submit returned."""
    run = submit(diamond(), config=config, run_id="nightly-1")
    work(config)
    assert Run("nightly-1", config).results() == run.results()


def test_run_events_with_a_malformed_since_is_refused(config: RedisConfig) -> None:
    """A malformed stream id gives a ValidationError naming ``since``, as for queue events."""
    run = submit(diamond(), config=config)
    with pytest.raises(InvalidOptionError, match="since"):
        run.events(since="garbage")


def test_claim_brings_small_parent_results_along(config: RedisConfig, redis_client: Any) -> None:
    """A task's claim carries its parents' stored results up to 64 KiB each, so the executor
    starts it without a read of its own; a bigger result is left for the executor to read."""
    p = Pipeline("inline")
    p.task("small", tasks.one)
    p.task("big", lambda: "x" * 100_000)
    p.task("both", lambda small, big: small + len(big), after=["small", "big"])
    run = submit(p, config=config)
    q = Queue("default", config)
    for lease in q.dequeue_many("w", 10, lease=30, timeout=0):  # the two roots
        run_one(q, lease)
    child = claim(q)
    ids = {t: redis_client.hget(config.keys.run(run.id).tasks, t).decode()
           for t in ("small", "big")}
    assert child.meta["task"] == "both" and "inputs" not in child.meta
    assert child.inputs == {ids["small"]: redis_client.get(config.keys.result(ids["small"]))}
    run_one(q, child)
    assert run.result("both") == 100_001


def test_claim_inlines_at_most_one_mebibyte(config: RedisConfig) -> None:
    """Results inlined in one claim reply stop at 1 MiB in all; the task reads the rest."""
    p = Pipeline("budget")
    p.map("part", lambda item: "x" * 60_000, over=range(20))
    p.task("size", lambda part: sum(map(len, part)), after="part")
    run = submit(p, config=config)
    q = Queue("default", config)
    for lease in q.dequeue_many("w", 20, lease=30, timeout=0):
        run_one(q, lease)
    gather = claim(q)
    size = len(next(iter(gather.inputs.values())))  # every part's result has this size
    assert {len(blob) for blob in gather.inputs.values()} == {size}
    assert len(gather.inputs) == 2**20 // size < 20  # as many as fit, not one more
    run_one(q, gather)
    assert run.result("size") == 20 * 60_000


def test_task_with_inline_inputs_reads_nothing(
    fresh_server: Callable[..., RedisServer], namespace: str
) -> None:
    """With every parent result in its lease, running a task sends Redis no command at all
    (counted on a server of this test's own, which nothing else talks to)."""
    config = RedisConfig(url=fresh_server().url, namespace=namespace)
    redis_client = config.client()
    run = submit(diamond(), config=config)
    q = Queue("default", config)
    for _ in range(3):  # a, then b and c
        run_one(q, claim(q))
    last = claim(q)
    assert last.meta["task"] == "d" and len(last.inputs) == 2
    execute_task(config, last, SECRET)  # loads d's function from the code store, once

    def calls() -> dict[str, int]:
        stats = redis_client.info("commandstats")
        return {k: v["calls"] for k, v in stats.items() if k != "cmdstat_info"}

    before = calls()
    blob = execute_task(config, last, SECRET)
    assert calls() == before
    q.complete(last, blob)
    assert run.result("d") == 4


def test_many_parents_are_read_by_the_executor(config: RedisConfig, redis_client: Any) -> None:
    """A task reading more than 32 parents gets none in its claim, and still all of them."""
    p = Pipeline("wide")
    p.map("m", tasks.square, over=range(40))
    p.task("sum", tasks.total, after="m")
    run = submit(p, config=config)
    work(config)
    job = redis_client.hget(config.keys.run(run.id).tasks, "sum").decode()
    assert redis_client.hget(config.keys.job(job), "inputs") is None
    assert run.result("sum") == sum(i * i for i in range(40))


@pytest.mark.parametrize("operation", ["status", "wait", "result", "results", "to_dataframe",
                                       "cancel", "retry_failed", "delete"])
def test_every_operation_on_an_unknown_run_says_so(config: RedisConfig, operation: str) -> None:
    """A run id that does not exist (mistyped, other namespace, deleted) raises
    RunNotFoundError naming the namespace and how to list runs, whatever the operation."""
    run = Run("never-submitted", config)
    calls = {"status": lambda: run.status, "wait": lambda: run.wait(1),
             "result": lambda: run.result("t"), "results": run.results,
             "to_dataframe": run.to_dataframe, "cancel": run.cancel,
             "retry_failed": run.retry_failed, "delete": run.delete}
    with pytest.raises(RunNotFoundError, match=rf"namespace '{config.namespace}'.*ifn\.runs\(\)"):
        calls[operation]()


def test_unpicklable_inputs_are_named_and_nothing_is_written(quiet_config: RedisConfig) -> None:
    """A run param, a task constant or a function cloudpickle cannot serialize is refused
    before the first write, naming where it is and what to pass instead."""
    import threading

    lock = threading.Lock()
    before = quiet_config.client().dbsize()
    p = Pipeline("bad").task("t", tasks.scale, params={"factor": 2})
    with pytest.raises(InvalidOptionError, match=r"params\['x'\].*file path"):
        submit(p, {"x": (i for i in range(3)), "factor": 1}, config=quiet_config)
    p = Pipeline("bad").task("t", tasks.scale, params={"factor": (i for i in range(3))})
    with pytest.raises(InvalidOptionError, match=r"task 't'\['consts'\]\['factor'\]"):
        submit(p, {"x": 1}, config=quiet_config)
    p = Pipeline("bad").task("t", lambda: lock.locked())
    with pytest.raises(InvalidOptionError, match=r"invalid fn=.*cloudpickle.*inside the function"):
        submit(p, config=quiet_config)
    assert quiet_config.client().dbsize() == before


def test_unpicklable_result_fails_the_task_with_a_clear_error(config: RedisConfig) -> None:
    """A task returning what cannot be pickled fails, saying so and what to return instead."""
    p = Pipeline("gen").task("t", lambda: (i for i in range(3)), retries=0)
    run = submit(p, config=config)
    work(config)
    assert run.status is RunStatus.FAILED
    with pytest.raises(TaskFailedError, match=r"cannot be pickled.*return plain data"):
        run.result("t")


def test_a_child_claimed_by_its_parents_completion_wakes_no_worker(config: RedisConfig,
                                                                   redis_client: Any) -> None:
    """The completion that releases a child and claims it in the same call takes back the
    wake-up hint it pushed for it (an idle worker woken by it would find nothing); a hint for
    a child left waiting stays, and so does one for a child in another queue."""
    p = Pipeline("hints")
    p.task("a", tasks.one).task("b", tasks.double, after="a").task("c", tasks.inc, after="b")
    p.task("d", tasks.inc, after="a", queue="other")
    run = submit(p, config=config)
    q, other = Queue("default", config), Queue("other", config)
    wake, other_wake = config.keys.queue("default").wake, config.keys.queue("other").wake
    redis_client.delete(wake)  # the root's hint (submit's)
    [a] = q.dequeue_many("w1", 1, lease=30, timeout=0)
    [b], refused = q.complete_many([a], [execute_task(config, a, SECRET)], fetch_next=1)
    assert not refused and b.meta["task"] == "b"
    assert redis_client.llen(wake) == 0  # b: claimed at once, no hint left
    assert redis_client.llen(other_wake) == 1  # d: waits in its own queue
    nothing, _ = q.complete_many([b], [execute_task(config, b, SECRET)])
    assert nothing == [] and redis_client.llen(wake) == 1  # c: not claimed, its hint stays
    work(config, ["default", "other"])
    assert run.wait(timeout=10).status is RunStatus.SUCCEEDED
    assert other.counts()[JobStatus.COMPLETED] == 1
