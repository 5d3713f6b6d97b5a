"""``ifn.connect()``: embedded server + local worker processes, process defaults, clean shutdown."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

import ironforge_nb as ifn
from ironforge_nb.local import RedisServer
from ironforge_nb.local.connect import Connection, current_connection
from ironforge_nb.orchestrator import codec
from ironforge_nb.queue import Queue, default_config
from ironforge_nb.status import JobStatus
from tests.helpers import gone
from tests.worker_tasks import EXECUTOR, command

REPO = Path(__file__).resolve().parents[1]
TEST_EXECUTOR = ("--executor", EXECUTOR)


def all_pids(conn: Connection) -> list[int]:
    """The server, the local workers and their child processes (an executor and a webhook
    dispatcher each)."""
    assert conn.server is not None and conn.local_workers is not None
    pids = [conn.server.pid or -1, *conn.local_workers.pids]
    for pid in conn.local_workers.pids:
        pids += [c.pid for c in psutil.Process(pid).children()]
    return pids


def wait_gone(pids: list[int], timeout: float = 15.0) -> list[int]:
    """The pids still running after ``timeout`` (empty when all have exited)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not all(gone(p) for p in pids):
        time.sleep(0.05)
    return [p for p in pids if not gone(p)]


@pytest.fixture
def embedded() -> Iterator[Connection]:
    """``ifn.connect(home=None)`` (a throwaway server) with two local workers running the test
    executor; closed after."""
    conn = ifn.connect(workers=2, worker_args=TEST_EXECUTOR, home=None)
    yield conn
    conn.close()


def test_connect_starts_server_and_workers(embedded: Connection) -> None:
    """connect() starts an embedded redis-server and two registered worker processes."""
    assert embedded.server is not None and embedded.server.running
    assert len(embedded.workers()) == 2
    assert {w.pid for w in embedded.workers()} == set(embedded.local_workers.pids)  # type: ignore[union-attr]


def test_connect_sets_process_defaults(embedded: Connection) -> None:
    """The connection's config and secret become this process's defaults."""
    assert default_config() is embedded.config
    assert codec.default_secret() == embedded.secret and embedded.secret
    assert current_connection() is embedded


def test_local_workers_run_jobs(embedded: Connection) -> None:
    """A job enqueued on the default queue is run by a local worker."""
    q = Queue()
    jid = q.enqueue(command("echo", value="hi"))
    deadline = time.monotonic() + 60  # the local worker starts first: slow on a loaded VM
    while q.info(jid).status is not JobStatus.COMPLETED and time.monotonic() < deadline:
        time.sleep(0.02)
    assert json.loads(q.result(jid) or b"") == "hi"


def test_local_workers_share_the_secret(embedded: Connection) -> None:
    """Local workers get the connection's secret in IRONFORGE_SECRET."""
    pid = embedded.local_workers.pids[0]  # type: ignore[union-attr]
    assert psutil.Process(pid).environ()["IRONFORGE_SECRET"] == embedded.secret.decode()  # type: ignore[union-attr]


def test_repr_names_url_namespace_and_workers(embedded: Connection) -> None:
    """The repr shows where, which namespace and how many local workers."""
    text = repr(embedded)
    assert embedded.config.url in text and "namespace='default'" in text
    assert "local_workers=2" in text and "embedded" in text


def test_close_stops_every_process(embedded: Connection) -> None:
    """close() stops the workers, their executors and webhook dispatchers and the server, and
    forgets the defaults."""
    pids = all_pids(embedded)
    assert len(pids) == 7  # server, 2 workers, 2 executors, 2 dispatchers
    embedded.close()
    assert wait_gone(pids) == []
    assert current_connection() is None and codec.default_secret() is None


def test_connect_again_closes_the_previous(embedded: Connection) -> None:
    """A second connect() closes the first connection's processes."""
    pids = all_pids(embedded)
    second = ifn.connect(workers=0)
    try:
        assert embedded.closed and wait_gone(pids) == []
        assert current_connection() is second
    finally:
        second.close()


def test_connect_to_a_url_without_workers(redis_server: RedisServer) -> None:
    """With a URL and workers=0, nothing is started and the defaults point at that Redis."""
    conn = ifn.connect(redis_server.url, namespace="elsewhere", workers=0, secret="s3cret")
    try:
        assert conn.server is None and conn.local_workers is None
        assert default_config().url == redis_server.url
        assert default_config().namespace == "elsewhere"
        assert codec.default_secret() == b"s3cret"
    finally:
        conn.close()
    assert redis_server.running


_OWNER = """
import json, sys, time
import ironforge_nb as ifn
conn = ifn.connect(workers=1, worker_args=["--executor", sys.argv[1]], home=None)
print(json.dumps([conn.server.pid, *conn.local_workers.pids]), flush=True)
time.sleep(600)
"""


def test_local_processes_die_with_their_owner() -> None:
    """When the owning process is SIGKILLed, its server and workers exit by themselves."""
    owner = subprocess.Popen([sys.executable, "-c", _OWNER, EXECUTOR], cwd=REPO,
                             stdout=subprocess.PIPE, env={**os.environ, "PYTHONPATH": str(REPO)})
    try:
        assert owner.stdout is not None
        pids = json.loads(owner.stdout.readline())
        executors = [c.pid for p in pids[1:] for c in psutil.Process(p).children()]
        owner.send_signal(signal.SIGKILL)
        owner.wait()
        assert wait_gone([*pids, *executors]) == []
    finally:
        if owner.poll() is None:
            owner.kill()
        owner.wait()


def test_demo_runs_the_pipeline_end_to_end(capsys: pytest.CaptureFixture[str]) -> None:
    """The demo's run succeeds on local workers and prints the table and the final report."""
    from ironforge_nb.demo import build_pipeline, run_pipeline

    assert run_pipeline(build_pipeline()) == 0
    out = capsys.readouterr().out
    assert "7/7 done" in out and "by_region[apac] completed" in out
    assert "eu: 120.00\nus: 99.50\napac: 42.50\nrows: 4" in out
    assert "audit: 2026-11-28: 4 rows, 4 lines" in out
    assert current_connection() is None  # the demo closed its connection


def test_run_survives_a_sigkilled_local_worker() -> None:
    """A worker SIGKILLed mid-task: the other one reruns its jobs and the run succeeds, with
    default options (no retries): the killed task stalled, which costs no attempt, and the
    jobs the dead worker held ahead cost nothing at all."""
    from tests import worker_tasks as t

    conn = ifn.connect(workers=2, worker_args=("--lease", "1"))
    try:
        p = ifn.Pipeline("diamond")
        (p.task("source", t.source)
          .task("slow_double", t.slow_double, after="source")
          .task("plus_one", t.plus_one, after="source")
          .task("total", t.total, after=["slow_double", "plus_one"]))
        run = p.submit()
        job = dict(run.job_ids())["slow_double"]
        q = Queue()
        deadline = time.monotonic() + 15
        while q.info(job).status is not JobStatus.ACTIVE and time.monotonic() < deadline:
            time.sleep(0.01)
        name = q.info(job).worker or ""
        os.kill({w.name: w.pid for w in conn.workers()}[name], signal.SIGKILL)
        run.wait(timeout=30)
        assert run.result("total") == 64
        frame = run.to_dataframe().set_index("task")
        assert frame.loc["slow_double", ["attempts", "stalls"]].tolist() == [1, 1]
        assert frame["attempts"].tolist() == [1, 1, 1, 1]
        info = q.info(job)
        assert (info.errors, info.last_stall) == ((), f"lease expired (worker {name})")
    finally:
        conn.close()


def test_connect_hands_its_task_log_settings_to_its_workers() -> None:
    """connect(task_log_bytes=, task_log_level=) sets the config's capture settings and the
    local workers it starts capture with them: a 1,000-byte tail, WARNING records and up."""
    conn = ifn.connect(workers=1, home=None, task_log_bytes=1000, task_log_level="WARNING")
    try:
        assert (conn.config.task_log_bytes, conn.config.task_log_level) == (1000, "WARNING")

        def talk() -> int:
            import logging

            print("x" * 5000)
            logging.getLogger("etl").info("below the level: not kept")
            logging.getLogger("etl").warning("kept")
            return 1

        run = ifn.Pipeline("chat").task("talk", talk).submit()
        run.wait(timeout=60, progress=False, raise_on_failure=True)
        text = run.logs("talk")
        head, tail = text.split("\n", 1)
        assert "bytes of earlier output dropped; the last 1,000 are kept" in head
        assert len(tail.encode()) <= 1000 and "WARNING:etl:kept" in tail
        assert "not kept" not in text
    finally:
        conn.close()


def test_connect_refuses_bad_task_log_settings() -> None:
    """A bad capture setting is refused before anything starts, naming the setting."""
    with pytest.raises(ifn.InvalidOptionError, match="task_log_level"):
        ifn.connect(workers=1, home=None, task_log_level="LOUD")
    assert current_connection() is None
