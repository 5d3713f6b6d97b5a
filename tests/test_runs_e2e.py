"""DAG runs end to end on REAL worker processes: ``ifn.connect(url, namespace, workers=2)``.

Most tests share one module-wide connection (2 local workers, 3 s leases so that a cancelled
task is stopped within a second). Tests that kill workers, plant data before any worker may
claim it, or need a ``--json-only`` worker start `LocalWorkers` of their own on the test's own
namespace. Task functions are defined in this module and shipped by value with cloudpickle,
as a notebook's would be (the module is registered for pickling by value); they count their
executions in files, which the workers (other processes) and the test share.
"""

from __future__ import annotations

import os
import pickle
import signal
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import cloudpickle
import pandas as pd
import pytest

import ironforge_nb as ifn
from ironforge_nb.local import RedisServer
from ironforge_nb.local.connect import Connection
from ironforge_nb.local.workers import LocalWorkers
from ironforge_nb.orchestrator import Run, codec
from ironforge_nb.queue import Queue, RedisConfig
from ironforge_nb.status import JobStatus, RunStatus
from ironforge_nb.worker import list_workers
from tests import tasks
from tests.conftest import unique_namespace
from tests.helpers import gone, signing_workers, wait_for

SECRET = b"e2e-test-secret"
cloudpickle.register_pickle_by_value(sys.modules[__name__])  # like a notebook's functions


# ---------------------------------------------------------------------- helpers and tasks


def note(log: Path, name: str) -> None:
    """Append ``name`` and the worker's pid (the executor's parent) to ``log``."""
    with log.open("a") as fh:
        fh.write(f"{name} {os.getppid()}\n")


def executions(log: Path) -> dict[str, int]:
    """How many times each task ran, from its `note` lines."""
    counts: dict[str, int] = {}
    for line in log.read_text().splitlines() if log.exists() else []:
        name = line.split()[0]
        counts[name] = counts.get(name, 0) + 1
    return counts


def logged(log: Path, name: str, value: Any = 1, fail_while: Path | None = None,
           parent: bool = False) -> Any:
    """A task function that notes each execution, fails while ``fail_while`` exists, and
    returns ``value`` (plus its parent's result when ``parent``: then it takes one)."""
    def root() -> Any:
        note(log, name)
        if fail_while is not None and fail_while.exists():
            raise RuntimeError(f"{name}: {fail_while.name} exists")
        return value

    def child(upstream: Any) -> Any:
        return root() + upstream

    return child if parent else root


def sleeper(marks: Path, name: str, seconds: float) -> Any:
    """A task that writes ``<name>.pid`` (its pid), sleeps, then writes ``<name>.done``."""
    def fn(*_: Any) -> str:
        (marks / f"{name}.pid").write_text(str(os.getpid()))
        time.sleep(seconds)
        (marks / f"{name}.done").touch()
        return name
    return fn


class Canary:
    """Unpickling this creates a file: proof that a planted pickle was unpickled."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self) -> tuple[Any, ...]:
        return (Path.touch, (self.path,))


# ---------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def pool(redis_server: RedisServer) -> Iterator[Connection]:
    """Two local workers on a namespace of this module; the process defaults point there."""
    conn = ifn.connect(url=redis_server.url, namespace=unique_namespace("e2e"), workers=2,
                       secret=SECRET, worker_args=("--lease", "3"))
    yield conn
    conn.close()


@pytest.fixture
def own_workers(config: RedisConfig) -> Iterator[Callable[..., LocalWorkers]]:
    """Factory of `LocalWorkers` on the test's own namespace (stopped after); while the test
    runs, this process signs with `SECRET` (the previous default secret is restored)."""
    with signing_workers(config, SECRET) as start:
        yield start


def job_info(run: Run, task: str) -> Any:
    """The job of ``task`` in ``run`` (default queue)."""
    return Queue("default", run.config).info(dict(run.job_ids())[task])


# ---------------------------------------------------------------------- results


def test_diamond_gives_the_right_results(pool: Connection) -> None:
    """source -> (left, right) -> join: each task gets its parents' results by name."""
    p = ifn.Pipeline("diamond")

    @p.task()
    def source() -> int:
        return 3

    @p.task()
    def left(source: int) -> int:
        return source * 10

    @p.task()
    def right(source: int) -> int:
        return source + 1

    @p.task()
    def join(left: int, right: int) -> tuple[int, int]:
        return left, right

    run = p.submit().wait(timeout=30)
    assert run.status is RunStatus.SUCCEEDED
    assert run.result("join") == (30, 4)
    assert run.results() == {"source": 3, "left": 30, "right": 4, "join": (30, 4)}


def test_fan_out_fan_in_gives_the_right_results(pool: Connection) -> None:
    """One source feeds eight branches whose results one task sums."""
    p = ifn.Pipeline("fan")
    p.task("src", lambda: 5)
    for i in range(8):
        p.task(f"b{i}", lambda src, i=i: src * i, after="src")
    p.task("total", lambda a, b, c, d, e, f, g, h: a + b + c + d + e + f + g + h,
           after=[f"b{i}" for i in range(8)])
    run = p.submit().wait(timeout=30)
    assert run.result("total") == 5 * sum(range(8))


def test_mapped_pipeline_gathers_in_item_order(pool: Connection) -> None:
    """A map over a list and one over a dict gather their members' results in item order."""
    p = ifn.Pipeline("mapped")
    p.task("base", lambda: 100)
    p.map("sq", lambda item, base: base + item * item, over=[3, 1, 2], after="base")
    p.map("up", lambda item: item.upper(), over={"a": "x", "b": "y"})
    p.task("both", lambda sq, up: (sq, up), after=["sq", "up"])
    run = p.submit().wait(timeout=30)
    assert run.result("sq") == [109, 101, 104]
    assert run.result("both") == ([109, 101, 104], {"a": "X", "b": "Y"})


def test_function_defined_in_main_runs_by_value(pool: Connection) -> None:
    """A function of ``__main__`` (as in a notebook), which no worker can import, runs."""
    cell: dict[str, Any] = {"__name__": "__main__"}
    exec("def shout(text='hi'):\n    return text.upper() + '!'\n", cell)  # a notebook cell
    p = ifn.Pipeline("cell")
    p.task("shout", cell["shout"])
    assert p.submit().wait(timeout=30).result("shout") == "HI!"


def test_pandas_dataframe_results_round_trip(pool: Connection) -> None:
    """A DataFrame returned by a task reaches its child and the notebook unchanged."""
    p = ifn.Pipeline("frames")

    @p.task()
    def load() -> pd.DataFrame:
        return pd.DataFrame({"region": ["eu", "us"], "sales": [1.5, 2.25]})

    @p.task()
    def enrich(load: pd.DataFrame) -> pd.DataFrame:
        return load.assign(double=load["sales"] * 2).set_index("region")

    run = p.submit().wait(timeout=30)
    expected = pd.DataFrame({"region": ["eu", "us"], "sales": [1.5, 2.25],
                             "double": [3.0, 4.5]}).set_index("region")
    pd.testing.assert_frame_equal(run.result("enrich"), expected)
    pd.testing.assert_frame_equal(run.result("load"), expected.reset_index()[["region", "sales"]])


def test_thousand_task_pipeline_completes(pool: Connection) -> None:
    """A 1,000-task pipeline (root, 998 mapped tasks, a gather) completes with the right sum."""
    p = ifn.Pipeline("thousand")
    p.task("root", lambda: 1)
    p.map("m", lambda item, root: item + root, over=range(998), after="root")
    p.task("sum", lambda m: sum(m), after="m")
    run = p.submit().wait(timeout=60)
    assert len(run.job_ids()) == 1000
    assert run.result("sum") == sum(range(998)) + 998
    assert run.counts()["completed"] == 1000


def test_a_chain_wakes_no_idle_worker(config: RedisConfig, own_workers: Any) -> None:
    """In a chain, each completion claims the child it released in the same call, so the
    other worker, idle, is not woken once per task (a woken worker would claim nothing): an
    idle worker's BLPOP returns only at its timeout (`IDLE_BLOCK`, 0.5 s; the module's two
    pool workers share this server), and for the root's hint."""
    own_workers(2)

    def chain(n: int) -> ifn.Pipeline:
        p = ifn.Pipeline("chain-wakes")
        p.task("c0", lambda: 0)
        for i in range(1, n):
            p.task(f"c{i}", lambda x: x + 1, after=f"c{i - 1}")
        return p

    def blpop_calls() -> int:
        return int(config.client().info("commandstats").get("cmdstat_blpop", {})
                   .get("calls", 0))

    chain(5).submit(config=config).wait(timeout=30)  # both workers up and idle
    before, start = blpop_calls(), time.monotonic()
    run = chain(300).submit(config=config).wait(timeout=60)
    took = time.monotonic() - start
    assert run.result("c299") == 299
    wakes = blpop_calls() - before  # each BLPOP answered (hint or timeout) is sent again
    assert wakes <= 4 + 4 * 2 * took, f"{wakes} BLPOPs in {took:.2f} s for 300 tasks"


# ---------------------------------------------------------------------- failures and retries


def test_failing_task_is_retried_then_succeeds(pool: Connection, tmp_path: Path) -> None:
    """A task that fails twice, with two retries, completes on its third attempt."""
    p = ifn.Pipeline("flaky")
    p.task("flaky", tasks.flaky, params={"marker": str(tmp_path / "count"), "fail_times": 2},
           retries=2)
    run = p.submit(backoff=0.05).wait(timeout=30)
    assert run.status is RunStatus.SUCCEEDED and run.result("flaky") == "ok"
    info = job_info(run, "flaky")
    assert info.attempts == 3 and "flaky: failure 1 of 2" in info.errors[0].error


def test_failure_skips_descendants_and_fails_the_run(pool: Connection, tmp_path: Path) -> None:
    """A task failing for good skips its descendants, spares the others; the run fails."""
    log = tmp_path / "log"
    p = ifn.Pipeline("fails")
    p.task("a", logged(log, "a"))
    p.task("bad", tasks.boom, after="a")
    p.task("child", logged(log, "child"), after="bad")
    p.task("grandchild", logged(log, "grandchild"), after="child")
    p.task("other", logged(log, "other"), after="a")
    run = p.submit().wait(timeout=30)
    frame = run.to_dataframe().set_index("task")
    assert run.status is RunStatus.FAILED
    assert frame["status"].to_dict() == {"a": "completed", "bad": "failed", "child": "skipped",
                                         "grandchild": "skipped", "other": "completed"}
    assert "boom: this task always fails" in (frame.loc["bad", "error"] or "")
    assert executions(log) == {"a": 1, "other": 1}


def test_retry_failed_reruns_only_what_must(pool: Connection, tmp_path: Path) -> None:
    """After a fix, retry_failed reruns the failed task and its skipped descendants only,
    feeding them the results kept from the first attempt."""
    log, broken = tmp_path / "log", tmp_path / "broken"
    broken.touch()
    p = ifn.Pipeline("retry")
    p.task("a", logged(log, "a", 1))
    p.task("b", logged(log, "b", 10, fail_while=broken, parent=True), after="a")
    p.task("c", logged(log, "c", 100, parent=True), after="b")
    p.task("d", logged(log, "d", 1000, parent=True), after="a")
    run = p.submit().wait(timeout=30)
    assert run.status is RunStatus.FAILED
    assert executions(log) == {"a": 1, "b": 1, "d": 1}
    broken.unlink()
    assert run.retry_failed() == 2
    run.wait(timeout=30)
    assert run.status is RunStatus.SUCCEEDED
    assert executions(log) == {"a": 1, "b": 2, "c": 1, "d": 1}
    assert run.result("c") == 111 and run.result("d") == 1001


def test_timeout_fails_the_attempt(pool: Connection, tmp_path: Path) -> None:
    """A task running past its timeout is killed and its attempt fails with a timeout error."""
    p = ifn.Pipeline("slow")
    p.task("slow", sleeper(tmp_path, "slow", 30), timeout=0.5)
    p.task("after", lambda slow: slow, after="slow")
    run = p.submit().wait(timeout=30)
    frame = run.to_dataframe().set_index("task")
    assert run.status is RunStatus.FAILED
    assert frame.loc["slow", "error"] == "timeout after 0.5 s"
    assert frame.loc["after", "status"] == "skipped"
    assert wait_for(lambda: gone(int((tmp_path / "slow.pid").read_text())), timeout=5)
    assert not (tmp_path / "slow.done").exists()


def test_cancel_stops_running_tasks_and_cancels_the_rest(pool: Connection,
                                                         tmp_path: Path) -> None:
    """run.cancel() cancels queued and waiting tasks and kills the running ones; a cancelled
    task prefetched by a worker is never started."""
    p = ifn.Pipeline("cancel")
    for name in ("s1", "s2", "s3"):
        p.task(name, sleeper(tmp_path, name, 30))
    p.task("child", lambda s1: s1, after="s1")
    run = p.submit()
    def started() -> list[int]:
        pids = [f.read_text() for f in tmp_path.glob("*.pid")]
        return [int(pid) for pid in pids if pid] if len(pids) >= 2 else []

    pids = wait_for(started)
    assert run.cancel() == 4
    assert run.status is RunStatus.CANCELLED
    assert set(run.to_dataframe()["status"]) == {"cancelled"}
    wait_for(lambda: all(gone(pid) for pid in pids), timeout=10)
    time.sleep(0.3)  # a respawned executor would start a cancelled prefetched task at once
    assert len(list(tmp_path.glob("*.pid"))) == 2  # nothing started after the cancel
    assert not list(tmp_path.glob("*.done"))


def test_dataframe_matches_what_really_ran(pool: Connection, tmp_path: Path) -> None:
    """to_dataframe's status, attempts and worker columns match the tasks' own records."""
    log, counter = tmp_path / "log", tmp_path / "flaky-count"

    def flaky() -> str:
        note(log, "flaky")
        return tasks.flaky(str(counter), 1)

    def bad() -> None:
        note(log, "bad")
        raise ValueError("bad input")

    p = ifn.Pipeline("truth")
    p.task("ok", logged(log, "ok"))
    p.task("flaky", flaky, retries=1)
    p.task("bad", bad, retries=1)
    p.task("child", logged(log, "child"), after="bad")
    p.task("after_ok", logged(log, "after_ok"), after="ok")
    run = p.submit(backoff=0.05).wait(timeout=30)
    frame = run.to_dataframe().set_index("task")
    names = {str(w.pid): w.name for w in pool.workers()}
    last_pid = {line.split()[0]: line.split()[1] for line in log.read_text().splitlines()}
    assert frame["status"].to_dict() == {"ok": "completed", "flaky": "completed",
                                         "bad": "failed", "child": "skipped",
                                         "after_ok": "completed"}
    assert frame["attempts"].to_dict() == {**executions(log), "child": 0}
    assert frame["worker"].dropna().to_dict() == {t: names[pid] for t, pid in last_pid.items()}
    assert pd.isna(frame.loc["child", "worker"])
    assert "ValueError: bad input" in frame.loc["bad", "error"]
    assert frame.loc["ok", "duration"] >= 0 and pd.isna(frame.loc["child", "started"])


# ---------------------------------------------------------------------- workers and security


@pytest.mark.slow
def test_run_survives_a_sigkilled_worker(config: RedisConfig, own_workers: Any,
                                         tmp_path: Path) -> None:
    """A worker SIGKILLed while it runs a slow task: its jobs are redelivered once their
    leases expire, and the run completes with the right results."""
    workers = own_workers(2, "--lease", "1")
    p = ifn.Pipeline("chaos")
    p.task("src", lambda: 2, retries=2)
    p.map("slow", lambda item, src: (time.sleep(0.8), item * src)[1], over=range(4),
          after="src", retries=2)
    p.task("marker", sleeper(tmp_path, "victim", 1.5), after="src", retries=2)
    p.task("total", lambda slow, marker: (sum(slow), marker), after=["slow", "marker"],
           retries=2)
    run = p.submit(config=config, backoff=0.05)
    wait_for(lambda: (tmp_path / "victim.pid").exists())
    victim = wait_for(lambda: job_info(run, "marker").worker)
    pid = {w.name: w.pid for w in list_workers(config)}[victim]
    os.kill(pid, signal.SIGKILL)
    run.wait(timeout=45)
    assert run.status is RunStatus.SUCCEEDED, workers.log_tail(0)
    assert run.result("total") == (12, "victim")
    info = job_info(run, "marker")
    assert (info.attempts, info.stalls, info.errors) == (1, 1, ())  # a stall, not an attempt
    assert info.last_stall == f"lease expired (worker {victim})"


def plant_and_run(config: RedisConfig, own_workers: Any, plant: Callable[[Run, str], None]
                  ) -> tuple[Run, Any]:
    """Submit a one-task run, let ``plant`` tamper with Redis, then start a real worker and
    return the run (ended) and the job's info."""
    p = ifn.Pipeline("victim")
    p.task("t", tasks.one)
    run = p.submit(config=config)
    plant(run, dict(run.job_ids())["t"])
    own_workers(1)
    run.wait(timeout=30)
    return run, job_info(run, "t")


def test_code_signed_with_another_secret_is_never_executed(config: RedisConfig,
                                                           own_workers: Any,
                                                           tmp_path: Path) -> None:
    """Code replaced by a pickle signed with a wrong secret is refused before unpickling."""
    canary = tmp_path / "canary"

    def plant(run: Run, job_id: str) -> None:
        client = config.client()
        (key,) = client.keys(config.keys.code("*"))
        client.set(key, codec.dumps(Canary(canary), b"attacker-secret"))

    run, info = plant_and_run(config, own_workers, plant)
    assert run.status is RunStatus.FAILED and info.status is JobStatus.FAILED
    assert info.attempts == 1 and info.error.startswith("SignatureError")
    assert "signature does not match" in info.error
    assert not canary.exists()


def test_code_without_signature_is_never_executed(config: RedisConfig, own_workers: Any,
                                                  tmp_path: Path) -> None:
    """A raw pickle planted in the code store is refused as unsigned, never unpickled."""
    canary = tmp_path / "canary"

    def plant(run: Run, job_id: str) -> None:
        client = config.client()
        (key,) = client.keys(config.keys.code("*"))
        client.set(key, pickle.dumps(Canary(canary)))

    run, info = plant_and_run(config, own_workers, plant)
    assert run.status is RunStatus.FAILED and info.attempts == 1
    assert info.error.startswith("SignatureError") and "not signed" in info.error
    assert not canary.exists()


def test_raw_pickle_payload_is_never_executed(config: RedisConfig, own_workers: Any,
                                              tmp_path: Path) -> None:
    """A job payload replaced by a raw pickle is refused: payloads are JSON."""
    canary = tmp_path / "canary"

    def plant(run: Run, job_id: str) -> None:
        config.client().set(config.keys.payload(job_id), pickle.dumps(Canary(canary)))

    run, info = plant_and_run(config, own_workers, plant)
    assert run.status is RunStatus.FAILED and info.attempts == 1
    assert info.error.startswith("SignatureError") and "raw pickles" in info.error
    assert not canary.exists()


def test_json_mode_runs_on_a_json_only_worker(config: RedisConfig, own_workers: Any) -> None:
    """Import-path tasks with JSON arguments run on a --json-only worker with no secret, and
    every result is stored as JSON."""
    own_workers(1, "--json-only", secret=None)
    p = ifn.Pipeline("json")
    p.task("one", "tests.tasks:one")
    p.task("ten", "tests.tasks:from_one", after="one")
    p.map("sq", "tests.tasks:square", over=[1, 2, 3])
    p.task("sum_sq", "tests.tasks:sum_sq", after="sq")
    run = p.submit(config=config, mode="json").wait(timeout=30)
    assert run.status is RunStatus.SUCCEEDED
    assert run.results() == {"one": 1, "ten": 10, "sq[0]": 1, "sq[1]": 4, "sq[2]": 9,
                             "sum_sq": 14}
    blobs = config.client().mget([config.keys.result(j) for _, j in run.job_ids()])
    assert all(not codec.is_signed(b) for b in blobs)


def test_json_only_worker_never_runs_pickled_code(config: RedisConfig, own_workers: Any,
                                                  tmp_path: Path) -> None:
    """A --json-only worker fails a notebook function's job for good without running it."""
    own_workers(1, "--json-only", secret=None)
    p = ifn.Pipeline("pickled")
    p.task("t", lambda: (tmp_path / "ran").touch())
    run = p.submit(config=config).wait(timeout=30)
    info = job_info(run, "t")
    assert run.status is RunStatus.FAILED and info.attempts == 1
    assert info.error.startswith("SignatureError") and "JSON-only" in info.error
    assert not (tmp_path / "ran").exists()
