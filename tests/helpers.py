"""Small helpers shared by several test modules (fixtures live in conftest.py)."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import psutil
import pytest

from ironforge_nb.dag import Pipeline
from ironforge_nb.local.workers import LocalWorkers
from ironforge_nb.orchestrator import codec
from ironforge_nb.queue import Lease, Queue, RedisConfig
from ironforge_nb.worker import list_workers
from tests import tasks

REPO = Path(__file__).resolve().parents[1]


@contextlib.contextmanager
def signing_workers(config: RedisConfig, secret: bytes) -> Iterator[Callable[..., LocalWorkers]]:
    """Factory of `LocalWorkers` on ``config``'s namespace, all stopped on exit; meanwhile this
    process signs with ``secret`` (the previous default secret is restored).
    ``start(count=1, *worker_args, secret=secret, queues=("default",))`` starts some."""
    started: list[LocalWorkers] = []
    previous = codec.default_secret()
    codec.set_default_secret(secret)

    def start(count: int = 1, *args: str, secret: bytes | None = secret,
              queues: Sequence[str] = ("default",)) -> LocalWorkers:
        workers = LocalWorkers(config, count, queues, secret=secret, extra_args=args).start()
        started.append(workers)
        return workers

    try:
        yield start
    finally:
        for workers in started:
            workers.stop(grace=0)
        codec.set_default_secret(previous)


def claim(q: Queue, worker: str = "w1", lease: float = 30.0) -> Lease:
    """Claim one job without waiting; fail the test if there is none."""
    got = q.dequeue(worker, lease=lease, timeout=0)
    assert got is not None
    return got


def diamond() -> Pipeline:
    """a -> (b, c) -> d with the arithmetic tasks of `tests.tasks`: d == 2*1 + (1+1) == 4."""
    p = Pipeline("diamond")
    p.task("a", tasks.one).task("b", tasks.double, after="a").task("c", tasks.inc, after="a")
    p.task("d", tasks.plus, after=["b", "c"])
    return p


def failing() -> Pipeline:
    """a -> bad (always raises RuntimeError) -> after_bad: one completed, failed, skipped."""
    p = Pipeline("failing")
    p.task("a", tasks.one).task("bad", tasks.boom, after="a").then("after_bad", tasks.double)
    return p


def assert_woken_by_enqueue(q: Queue) -> None:
    """A worker blocked in ``q.dequeue`` is woken by an enqueue 0.2 s later, long before its
    5 s timeout, and gets that job."""
    timer = threading.Timer(0.2, q.enqueue, args=(b"wake",))
    timer.start()
    started = time.monotonic()
    lease = q.dequeue("w", timeout=5)
    timer.join()
    assert lease is not None and lease.payload == b"wake"
    assert time.monotonic() - started < 2.0


def wait_aof_written(client: Any, timeout: float = 15.0) -> None:
    """Wait until ``client``'s server has written every write it acknowledged to its AOF file.

    With ``appendfsync everysec`` Redis replies before its AOF write, and while a background
    fsync runs (a busy disk) it postpones that write for up to 2 s: a SIGKILL meanwhile loses
    writes already acknowledged. Once ``aof_buffer_length`` is 0 they are in the file (the OS
    page cache), which a SIGKILL of redis-server does not lose. INFO is not written to the AOF.
    """
    wait_for(lambda: client.info("persistence")["aof_buffer_length"] == 0, timeout)


def gone(pid: int) -> bool:
    """True once process ``pid`` has exited (a zombie counts: it runs nothing). Safe against
    the process vanishing between the lookup and the status read."""
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def wait_for(predicate: Callable[[], Any], timeout: float = 15.0, every: float = 0.02) -> Any:
    """Poll ``predicate`` until it returns something truthy; fail the test after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"condition not met within {timeout} s")
        time.sleep(every)


@contextlib.contextmanager
def worker_processes(config: RedisConfig, logs: Path
                     ) -> Iterator[Callable[..., subprocess.Popen[bytes]]]:
    """``start(name, args, setup="")``: `spawn_worker` with its log at ``logs/<name>.log``;
    every worker started is killed (and reaped) when the block ends."""
    procs: list[subprocess.Popen[bytes]] = []

    def start(name: str, args: list[str], setup: str = "") -> subprocess.Popen[bytes]:
        procs.append(spawn_worker(config, logs / f"{name}.log", name, args, setup))
        return procs[-1]

    try:
        yield start
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
            proc.wait()


def spawn_worker(config: RedisConfig, log: Path, name: str, args: list[str],
                 setup: str = "") -> subprocess.Popen[bytes]:
    """Start ``ironforge worker --name <name> <args>`` on ``config`` (output to ``log``) and
    wait until it is registered. ``setup`` is Python run in the process first (a test's patch
    of a module constant)."""
    code = "; ".join(filter(None, ["import sys", setup, "from ironforge_nb.cli import main",
                                   "sys.exit(main(['worker', *sys.argv[1:]]))"]))
    cmd = [sys.executable, "-c", code, "--url", config.url, "--namespace", config.namespace,
           "--name", name, *args]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    with open(log, "ab") as out:
        proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT)
    wait_for(lambda: proc.poll() is not None or name in {w.name for w in list_workers(config)})
    assert proc.poll() is None, log.read_text()
    return proc
