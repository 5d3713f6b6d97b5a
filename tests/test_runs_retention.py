"""Retention on a real redis-server: a run's jobs live as long as the run (queue retention never
deletes them), old ended runs are deleted whole (`RedisConfig.run_retention`), `Run.delete()`.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import pytest

from ironforge_nb.dag import Pipeline
from ironforge_nb.errors import RunError, RunStateError
from ironforge_nb.orchestrator import Run, runs, submit
from ironforge_nb.orchestrator.run_transitions import RunTransitions
from ironforge_nb.queue import Queue, RedisConfig
from ironforge_nb.status import JobStatus, RunStatus
from tests import tasks
from tests.runloop import work

pytestmark = pytest.mark.usefixtures("signing_secret")


@pytest.fixture
def small(config: RedisConfig) -> Iterator[RedisConfig]:
    """The test's namespace with tiny retentions: 50 completed jobs per queue, 2 ended runs."""
    cfg = replace(config, completed_retention=50, run_retention=2)
    yield cfg
    cfg.close()


def wide(n: int, name: str = "wide") -> Pipeline:
    """``n`` independent JSON-mode map tasks and a final gather of them all."""
    p = Pipeline(name)
    p.map("sq", "tests.tasks:square", over=list(range(n)))
    p.task("total", "tests.tasks:sum_sq", after="sq")
    return p


def gather_all(n: int) -> Pipeline:
    """``n`` independent map tasks and a gather (notebook style: the gather names the map)."""
    p = Pipeline("gather")
    p.map("sq", tasks.square, over=list(range(n)))
    p.task("total", lambda sq: sum(sq))
    return p


def keys_of(client: Any, config: RedisConfig) -> set[str]:
    """Every key of the namespace (SCAN, not KEYS)."""
    return {k.decode() for k in client.scan_iter(match=config.keys.prefix + "*", count=1000)}


def run_keys(client: Any, config: RedisConfig, run_id: str) -> set[str]:
    """The keys of the namespace that belong to run ``run_id`` (its own keys and its jobs')."""
    return {k for k in keys_of(client, config)
            if f":run:{run_id}:" in k or f":job:{run_id}." in k}


def finished(config: RedisConfig, n: int = 3, name: str = "r") -> list[Run]:
    """``n`` small JSON-mode runs, each run to its end before the next is submitted."""
    out = []
    for i in range(n):
        out.append(submit(wide(3, name), config=config, run_id=f"{name}{i}"))
        work(config)
    return out


def test_a_run_bigger_than_completed_retention_still_gathers_every_result(
        small: RedisConfig) -> None:
    """120 tasks with completed_retention=50: the gather sees all 120 results."""
    run = submit(gather_all(120), config=small)
    work(small)
    assert run.status is RunStatus.SUCCEEDED
    assert run.result("total") == sum(i * i for i in range(120))
    results = run.results()
    assert len(results) == 121 and results["sq[119]"] == 119 * 119


def test_queue_completed_list_stays_bounded_with_run_jobs(small: RedisConfig) -> None:
    """The queue's completed list keeps its retention; run jobs only leave the list."""
    run = submit(wide(120), config=small)
    work(small)
    queue = Queue("default", small)
    assert queue.counts()[JobStatus.COMPLETED] == 50
    listed = queue.jobs("completed", limit=10)
    assert listed and all(info.run == run.id for info in listed)
    assert small.client().exists(small.keys.job(f"{run.id}.0")) == 1


def test_standalone_jobs_are_still_trimmed_with_their_keys(small: RedisConfig) -> None:
    """Jobs outside runs keep the old retention: trimmed ones lose their hash and payload."""
    queue = Queue("default", small)
    ids = [queue.enqueue(b"x") for _ in range(160)]
    for _ in range(160):
        lease = queue.dequeue("w", timeout=0)
        assert lease is not None
        queue.complete(lease, b"r")
    assert small.client().exists(small.keys.job(ids[0])) == 0
    assert small.client().exists(small.keys.job(ids[-1])) == 1


def test_cancelled_retention_keeps_the_jobs_of_cancelled_runs(small: RedisConfig) -> None:
    """Cancelling standalone jobs trims the cancelled list but never deletes a run's jobs."""
    run = submit(wide(60), config=small)
    run.cancel()
    queue = Queue("default", small)
    for _ in range(3):
        queue.cancel(queue.enqueue(b"x"))
    assert all(small.client().exists(small.keys.job(j)) for _, j in run.job_ids())


def test_old_ended_runs_beyond_run_retention_are_deleted_whole(small: RedisConfig) -> None:
    """With run_retention=2 and 3 ended runs, the next submit deletes the oldest whole."""
    client = small.client()
    first, second, third = finished(small, 3)
    assert run_keys(client, small, first.id)
    fourth = submit(wide(3), config=small)
    assert run_keys(client, small, first.id) == set()
    assert run_keys(client, small, second.id) and run_keys(client, small, third.id)
    assert list(runs(small)["id"]) == [fourth.id, third.id, second.id]
    with pytest.raises(RunError, match="no run"):
        _ = first.status


def test_deleted_runs_leave_no_queue_entries(small: RedisConfig) -> None:
    """The deleted run's jobs are gone from the queue's completed list too."""
    first, *_ = finished(small, 4)
    listed = Queue("default", small).jobs("completed", limit=1000)
    assert not any(info.run == first.id for info in listed)
    ids = small.client().zrange(small.keys.queue("default").completed, 0, -1)
    assert not any(i.decode().startswith(first.id + ".") for i in ids)


def test_running_runs_are_never_deleted_by_retention(small: RedisConfig) -> None:
    """An old run still running survives submits that push it past the retention."""
    old = submit(wide(3, "slow"), config=small, queue="later")
    finished(small, 4)
    assert old.status is RunStatus.RUNNING
    assert len(run_keys(small.client(), small, old.id)) > 0


def test_delete_removes_every_key_of_an_ended_run(config: RedisConfig) -> None:
    """``Run.delete()`` leaves no key of the run in the namespace and counts its jobs."""
    client = config.client()
    run = submit(wide(5), config=config)
    work(config)
    assert run.delete() == 6
    assert run_keys(client, config, run.id) == set()
    assert client.zcard(config.keys.runs) == 0
    assert client.exists(config.keys.runs_deleting) == 0


def test_code_blobs_live_as_long_as_a_run_uses_them(config: RedisConfig) -> None:
    """Two pickle-mode runs share their content-addressed code: deleting one keeps it for the
    other, deleting the last one deletes it and its reference count."""
    client = config.client()
    first, second = (submit(gather_all(4), config=config) for _ in range(2))
    work(config)
    codes = {k for k in keys_of(client, config) if ":code:" in k}
    assert codes and set(client.hgetall(config.keys.code_refs).values()) == {b"2"}
    first.delete()
    assert run_keys(client, config, first.id) == set()
    assert {k for k in keys_of(client, config) if ":code:" in k} >= codes
    assert set(client.hgetall(config.keys.code_refs).values()) == {b"1"}
    assert second.result("total") == sum(i * i for i in range(4))
    second.delete()
    left = keys_of(client, config)
    assert not {k for k in left if ":code:" in k}
    assert all(":q:" in k or k == config.keys.queues for k in left)


def test_delete_refuses_a_running_run(quiet_config: RedisConfig) -> None:
    """Deleting a run that has not ended raises `RunStateError` and changes nothing."""
    run = submit(wide(3), config=quiet_config)
    before = quiet_config.client().dbsize()
    with pytest.raises(RunStateError, match="running") as info:
        run.delete()
    assert info.value.status == "running"
    assert quiet_config.client().dbsize() == before
    assert run.status is RunStatus.RUNNING


def test_force_delete_cancels_then_deletes(config: RedisConfig) -> None:
    """``delete(force=True)`` on a running run cancels it and deletes it whole."""
    run = submit(wide(3), config=config)
    run.delete(force=True)
    assert run_keys(config.client(), config, run.id) == set()
    assert work(config) == 0


def test_delete_of_an_unknown_run_is_an_error(config: RedisConfig) -> None:
    """A run id that was never submitted gives `RunError`."""
    with pytest.raises(RunError, match="no run"):
        Run("never", config).delete()


def test_big_runs_are_deleted_in_bounded_steps(config: RedisConfig) -> None:
    """A 1001-job run goes in several steps of about the budget; it is invisible at once."""
    scripts = RunTransitions(config)
    run = submit(wide(1000), config=config)
    run.cancel()
    pending, deleted = scripts.delete_runs(run.id, retention=False, budget=200)
    assert pending == 1 and 200 <= deleted < 600
    with pytest.raises(RunError, match="no run"):
        _ = run.status
    steps = 1
    while pending:
        pending, deleted = scripts.delete_runs(retention=False, budget=50)
        steps += 1
    assert steps >= 3
    assert run_keys(config.client(), config, run.id) == set()


def test_resubmitting_an_id_being_deleted_makes_a_fresh_run(config: RedisConfig) -> None:
    """A run id whose old run is half deleted is finished off, then submitted anew."""
    old = submit(wide(30), config=config, run_id="daily")
    work(config)
    RunTransitions(config).delete_runs(old.id, retention=False, budget=5)
    new = submit(wide(4), config=config, run_id="daily")
    assert new.info()["total"] == 5
    work(config)
    assert new.result("total") == sum(i * i for i in range(4))
    assert len(new.job_ids()) == 5


def test_submit_and_delete_on_a_redis_cluster(redis_cluster: Any, namespace: str) -> None:
    """On a Redis Cluster (one slot per namespace), a run is submitted, run and deleted whole."""
    cfg = RedisConfig(url=redis_cluster.url, cluster=True, namespace=namespace)
    try:
        run = submit(wide(4), config=cfg)
        work(cfg)
        assert run.result("total") == sum(i * i for i in range(4))
        client = cfg.client()

        def keys() -> list[bytes]:
            return [k for k in client.scan_iter(match=cfg.keys.prefix + "*",
                                                target_nodes="all") if run.id.encode() in k]

        assert keys()
        assert run.delete() == 5
        assert keys() == []
    finally:
        cfg.close()
