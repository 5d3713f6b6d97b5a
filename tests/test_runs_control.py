"""Run control on a real redis-server: cancel, retry_failed, idempotent and atomic submission,
expired leases settling runs."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
from redis.exceptions import ResponseError

from ironforge_nb.dag import DAG, Pipeline
from ironforge_nb.dag.task import TaskSpec
from ironforge_nb.errors import InvalidNameError, InvalidOptionError, JobStateError
from ironforge_nb.orchestrator import submit
from ironforge_nb.orchestrator.run_transitions import RunTransitions
from ironforge_nb.queue import Queue, RedisConfig
from ironforge_nb.status import EventType, JobStatus, RunStatus
from tests import tasks
from tests.helpers import claim
from tests.runloop import work

pytestmark = pytest.mark.usefixtures("signing_secret")


def logged(log: Path, name: str, value: Any = 1) -> Any:
    """A task function that appends its name to ``log`` each time it really runs."""
    def fn(**_: Any) -> Any:
        with log.open("a") as fh:
            fh.write(name + "\n")
        return value
    return fn


def statuses(run: Any) -> dict[str, str]:
    frame = run.to_dataframe()
    return dict(zip(frame["task"], frame["status"], strict=True))


def test_cancel_before_anything_ran(config: RedisConfig) -> None:
    """Cancelling a fresh run cancels every task; no job is left to claim."""
    p = Pipeline("c")
    p.task("a", tasks.one).task("b", tasks.double, after="a")
    run = submit(p, config=config)
    assert run.cancel() == 2
    assert run.status is RunStatus.CANCELLED
    assert set(statuses(run).values()) == {"cancelled"}
    assert work(config) == 0
    assert run.events()[-1].run_status is RunStatus.CANCELLED


def test_cancel_tells_a_running_task_to_stop(config: RedisConfig) -> None:
    """The worker of a task running at cancel time is refused at heartbeat and completion."""
    p = Pipeline("c")
    p.task("a", tasks.one).task("b", tasks.double, after="a")
    run = submit(p, config=config)
    queue = Queue("default", config)
    lease = queue.dequeue("w", timeout=0)
    assert lease is not None
    run.cancel()
    with pytest.raises(JobStateError, match="cancelled"):
        queue.heartbeat(lease)
    with pytest.raises(JobStateError, match="cancelled"):
        queue.complete(lease, b"1")
    assert run.info()["cancelled"] == 2


def test_cancelling_one_job_skips_its_descendants(config: RedisConfig) -> None:
    """Queue.cancel on a run's job skips its waiting descendants and settles the run."""
    p = Pipeline("c")
    p.task("a", tasks.one).task("b", tasks.double, after="a")
    run = submit(p, config=config)
    jobs = dict(run.job_ids())
    assert Queue("default", config).cancel(jobs["a"])
    assert statuses(run) == {"a": "cancelled", "b": "skipped"}
    assert run.status is RunStatus.CANCELLED


def test_cancel_after_the_end_changes_nothing(config: RedisConfig) -> None:
    """A finished run stays as it was when cancelled."""
    p = Pipeline("c")
    p.task("a", tasks.one)
    run = submit(p, config=config)
    work(config)
    assert run.cancel() == 0
    assert run.status is RunStatus.SUCCEEDED


def test_retry_failed_reruns_only_what_must(config: RedisConfig, tmp_path: Path) -> None:
    """Only the failed task and its skipped child run again; completed results are reused."""
    log, marker = tmp_path / "log", tmp_path / "broken"
    marker.touch()
    p = Pipeline("retry")
    p.task("ok", logged(log, "ok", 5))
    p.task("fix", tasks.fail_if_file, after="ok", params={"marker": str(marker)})
    p.task("child", logged(log, "child", "done"), after="fix")
    p.task("side", logged(log, "side"), after="ok")
    run = submit(p, config=config)
    work(config)
    assert statuses(run) == {"ok": "completed", "fix": "failed", "child": "skipped",
                             "side": "completed"}
    marker.unlink()
    assert run.retry_failed() == 2
    assert run.status is RunStatus.RUNNING
    work(config)
    assert run.status is RunStatus.SUCCEEDED
    assert log.read_text().split() == ["ok", "side", "child"]
    assert run.results() == {"ok": 5, "fix": "fixed", "child": "done", "side": 1}
    assert run.info()["failed"] == 0 and "finished" in run.info()


def test_retry_failed_after_cancel_reruns_cancelled_tasks(config: RedisConfig) -> None:
    """A cancelled run retried runs its cancelled tasks and can still succeed."""
    p = Pipeline("retry")
    p.task("a", tasks.one).task("b", tasks.double, after="a")
    run = submit(p, config=config)
    run.cancel()
    assert run.retry_failed() == 2
    work(config)
    assert run.results() == {"a": 1, "b": 2}


def test_same_run_id_twice_is_one_run(quiet_config: RedisConfig) -> None:
    """A second submit with the same run id writes nothing and returns the same run."""
    p = Pipeline("idem")
    p.task("a", tasks.one).task("b", tasks.double, after="a")
    first = submit(p, config=quiet_config, run_id="daily")
    before = quiet_config.client().dbsize()
    events = len(first.events())
    second = submit(p, config=quiet_config, run_id="daily")
    assert second.id == first.id
    assert quiet_config.client().dbsize() == before
    assert len(second.events()) == events
    assert quiet_config.client().zcard(quiet_config.keys.runs) == 1
    assert work(quiet_config) == 2


def test_malformed_submit_call_writes_nothing(quiet_config: RedisConfig) -> None:
    """The script validates every column before its first write: an error leaves DBSIZE as is."""
    scripts = RunTransitions(quiet_config)
    profile = ("default", 0, 1, 0, "", "0", "")

    def columns(tasks: str = "a\n", profiles: str = "1 1\n", parents: str = "1 0\n",
                sizes: str = "1 2\n", inputs: str = "1 \n", kids: str = "1 \n") -> tuple[str, ...]:
        """Task ids one per line; the others in runs "<count> <value>"."""
        return tasks, profiles, parents, sizes, inputs, kids

    good = columns()
    before = quiet_config.client().dbsize()
    with pytest.raises(ResponseError, match="malformed profiles column"):  # no profile 9
        scripts.submit_run("r", "p", b"", b"", "json", [profile], [],
                           columns("a\nb\n", "1 1\n1 9\n", "2 0\n", "2 2\n", "2 \n", "2 \n"),
                           b"{}{}", 2)
    with pytest.raises(ResponseError, match="malformed task ids"):
        scripts.submit_run("r", "p", b"", b"", "json", [profile], [], good, b"{}", 2)
    with pytest.raises(ResponseError, match="malformed payloads"):
        scripts.submit_run("r", "p", b"", b"", "json", [profile], [], good, b"{}x", 1)
    with pytest.raises(ResponseError, match="malformed sizes column"):  # runs past N
        scripts.submit_run("r", "p", b"", b"", "json", [profile], [], columns(sizes="2 1\n"),
                           b"{}", 1)
    with pytest.raises(ResponseError, match="malformed parents column"):  # '01' parents
        scripts.submit_run("r", "p", b"", b"", "json", [profile], [], columns(parents="1 01\n"),
                           b"{}", 1)
    with pytest.raises(ResponseError, match="malformed inputs or children column"):
        scripts.submit_run("r", "p", b"", b"", "json", [profile], [], columns(inputs="1 x\n"),
                           b"{}", 1)
    with pytest.raises(ResponseError, match="malformed inputs or children column"):  # 2 for 1
        scripts.submit_run("r", "p", b"", b"", "json", [profile], [], columns(kids="*\nb\nc\n"),
                           b"{}", 1)
    with pytest.raises(ResponseError, match="counts do not add up"):  # a profile short
        scripts.submit_run("r", "p", b"", b"", "json", [profile[:-1]], [], good, b"{}", 1)
    assert quiet_config.client().dbsize() == before
    assert scripts.submit_run("r", "p", b"", b"", "json", [profile], [], good, b"{}", 1) == (
        "created")


def test_hand_built_dag_with_a_bad_task_id_is_refused(quiet_config: RedisConfig) -> None:
    """A DAG built by hand with a task id that would break keys or payloads writes nothing."""
    spec = TaskSpec(id='a "b"', fn="tests.tasks:one")
    dag = DAG.from_parents({spec.id: ()}, data={spec.id: spec})
    before = quiet_config.client().dbsize()
    with pytest.raises(InvalidNameError):
        submit(dag, config=quiet_config)
    assert quiet_config.client().dbsize() == before


def test_stalls_past_max_stalls_settle_the_run(config: RedisConfig) -> None:
    """A task whose worker died once more than its max_stalls fails via the reaper, saying
    so; its child is skipped and the run fails."""
    p = Pipeline("reap")
    p.task("a", tasks.one, max_stalls=0).task("b", tasks.double, after="a")
    run = submit(p, config=config)
    queue = Queue("default", config)
    assert queue.dequeue("dying-worker", lease=0.05, timeout=0) is not None
    time.sleep(0.1)
    assert queue.reap() == 1
    assert statuses(run) == {"a": "failed", "b": "skipped"}
    assert run.status is RunStatus.FAILED
    kinds = [e.type for e in run.events() if e.task == "a"]
    assert kinds[-2:] == [EventType.STALLED, EventType.FAILED]
    info = queue.info(dict(run.job_ids())["a"])
    assert (info.status, info.attempts, info.stalls) == (JobStatus.FAILED, 0, 1)
    assert info.error == ("stalled 1 time (max_stalls 0); last: lease expired "
                          "(worker dying-worker)")


def test_stalled_task_without_retries_runs_again(config: RedisConfig) -> None:
    """A task with default options (no retries) whose worker died runs again at once, at no
    attempt's cost, and the run completes; its events and table show the stall."""
    p = Pipeline("reap")
    p.task("a", tasks.one)
    run = submit(p, config=config, backoff=100)
    queue = Queue("default", config)
    assert queue.dequeue("dying-worker", lease=0.05, timeout=0) is not None
    time.sleep(0.1)
    queue.reap()
    work(config)
    assert run.result("a") == 1
    stalled = [e for e in run.events() if e.type is EventType.STALLED]
    assert [(e.task, e.stalls, e.worker, e.status) for e in stalled] == [
        ("a", 1, "dying-worker", JobStatus.QUEUED)]
    assert run.to_dataframe().loc[0, ["attempts", "stalls"]].tolist() == [1, 1]


def test_max_stalls_of_tasks_and_runs(config: RedisConfig) -> None:
    """A task's own max_stalls wins, submit's max_stalls applies to the others, the engine's
    default to a run that sets none; bad values are refused before anything is written."""
    p = Pipeline("stalls")
    p.task("own", tasks.one, max_stalls=1).task("rest", tasks.one)
    run = submit(p, config=config, max_stalls=5)
    queue = Queue("default", config)
    jobs = dict(run.job_ids())
    assert {t: queue.info(j).max_stalls for t, j in jobs.items()} == {"own": 1, "rest": 5}
    plain = submit(Pipeline("plain").task("t", tasks.one), config=config)
    assert queue.info(dict(plain.job_ids())["t"]).max_stalls == 2
    with pytest.raises(InvalidOptionError, match="max_stalls"):
        Pipeline("bad").task("t", tasks.one, max_stalls=-1)
    with pytest.raises(InvalidOptionError, match="max_stalls"):
        submit(Pipeline("bad").task("t", tasks.one), config=config, max_stalls=True)


def test_retry_failed_resets_stalls(config: RedisConfig) -> None:
    """A task failed for stalling runs again from 0 stalls and claims after retry_failed."""
    p = Pipeline("stalls")
    p.task("a", tasks.one, max_stalls=0)
    run = submit(p, config=config)
    queue = Queue("default", config)
    assert queue.stall(claim(queue, "w"), "killed") is JobStatus.FAILED
    assert statuses(run) == {"a": "failed"}
    run.retry_failed()
    info = queue.info(dict(run.job_ids())["a"])
    assert (info.status, info.attempts, info.stalls, info.claims) == (JobStatus.QUEUED, 0, 0, 0)
    work(config)
    assert run.result("a") == 1


def test_dead_task_of_a_run_is_requeued_only_through_its_run(config: RedisConfig) -> None:
    """Queue.requeue refuses a run's task (naming retry_failed); purge_dead empties the
    dead-letter queue but keeps the task's record, which the run still shows and retries."""
    p = Pipeline("dead")
    p.task("a", tasks.boom).task("b", tasks.double, after="a")
    run = submit(p, config=config)
    work(config)
    assert run.status is RunStatus.FAILED
    q = Queue("default", config)
    [dead] = q.dead_letters()
    with pytest.raises(JobStateError, match=r"a task of run .*retry_failed\(\)"):
        q.requeue(dead.id)
    assert q.info(dead.id).status is JobStatus.FAILED  # refused: nothing changed
    assert q.purge_dead() == 1 and q.dead_letters() == []
    assert statuses(run) == {"a": "failed", "b": "skipped"}
    assert "boom" in run.to_dataframe().set_index("task").loc["a", "error"]
    assert run.retry_failed() == 2


def test_released_task_is_told_in_its_run_stream(config: RedisConfig) -> None:
    """A task handed back by a stopping worker appears as 'released' in its run's stream."""
    run = submit(Pipeline("rel").task("a", tasks.one), config=config)
    q = Queue("default", config)
    lease = claim(q)
    q.release(lease)
    released = [e for e in run.events() if e.type is EventType.RELEASED]
    assert [(e.task, e.status, e.worker) for e in released] == [("a", JobStatus.QUEUED, "w1")]
    work(config)
    assert run.result("a") == 1



def test_roots_past_the_event_cap_keep_the_readable_events(redis_server: Any,
                                                           namespace: str) -> None:
    """Of more roots in one queue than `events_maxlen`, submit_run writes only the 'enqueued'
    events that the capped stream keeps (XADD MAXLEN ~ keeps at least the newest
    events_maxlen): the stream still ends with the last events_maxlen roots' events, in
    order; a queue with fewer roots than the cap gets one per root after its older events;
    and every root is queued with its payload."""
    cfg = RedisConfig(url=redis_server.url, namespace=namespace, events_maxlen=30)
    try:
        wide_q, small_q = Queue("wide", cfg), Queue("default", cfg)
        wide_q.enqueue(b"x")
        earlier = small_q.enqueue(b"y")
        p = Pipeline("capped")
        p.map("w", "tests.tasks:square", over=range(250), queue="wide")
        p.map("s", "tests.tasks:square", over=range(5))
        p.task("g", "tests.tasks:one", after=["w", "s"])
        run = p.submit(config=cfg)
        jobs = run.to_dataframe().set_index("task")["job"]
        wide_jobs = [jobs[f"w[{i}]"] for i in range(250)]
        events = wide_q.events(count=10_000)
        assert len(events) >= 30
        assert [(e.type, e.status, e.job) for e in events[-30:]] == [
            (EventType.ENQUEUED, JobStatus.QUEUED, j) for j in wide_jobs[-30:]]
        small = small_q.events(count=10_000)
        assert [e.job for e in small] == [earlier] + [jobs[f"s[{i}]"] for i in range(5)]
        assert wide_q.counts()[JobStatus.QUEUED] == 251
        client = cfg.client()
        payloads = client.mget([cfg.keys.payload(j) for j in jobs])
        assert [json.loads(blob)["task"] for blob in payloads] == list(jobs.index)
    finally:
        cfg.close()


def test_task_without_retries_has_no_max_attempts_field(config: RedisConfig,
                                                        redis_client: Any) -> None:
    """A task without retries is submitted without `max_attempts` (1, which every reader
    defaults): its failure is final at once; one with retries has the field and is scheduled
    for a retry."""
    p = Pipeline("attempts")
    p.task("once", tasks.boom).task("twice", tasks.boom, retries=1)
    run = submit(p, config=config, backoff=60)
    ids = dict(run.job_ids())
    jobs = {t: config.keys.job(ids[t]) for t in ("once", "twice")}
    assert redis_client.hget(jobs["once"], "max_attempts") is None
    assert redis_client.hget(jobs["twice"], "max_attempts") == b"2"
    work(config)
    once, twice = run.task("once"), run.task("twice")
    assert (once.status, once.attempts, once.max_attempts) == ("failed", 1, 1)
    assert (twice.status, twice.attempts, twice.max_attempts) == ("scheduled", 1, 2)
    assert Queue("default", config).info(ids["once"]).max_attempts == 1


def test_a_big_submit_numbers_jobs_and_fifo_scores_in_order(config: RedisConfig,
                                                             redis_client: Any) -> None:
    """Past 1000 tasks submit_run.lua writes job ids and wait scores from their thousands and
    a 3-digit tail: ids `<run>.<position>` without a gap, roots claimed in FIFO order, a
    priority profile before them."""
    p = Pipeline("big").map("m", tasks.square, over=range(2600))
    p.task("first", tasks.noop, priority=5).task("last", tasks.noop, after="m")
    run = submit(p, config=config, run_id="big")
    ids = run.job_ids()
    assert [jid for _, jid in ids] == [f"big.{i}" for i in range(2602)]
    for task, jid in ids:
        assert redis_client.hget(config.keys.job(jid), "task").decode() == task
    wait = redis_client.zrange(config.keys.queue("default").wait, 0, -1, withscores=True)
    assert [jid.decode() for jid, _ in wait] == ["big.2600", *(f"big.{i}" for i in range(2600))]
    scores = [int(score) for _, score in wait[1:]]
    assert scores == list(range(scores[0], scores[0] + 2600))
    queue = Queue("default", config)
    claimed = [claim(queue).job_id for _ in range(3)]
    assert claimed == ["big.2600", "big.0", "big.1"]
