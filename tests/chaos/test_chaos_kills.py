"""Chaos: worker processes SIGKILLed at random every ~0.5 s, each replaced at once.

A dead worker must not fail a task: its running job stalls (lease expires, the job is queued
again without charging an attempt) and the jobs it had claimed ahead go back free. So a
2,000-task pipeline with default options (``retries=0``) succeeds, and so does plain queue work
with ``max_attempts=1``, with every job's effect in the ledger. A kill repeats what the killed
worker's executor ran and Redis did not record as done: the task it was running, and at times
the one before it, whose success was on its way to Redis through the worker when the next
task began (the executor does not wait for that completion). So the repeated executions come
from at most one executor per kill, and at most two from any one (one in about 36 runs of the
queue scenario showed a second; most kills repeat one or none).

What makes the accounting exact: an executor runs no lease's code before Redis has recorded
it as started (the claim marked it, or the executor marks it itself and waits for the answer;
see ``ironforge_nb/worker/slots.py``), so a kill releases for free exactly the jobs whose code
never began, and every execution is charged as an attempt or a stall ('unaccounted' is 0).
Each scenario takes 10-30 s on the 2-core machine.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

import ironforge_nb as ifn
from ironforge_nb.local import RedisServer
from ironforge_nb.local.connect import Connection
from ironforge_nb.queue import Queue, RedisConfig
from ironforge_nb.status import JobStatus, RunStatus
from tests.chaos import tasks
from tests.chaos.harness import (
    SECRET,
    Chaos,
    Fleet,
    Ledger,
    finishes,
    job_records,
    pipeline,
    settle_run,
    stall_history,
    wait_until,
)

pytestmark = pytest.mark.slow

LEASE = "2"  # seconds: a killed worker's job is back within a lease and a reap
WORKERS = 4
KILL_EVERY = 0.5


@pytest.fixture
def server(fresh_server: Callable[..., RedisServer]) -> RedisServer:
    """A redis-server of this test's own."""
    return fresh_server()


@pytest.fixture
def conn(server: RedisServer) -> Iterator[Connection]:
    """The notebook's connection (no local workers: the test's `Fleet` is the workers)."""
    connection = ifn.connect(server.url, namespace="chaos", workers=0, secret=SECRET)
    yield connection
    connection.close()


def test_pipeline_survives_random_worker_kills(conn: Connection, tmp_path: Path) -> None:
    """2,000 tasks (default options: no retries), 4 workers, one SIGKILLed every ~0.5 s and
    replaced: the run succeeds with every task's effect and result, no task failed."""
    seed = random.randrange(1 << 30)
    ledger = Ledger(tmp_path / "ledger")
    p = pipeline(ledger, 2000, 0.01)
    fleet = Fleet(conn.config, WORKERS, secret=SECRET, extra_args=["--lease", LEASE]).start()
    rng = random.Random(seed)
    chaos = Chaos(lambda: fleet.kill_one(rng), KILL_EVERY, seed)
    began = time.monotonic()
    try:
        run = p.submit()
        wait_until(lambda: len(ledger.lines()) > 50, 60, "the run started")
        with chaos:
            finished = finishes(run, 120)
    finally:
        fleet.stop(grace=0)
    row = settle_run(ledger, "worker SIGKILL, pipeline", run, chaos.count, began, finished,
                     f"seed {seed}")
    assert chaos.count >= 5, f"only {chaos.count} kills: the run was over too soon"
    row.check(per_kill=2)
    assert run.status is RunStatus.SUCCEEDED


def test_queue_work_survives_random_worker_kills(server: RedisServer, tmp_path: Path) -> None:
    """1,500 plain queue jobs with ``max_attempts=1``, the same kills: every job completes."""
    seed = random.randrange(1 << 30)
    config = RedisConfig(server.url, namespace="chaosq")
    ledger = Ledger(tmp_path / "ledger")
    q = Queue("work", config)
    keys = [f"j{i}" for i in range(1500)]
    for key in keys:
        ledger.expect(key, lambda r, key=key: r is not None and
                      r.startswith(tasks.result_of(key) + b"@"))
    fleet = Fleet(config, WORKERS, queues=["work"],
                  extra_args=["--lease", LEASE, "--executor", tasks.EXECUTOR]).start()
    rng = random.Random(seed)
    chaos = Chaos(lambda: fleet.kill_one(rng), KILL_EVERY, seed)
    began = time.monotonic()
    ids = q.enqueue_batch([json.dumps({"key": k, "ledger": ledger.file, "work": 0.01})
                           .encode() for k in keys], max_attempts=1)
    note = f"seed {seed}"
    try:
        with chaos:
            ended = (JobStatus.COMPLETED, JobStatus.FAILED)
            wait_until(lambda: sum(q.counts()[s] for s in ended) >= len(keys), 120,
                       "every job ended")
    except AssertionError as exc:
        note += f"; {exc}"
    finally:
        fleet.stop(grace=0)
    job_ids = dict(zip(keys, ids, strict=True))
    finals = job_records(config, job_ids, {k: q.result(j) for k, j in job_ids.items()})
    row = ledger.settle("worker SIGKILL, queue", finals, chaos.count,
                        time.monotonic() - began, note,
                        stall_history(q, job_ids, fleet.kills))
    config.close()
    assert chaos.count >= 5, f"only {chaos.count} kills: the work was over too soon"
    row.check(per_kill=2)
