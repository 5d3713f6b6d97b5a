"""Workers as real processes (``python -m ironforge_nb.worker``) against a real redis-server.

The jobs are JSON commands run by `tests.worker_tasks` (the worker's ``--executor``), so these
tests exercise the worker alone: claiming, executors, heartbeats, timeouts, signals, progress.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

from ironforge_nb.errors import InvalidOptionError
from ironforge_nb.local import RedisServer
from ironforge_nb.queue import Queue, RedisConfig
from ironforge_nb.status import EventType, JobStatus
from ironforge_nb.worker import Worker, list_workers
from ironforge_nb.worker.context import Reporter, progress, track
from tests.helpers import REPO, gone, wait_for, worker_processes
from tests.worker_tasks import EXECUTOR, command

StartWorker = Callable[..., subprocess.Popen[bytes]]


def status_is(q: Queue, job_id: str, status: JobStatus) -> Callable[[], bool]:
    """A predicate: the job has reached ``status``."""
    return lambda: q.info(job_id).status is status


@pytest.fixture
def q(config: RedisConfig) -> Queue:
    """The queue the test workers serve."""
    return Queue("work", config)


@pytest.fixture
def start_worker(config: RedisConfig, tmp_path: Path) -> Iterator[StartWorker]:
    """Factory of registered worker processes running the test executor; all killed after."""
    with worker_processes(config, tmp_path) as spawn:
        def start(name: str = "w1", *, queues: str = "work", concurrency: int = 1,
                  lease: float = 30.0, grace: float = 10.0, extra: tuple[str, ...] = ()
                  ) -> subprocess.Popen[bytes]:
            return spawn(name, [
                "--queues", queues, "--concurrency", str(concurrency), "--executor", EXECUTOR,
                "--lease", str(lease), "--grace", str(grace), "--log-level", "INFO", *extra])

        yield start


def executor_pids(worker: subprocess.Popen[bytes]) -> list[int]:
    """Pids of a worker's executor processes (not its webhook dispatcher)."""
    return [c.pid for c in psutil.Process(worker.pid).children() if c.name() == "ifn-executor"]


def test_a_workers_processes_are_named_for_top(start_worker: StartWorker) -> None:
    """``top`` and ``ps -o comm`` tell a worker's processes apart: the worker, each of its
    executors and its webhook dispatcher (all forks of one Python process)."""
    worker = start_worker(concurrency=2)
    assert psutil.Process(worker.pid).name() == "ifn-worker"
    wait_for(lambda: sorted(c.name() for c in psutil.Process(worker.pid).children())
             == ["ifn-executor", "ifn-executor", "ifn-webhooks"])
    assert len(executor_pids(worker)) == 2


# -- running jobs ----------------------------------------------------------------------------


def test_worker_runs_jobs_and_stores_results(q: Queue, start_worker: StartWorker) -> None:
    """Every job is completed with the result its task returned."""
    start_worker(concurrency=2)
    ids = [q.enqueue(command("echo", value=i)) for i in range(6)]
    for jid in ids:
        wait_for(status_is(q, jid, JobStatus.COMPLETED))
    assert [json.loads(q.result(j) or b"") for j in ids] == list(range(6))


def test_short_successes_share_their_completion_calls(q: Queue, redis_client: Any,
                                                      start_worker: StartWorker) -> None:
    """While its executor still holds many prefetched leases, the worker completes successes
    together (each waits at most COMPLETE_DELAY for the next ones, settling.py), so 2,000
    sub-millisecond jobs cost far fewer script calls than one start mark plus one completion
    each (1.6-1.7 per job without that), and every result is stored."""
    start_worker()
    n = 2000

    def evalsha_calls() -> int:
        stats = redis_client.info("commandstats")
        return int(stats.get("cmdstat_evalsha", {}).get("calls", 0))

    before = evalsha_calls()
    ids = q.enqueue_batch([command("echo", value=i) for i in range(n)])
    wait_for(lambda: q.counts()[JobStatus.COMPLETED] >= n, timeout=60)
    per_job = (evalsha_calls() - before) / n
    assert per_job < 1.35, f"{per_job:.2f} script calls per job"
    assert [json.loads(q.result(j) or b"") for j in ids[:: n // 10]] == list(range(0, n, n // 10))


def test_lease_survives_a_task_that_holds_the_interpreter(q: Queue,
                                                         start_worker: StartWorker) -> None:
    """A 2 s busy loop under a 0.5 s lease completes in one attempt, never redelivered."""
    start_worker(lease=0.5)
    jid = q.enqueue(command("busy", seconds=2.0))
    wait_for(status_is(q, jid, JobStatus.COMPLETED))
    assert q.info(jid).attempts == 1
    assert EventType.LEASE_EXPIRED not in {e.type for e in q.events()}


def test_failing_task_is_retried_then_succeeds(q: Queue, start_worker: StartWorker) -> None:
    """An exception fails the attempt with its traceback, and the retry succeeds."""
    start_worker()
    jid = q.enqueue(command("fail", until_attempt=2, message="flaky"), backoff=0.01)
    wait_for(status_is(q, jid, JobStatus.COMPLETED))
    info = q.info(jid)
    assert info.attempts == 2 and "RuntimeError: flaky" in info.errors[0].error


def test_signature_error_fails_the_job_for_good(q: Queue, start_worker: StartWorker) -> None:
    """A SignatureError dead-letters the job at once, whatever attempts remain."""
    start_worker()
    jid = q.enqueue(command("signature"), max_attempts=5)
    wait_for(status_is(q, jid, JobStatus.FAILED))
    info = q.info(jid)
    assert info.attempts == 1 and info.error is not None and "SignatureError" in info.error


def test_executor_crash_is_a_stall_and_is_replaced(q: Queue,
                                                  start_worker: StartWorker) -> None:
    """A task whose process dies under it stalls (no attempt charged; with max_stalls=0 it
    fails at once, saying how); a new executor runs the next job."""
    worker = start_worker()
    before = executor_pids(worker)
    crash = q.enqueue(command("exit", code=3), max_attempts=1, max_stalls=0)
    wait_for(status_is(q, crash, JobStatus.FAILED))
    info = q.info(crash)
    assert (info.attempts, info.stalls) == (0, 1)
    assert info.error == ("stalled 1 time (max_stalls 0); last: the executor process exited "
                          "with code 3 while running the task (worker w1)")
    after = q.enqueue(command("pid"))
    wait_for(status_is(q, after, JobStatus.COMPLETED))
    assert json.loads(q.result(after) or b"") not in before


# -- timeouts and cancellation ---------------------------------------------------------------


def test_timeout_kills_the_task_then_the_retry_succeeds(q: Queue,
                                                       start_worker: StartWorker) -> None:
    """A task over its timeout is killed and the attempt fails; the next attempt completes."""
    start_worker()
    jid = q.enqueue(command("sleep_once", seconds=60), max_attempts=2, backoff=0.01,
                    meta={"timeout": "0.5"})
    wait_for(status_is(q, jid, JobStatus.COMPLETED), timeout=10)
    info = q.info(jid)
    assert info.attempts == 2 and info.errors[0].error == "timeout after 0.5 s"
    assert json.loads(q.result(jid) or b"") == "attempt 2"


def test_worker_default_timeout_applies(q: Queue, start_worker: StartWorker) -> None:
    """``--timeout`` limits tasks whose job sets no timeout of its own."""
    start_worker(extra=("--timeout", "0.3"))
    jid = q.enqueue(command("sleep", seconds=60), max_attempts=1)
    wait_for(status_is(q, jid, JobStatus.FAILED), timeout=10)
    assert q.info(jid).error == "timeout after 0.3 s"


def test_cancelled_running_job_is_stopped(q: Queue, start_worker: StartWorker,
                                          tmp_path: Path) -> None:
    """Cancelling a running job kills its executor at the next heartbeat."""
    worker = start_worker(lease=0.6)
    flag = tmp_path / "flag"
    jid = q.enqueue(command("sleep_first", seconds=60, flag=str(flag)))
    wait_for(flag.exists)
    task_pid = int(wait_for(flag.read_text))
    q.cancel(jid)
    wait_for(lambda: gone(task_pid), timeout=5)
    assert worker.poll() is None


# -- stopping --------------------------------------------------------------------------------


def test_sigterm_lets_a_short_task_finish(q: Queue, config: RedisConfig,
                                          start_worker: StartWorker) -> None:
    """After SIGTERM a running task completes within the grace period and the worker exits."""
    worker = start_worker(grace=10)
    jid = q.enqueue(command("sleep", seconds=1.0))
    wait_for(status_is(q, jid, JobStatus.ACTIVE))
    worker.send_signal(signal.SIGTERM)
    assert worker.wait(15) == 0
    assert q.info(jid).status is JobStatus.COMPLETED
    assert "w1" not in {w.name for w in list_workers(config)}


def test_sigterm_stops_claiming(q: Queue, start_worker: StartWorker) -> None:
    """A stopping worker claims no new job."""
    worker = start_worker(grace=10)
    first = q.enqueue(command("sleep", seconds=1.0))
    wait_for(status_is(q, first, JobStatus.ACTIVE))
    worker.send_signal(signal.SIGTERM)
    second = q.enqueue(command("echo", value=2))
    assert worker.wait(15) == 0
    assert q.info(second).status is JobStatus.QUEUED


def test_sigterm_hands_a_long_task_back_at_once(q: Queue, start_worker: StartWorker,
                                                tmp_path: Path) -> None:
    """Past the grace period the job is queued again at once, and another worker completes it."""
    worker = start_worker("w1", grace=0.5, lease=60)
    flag = tmp_path / "flag"
    jid = q.enqueue(command("sleep_first", seconds=60, flag=str(flag)))
    wait_for(flag.exists)
    worker.send_signal(signal.SIGTERM)
    start = time.monotonic()
    wait_for(status_is(q, jid, JobStatus.QUEUED), timeout=5)
    assert time.monotonic() - start < 3.0  # the 60 s lease was not waited for
    assert worker.wait(10) == 0
    start_worker("w2")
    wait_for(status_is(q, jid, JobStatus.COMPLETED))
    info = q.info(jid)
    assert info.worker == "w2" and info.attempts == 1
    assert json.loads(q.result(jid) or b"") == "second run"


def test_sigkilled_worker_job_is_redelivered(q: Queue, start_worker: StartWorker,
                                             tmp_path: Path) -> None:
    """A worker SIGKILLed mid-job: its executor dies too, and another worker completes the job."""
    worker = start_worker("w1", lease=1.0)
    flag = tmp_path / "flag"
    jid = q.enqueue(command("sleep_first", seconds=60, flag=str(flag)), backoff=0.01)
    wait_for(flag.exists)
    task_pid = int(wait_for(flag.read_text))
    worker.kill()
    worker.wait()
    wait_for(lambda: not psutil.pid_exists(task_pid), timeout=5)
    start_worker("w2", lease=1.0)
    wait_for(status_is(q, jid, JobStatus.COMPLETED))
    info = q.info(jid)
    assert (info.worker, info.attempts, info.stalls, info.errors) == ("w2", 1, 1, ())
    assert info.last_stall == "lease expired (worker w1)"


def test_two_workers_share_a_queue_without_double_runs(q: Queue, start_worker: StartWorker,
                                                      tmp_path: Path) -> None:
    """Two workers drain one queue; every job runs and completes exactly once."""
    record = tmp_path / "runs.txt"
    start_worker("w1", concurrency=2)
    start_worker("w2", concurrency=2)
    ids = [q.enqueue(command("sleep", seconds=0.02, record=str(record))) for _ in range(40)]
    for jid in ids:
        wait_for(status_is(q, jid, JobStatus.COMPLETED))
    ran = [line.split()[0] for line in record.read_text().splitlines()]
    assert sorted(ran) == sorted(ids)
    assert {q.info(j).worker for j in ids} == {"w1", "w2"}


def test_jobs_prefetched_behind_a_long_task_are_handed_back(
        q: Queue, start_worker: StartWorker) -> None:
    """Jobs a fast executor prefetched go back to the queue once the task ahead runs long."""
    start_worker("w1")
    # one batch: the jobs behind the slow one are queued before w1 can reach it, whatever the
    # machine's load (enqueued one by one, they could come after w1 had claimed it alone)
    *fast, slow, b1, b2, b3 = q.enqueue_batch(
        [command("echo", value=i) for i in range(20)] + [command("sleep", seconds=30)]
        + [command("echo", value=i) for i in range(3)])
    behind = [b1, b2, b3]
    for jid in fast:
        wait_for(status_is(q, jid, JobStatus.COMPLETED))
    wait_for(status_is(q, slow, JobStatus.ACTIVE))
    start_worker("w2")
    for jid in behind:
        wait_for(status_is(q, jid, JobStatus.COMPLETED), timeout=10)
    assert {q.info(j).worker for j in behind} == {"w2"}
    assert q.info(slow).status is JobStatus.ACTIVE
    released = {e.job for e in q.events() if e.type is EventType.RELEASED}
    assert released and released <= set(behind)


def test_prefetch_zero_holds_one_job_per_executor(q: Queue, start_worker: StartWorker) -> None:
    """With ``--prefetch 0`` an executor of fast tasks never holds a job it is not running."""
    start_worker("w1", extra=("--prefetch", "0"))
    fast = [q.enqueue(command("echo", value=i)) for i in range(20)]
    slow = q.enqueue(command("sleep", seconds=30))
    behind = q.enqueue(command("echo", value="behind"))
    for jid in fast:
        wait_for(status_is(q, jid, JobStatus.COMPLETED))
    wait_for(status_is(q, slow, JobStatus.ACTIVE))
    time.sleep(0.3)
    assert q.info(behind).status is JobStatus.QUEUED


def test_registry_lists_the_worker(config: RedisConfig, start_worker: StartWorker) -> None:
    """A running worker appears in the registry with its pid, queues and concurrency."""
    worker = start_worker("w1", queues="work,other", concurrency=2)
    (info,) = list_workers(config)
    assert (info.name, info.pid, info.queues, info.concurrency) == (
        "w1", worker.pid, ("work", "other"), 2)


def test_worker_serves_every_queue_it_is_given(config: RedisConfig,
                                              start_worker: StartWorker) -> None:
    """A worker of two queues runs the jobs of both."""
    a, b = Queue("a", config), Queue("b", config)
    ja, jb = a.enqueue(command("echo", value="a")), b.enqueue(command("echo", value="b"))
    start_worker(queues="a,b")
    wait_for(status_is(a, ja, JobStatus.COMPLETED))
    wait_for(status_is(b, jb, JobStatus.COMPLETED))


def test_worker_survives_a_redis_restart(fresh_server: Callable[..., RedisServer],
                                         tmp_path: Path) -> None:
    """A worker whose Redis crashes and comes back goes on serving the queue."""
    server = fresh_server()
    config = RedisConfig(url=server.url, namespace="restart")
    log = tmp_path / "w.log"
    cmd = [sys.executable, "-m", "ironforge_nb.worker", "--url", config.url, "--namespace",
           "restart", "--queues", "work", "--executor", EXECUTOR, "--name", "w1"]
    with open(log, "ab") as out:
        worker = subprocess.Popen(cmd, cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)},
                                  stdout=out, stderr=subprocess.STDOUT)
    try:
        wait_for(lambda: list_workers(config))
        server.kill()
        time.sleep(1.5)
        server.restart()
        q = Queue("work", config)
        jid = q.enqueue(command("echo", value="back"))
        wait_for(status_is(q, jid, JobStatus.COMPLETED), timeout=20)
        assert worker.poll() is None and "Redis unavailable" in log.read_text()
    except BaseException:
        print(log.read_text())
        raise
    finally:
        worker.kill()
        worker.wait()
        config.close()


# -- progress from inside a task -------------------------------------------------------------


def test_progress_is_visible_while_the_task_runs(q: Queue, start_worker: StartWorker) -> None:
    """``ifn.progress`` values reach the job's meta hash before the task ends."""
    start_worker()
    jid = q.enqueue(command("progress", steps=[[0.25, "reading"], [0.5, "writing"]], hold=3))
    wait_for(lambda: q.info(jid).progress == 0.5)
    info = q.info(jid)
    assert info.status is JobStatus.ACTIVE and info.message == "writing"


def test_track_reports_done_over_total(q: Queue, start_worker: StartWorker) -> None:
    """``ifn.track`` shows partial progress and a count while the loop runs."""
    start_worker()
    jid = q.enqueue(command("track", n=10, delay=0.15, message="rows", hold=2))
    info = wait_for(lambda: (i := q.info(jid)).status is JobStatus.ACTIVE and
                    0 < i.progress < 1 and i)
    assert info.message is not None and info.message.startswith("rows: ")
    wait_for(lambda: q.info(jid).message == "rows: 10/10")
    assert q.info(jid).progress == 1.0


def test_reporter_coalesces_and_flushes_the_last_value() -> None:
    """Many quick updates become a few writes, and the last value is always written."""
    writes: list[tuple[float, str | None]] = []
    reporter = Reporter(lambda v, m: writes.append((v, m)), interval=0.2)
    for i in range(1, 101):
        reporter.report(i / 100, None if i % 10 else f"step {i}")
    assert len(writes) == 1
    reporter.close()
    assert writes[-1] == (1.0, "step 100") and len(writes) == 2


def test_reporter_writes_a_pending_value_after_the_interval() -> None:
    """A coalesced update is written by the timer once the interval has passed."""
    writes: list[tuple[float, str | None]] = []
    reporter = Reporter(lambda v, m: writes.append((v, m)), interval=0.1)
    reporter.report(0.1, "a")
    reporter.report(0.4, "b")
    wait_for(lambda: len(writes) == 2, timeout=2)
    assert writes == [(0.1, "a"), (0.4, "b")]
    reporter.close()


def test_progress_and_track_outside_a_task_do_nothing() -> None:
    """Outside a task, progress is a validated no-op and track a plain loop."""
    progress(0.5, "ignored")
    assert list(track(iter(range(3)))) == [0, 1, 2]


def test_progress_rejects_a_value_outside_zero_one() -> None:
    """A progress of 40 (meant as percent) is refused with the expected range."""
    with pytest.raises(InvalidOptionError, match="from 0 to 1"):
        progress(40)


# -- configuration ---------------------------------------------------------------------------


def test_worker_rejects_bad_options(config: RedisConfig) -> None:
    """Bad concurrency, queues or lease are refused before anything starts."""
    def noop(c: RedisConfig, lease: Any) -> None:
        return None

    for kwargs in ({"concurrency": 0}, {"queues": []}, {"lease": 0}, {"queues": ["a:b"]}):
        with pytest.raises(InvalidOptionError if "a:b" not in str(kwargs) else ValueError):
            Worker(config, executor=noop, **kwargs)


def test_cli_worker_needs_an_importable_executor(config: RedisConfig) -> None:
    """``--executor`` naming nothing importable exits 1 with the fix in the message."""
    out = subprocess.run(
        [sys.executable, "-m", "ironforge_nb.worker", "--url", config.url, "--executor",
         "nowhere.at_all:fn"], capture_output=True, text=True, cwd=REPO, timeout=60)
    assert out.returncode == 1 and "package.module:function" not in out.stdout
    assert "nowhere.at_all:fn" in out.stderr
