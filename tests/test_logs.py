"""Task output (print, stderr, logging) captured per attempt by real workers, read back with
`Run.logs` / `Queue.logs`, capped, visible while the task runs, and deleted with its job.

Workers are real processes (`LocalWorkers`) on the test's own namespace, with a small
``--task-log-bytes`` so that the cap is cheap to reach. Task functions are defined here and
shipped by value, as a notebook's would be.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import cloudpickle
import pytest

import ironforge_nb as ifn
from ironforge_nb.errors import InvalidOptionError, JobNotFoundError, UnknownTaskError
from ironforge_nb.local.workers import LocalWorkers
from ironforge_nb.queue import Queue, RedisConfig
from ironforge_nb.status import JobStatus, RunStatus
from ironforge_nb.worker.logs import Capture, marker
from tests.helpers import claim, signing_workers, wait_for
from tests.worker_tasks import EXECUTOR, command

SECRET = b"logs-test-secret"
CAP = 4096
cloudpickle.register_pickle_by_value(sys.modules[__name__])


@pytest.fixture
def workers(config: RedisConfig) -> Iterator[Callable[..., LocalWorkers]]:
    """Factory of local workers on the test's namespace (stopped after); this process signs
    with `SECRET` meanwhile."""
    with signing_workers(config, SECRET) as start:
        yield lambda *args: start(1, "--task-log-bytes", str(CAP), *args,
                                  queues=("default", "plain"))


def chatty() -> str:
    """Prints, logs and writes to stderr, in that order, twice."""
    print("one")
    logging.getLogger("etl").info("two")
    print("three", file=sys.stderr)
    logging.getLogger("etl").debug("not captured: below INFO")
    logging.getLogger("etl").warning("four")
    return "done"


def test_print_logging_and_stderr_are_captured_in_order(config: RedisConfig,
                                                        workers: Any) -> None:
    """stdout, stderr and INFO+ log records of a task land in one text, in the order written."""
    workers()
    p = ifn.Pipeline("talk")
    p.task("chatty", chatty)
    run = p.submit(config=config).wait(timeout=30)
    assert run.status is RunStatus.SUCCEEDED
    assert run.logs("chatty") == "one\nINFO:etl:two\nthree\nWARNING:etl:four\n"
    assert run.logs("chatty", attempt=1) == run.logs("chatty")


def test_each_attempt_keeps_its_own_output(config: RedisConfig, workers: Any,
                                           tmp_path: Path) -> None:
    """A failing first attempt and the successful second one each keep what they printed."""
    workers()
    marker_file = tmp_path / "failed-once"

    def flaky() -> str:
        if not marker_file.exists():
            marker_file.touch()
            print("first try, about to fail")
            raise RuntimeError("first attempt fails")
        print("second try works")
        return "ok"

    p = ifn.Pipeline("retry")
    p.task("flaky", flaky, retries=1)
    run = p.submit(config=config).wait(timeout=30)
    assert run.result("flaky") == "ok"
    assert run.logs("flaky", attempt=1) == "first try, about to fail\n"
    assert run.logs("flaky", attempt=2) == "second try works\n"
    assert run.logs("flaky") == "second try works\n"
    assert run.logs("flaky", attempt=3) == ""


def test_tail_is_capped_with_a_marker(config: RedisConfig, workers: Any) -> None:
    """Output beyond the cap keeps its last CAP bytes, after a marker counting the rest."""
    workers()

    def flood() -> None:
        for i in range(100):
            print(f"{i:04d} " + "x" * 94)  # 100 bytes a line

    p = ifn.Pipeline("flood")
    p.task("flood", flood)
    run = p.submit(config=config).wait(timeout=30)
    text = run.logs("flood")
    head = marker(100 * 100 - CAP, CAP)
    assert text.startswith(head)
    tail = text[len(head):]
    assert len(tail.encode()) == CAP
    assert tail.endswith("0099 " + "x" * 94 + "\n")


def test_output_is_visible_while_the_task_runs(config: RedisConfig, workers: Any,
                                               tmp_path: Path) -> None:
    """What a running task printed is readable within seconds, before it ends."""
    workers()
    go = tmp_path / "go"

    def waits() -> str:
        print("started")
        deadline = time.monotonic() + 30
        while not go.exists() and time.monotonic() < deadline:
            time.sleep(0.02)
        print("finished")
        return "ok"

    p = ifn.Pipeline("live")
    p.task("waits", waits)
    run = p.submit(config=config)
    wait_for(lambda: run.logs("waits") == "started\n")
    jid = dict(run.job_ids())["waits"]
    assert Queue("default", config).info(jid).status is JobStatus.ACTIVE
    go.touch()
    run.wait(timeout=30)
    assert run.logs("waits") == "started\nfinished\n"


def test_logs_are_deleted_with_their_run(config: RedisConfig, workers: Any) -> None:
    """A run's deletion deletes its tasks' logs; until then they carry the result TTL."""
    workers()
    p = ifn.Pipeline("gone")
    p.task("chatty", chatty)
    run = p.submit(config=config).wait(timeout=30)
    key = config.keys.logs(dict(run.job_ids())["chatty"])
    client = config.client()
    assert 0 < client.pttl(key) <= config.result_ttl * 1000
    run.delete()
    assert client.exists(key) == 0


def test_a_silent_task_writes_no_logs(config: RedisConfig, workers: Any) -> None:
    """A task that prints nothing leaves no logs key, and reads as ""."""
    workers()
    p = ifn.Pipeline("quiet")
    p.task("quiet", lambda: 1)
    run = p.submit(config=config).wait(timeout=30)
    assert run.logs("quiet") == ""
    assert config.client().exists(config.keys.logs(dict(run.job_ids())["quiet"])) == 0


def test_plain_jobs_logs_per_attempt(config: RedisConfig, workers: Any) -> None:
    """`Queue.logs` reads a plain job's output, attempt by attempt (custom executor)."""
    workers("--executor", EXECUTOR)
    q = Queue("plain", config)
    jid = q.enqueue(command("say", lines=["hello"], errors=["oops"], fail_until=2),
                    max_attempts=2, backoff=0.05)
    wait_for(lambda: q.info(jid).status is JobStatus.COMPLETED)
    assert q.logs(jid, attempt=1) == "attempt 1\nhello\noops\n"
    assert q.logs(jid) == "attempt 2\nhello\noops\n"


def test_map_members_and_bad_names(config: RedisConfig, workers: Any) -> None:
    """A map member is named name[key]; a map's name (its members suggested), an unknown
    task or attempt 0 is refused clearly; an unknown job is JobNotFoundError."""
    workers()

    def shout(item: str) -> None:
        print(item.upper())

    p = ifn.Pipeline("mapped")
    p.map("shout", shout, over=["eu", "us"])
    run = p.submit(config=config).wait(timeout=30)
    assert run.logs("shout[us]") == "US\n"
    with pytest.raises(UnknownTaskError, match=r"shout\[eu\]"):
        run.logs("shout")
    with pytest.raises(UnknownTaskError, match="shout"):
        run.logs("shuot[us]")
    with pytest.raises(InvalidOptionError, match="attempt"):
        run.logs("shout[us]", attempt=0)
    with pytest.raises(JobNotFoundError):
        Queue("plain", config).logs("no-such-job")


# ---------------------------------------------------------------- retention (no workers)


def test_queue_retention_and_purge_delete_plain_jobs_logs(config: RedisConfig) -> None:
    """A plain job's logs go with it: trimmed by completed retention, purged from the DLQ."""
    from dataclasses import replace

    q = Queue("kept", replace(config, completed_retention=1))
    first, second = q.enqueue(b"1"), q.enqueue(b"2")
    for _ in range(2):
        lease = claim(q)
        q.save_logs(lease, f"output of {lease.job_id}")
        q.complete(lease)
    client = config.client()
    assert client.exists(config.keys.logs(first)) == 0  # trimmed with its job
    assert q.logs(second) == f"output of {second}"
    dead = q.enqueue(b"3", max_attempts=1)
    lease = claim(q)
    q.save_logs(lease, "dying words")
    q.fail(lease, "boom")
    assert q.logs(dead) == "dying words"
    assert q.purge_dead() == 1
    assert client.exists(config.keys.logs(dead)) == 0


def test_no_logs_are_written_for_a_job_that_is_gone(config: RedisConfig) -> None:
    """A late write for a deleted job is refused and creates nothing (no orphan key)."""
    q = Queue("late", config)
    jid = q.enqueue(b"x", max_attempts=1)
    lease = claim(q)
    q.fail(lease, "boom")
    q.purge_dead()
    with pytest.raises(JobNotFoundError):
        q.save_logs(lease, "too late")
    assert config.client().exists(config.keys.logs(jid)) == 0


def test_capture_writes_at_most_once_per_interval_and_at_close(config: RedisConfig) -> None:
    """Many prints within the interval make one write now-ish and the last at close."""
    q = Queue("cap", config)
    q.enqueue(b"x")
    lease = claim(q)
    sent: list[str] = []

    def send(text: str) -> None:
        sent.append(text)
        q.save_logs(lease, text)

    capture = Capture(send, cap=64, interval=60.0)
    for i in range(50):
        capture.write(f"{i}\n")
    wait_for(lambda: sent)  # the first write goes out at once (no write before it)
    capture.write("last\n")
    capture.close()
    assert len(sent) == 2  # the 60 s interval held every other write back until close
    assert q.logs(lease.job_id) == sent[-1]
    assert sent[-1].endswith("48\n49\nlast\n")
    assert sent[-1].startswith(marker(len("".join(f"{i}\n" for i in range(50))) + 5 - 64, 64))


class _SlowTimer(Capture):
    """A capture whose timer thread pauses before it writes: the window a busy machine opens
    between the timer firing and its write taking the lock. The first timer (`fired` tells it
    has fired) pauses until `go` is set, the window held open for as long as the test needs;
    any later one pauses 0.2 s."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fired = threading.Event()
        self.go = threading.Event()

    def _timer_flush(self) -> None:
        if self.fired.is_set():
            time.sleep(0.2)
        else:
            self.fired.set()
            self.go.wait(60)
        super()._timer_flush()


def test_writes_while_the_timer_fires_do_not_schedule_a_second_write_at_once() -> None:
    """A write that lands after the timer fired but before its write set the interval's start
    is held back a whole interval, not written by a second timer at once (seen in CI: three
    writes within a 60 s interval)."""
    sent: list[str] = []
    capture = _SlowTimer(sent.append, cap=1024, interval=60.0)
    capture.write("0\n")  # no write before it: the timer fires at once, then pauses
    assert capture.fired.wait(60)
    for i in range(1, 20):  # all within the pause
        capture.write(f"{i}\n")
    capture.go.set()
    wait_for(lambda: sent)
    capture.write("20\n")  # right after the timer's write: due in 60 s
    time.sleep(0.4)  # a second timer scheduled with no wait would have written it by now
    assert sent == ["".join(f"{i}\n" for i in range(20))]
    capture.close()
    assert len(sent) == 2 and sent[-1].endswith("19\n20\n")


def test_a_write_during_the_timers_write_goes_out_one_interval_later() -> None:
    """Output written while the timer's write is in flight is written by the timer one
    interval later, not only at close."""
    sent: list[str] = []
    sending = threading.Event()

    def slow_send(text: str) -> None:
        sending.set()
        time.sleep(0.2)
        sent.append(text)

    capture = Capture(slow_send, cap=1024, interval=0.3)
    capture.write("first\n")
    assert sending.wait(10)
    capture.write("second\n")  # waits for the write in flight, then pends
    wait_for(lambda: len(sent) == 2)
    assert sent[1].endswith("first\nsecond\n")
    capture.close()
    assert len(sent) == 2  # nothing new since: close writes nothing


def test_close_waits_for_a_write_in_flight() -> None:
    """`close` returns only once a timer's write in flight is done, so the attempt's outcome
    (reported right after) never overtakes its output."""
    sent: list[str] = []
    sending = threading.Event()

    def slow_send(text: str) -> None:
        sending.set()
        time.sleep(0.3)
        sent.append(text)

    capture = Capture(slow_send, cap=64)
    capture.write("x\n")
    assert sending.wait(10)  # the timer thread is inside send
    capture.close()
    assert sent == ["x\n"]


def test_logs_and_overview_work_on_a_redis_cluster(redis_cluster: Any, namespace: str) -> None:
    """On a Redis Cluster (one namespace = one slot): logs are written, read and purged with
    their job, and the namespace overview reads the queue, with no CROSSSLOT error."""
    from ironforge_nb.orchestrator.overview import overview

    cfg = RedisConfig(redis_cluster.url, namespace=namespace, cluster=True)
    try:
        q = Queue("clustered", cfg)
        jid = q.enqueue(b"x", max_attempts=1)
        lease = claim(q)
        q.save_logs(lease, "printed on a cluster\n")
        q.fail(lease, "boom")
        assert q.logs(jid) == "printed on a cluster\n"
        data = overview(cfg)
        assert data["queues"][0]["counts"]["failed"] == 1 and data["dead"][0]["job"] == jid
        assert q.purge_dead() == 1
        assert cfg.client().exists(cfg.keys.logs(jid)) == 0
    finally:
        cfg.close()
