"""Chaos: a worker SIGSTOPped past its lease, its job run and completed elsewhere, then SIGCONTed.

The stopped worker's lease expires; the job stalls and another worker runs it to the end. When
the zombie wakes up, every write it makes with its stale lease is refused (`LeaseLost`): the
heartbeat and the progress update its task sends, and its worker's completion. The winner's
result, worker and progress stand, and the job is completed once.
"""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Callable
from pathlib import Path

import psutil
import pytest

from ironforge_nb.local import RedisServer
from ironforge_nb.queue import Queue, RedisConfig
from ironforge_nb.status import EventType, JobStatus
from tests.chaos import tasks
from tests.chaos.harness import Fleet, Ledger, job_records, wait_until

pytestmark = pytest.mark.slow

ARGS = ["--lease", "1", "--executor", tasks.EXECUTOR, "--prefetch", "0"]


def test_stopped_worker_is_refused_and_the_winner_stands(
        fresh_server: Callable[..., RedisServer], tmp_path: Path) -> None:
    """Worker A holds job ``held`` (``max_attempts=1``) and is SIGSTOPped; B runs ``held``
    (a stall, not an attempt) and 30 other jobs; A, resumed, is refused at every call and B's
    result stands."""
    config = RedisConfig(fresh_server().url, namespace="zombie")
    q = Queue("work", config)
    ledger, hold = Ledger(tmp_path / "ledger"), tmp_path / "hold"
    a = Fleet(config, 1, queues=["work"], extra_args=ARGS).start()
    b = Fleet(config, 1, queues=["work"], extra_args=ARGS)
    began = time.monotonic()
    try:
        held = q.enqueue(json.dumps({"key": "held", "ledger": ledger.file, "hold": str(hold)})
                         .encode(), max_attempts=1)
        wait_until(lambda: "held" in ledger.executions(), 30, "A started the held job")
        executor = psutil.Process(a.pid(0)).children()[0].pid
        a.signal_group(0, signal.SIGSTOP)
        keys = [f"j{i}" for i in range(30)]
        ids = q.enqueue_batch([json.dumps({"key": k, "ledger": ledger.file, "work": 0.01})
                               .encode() for k in keys], max_attempts=1)
        b.start()
        ended = (JobStatus.COMPLETED, JobStatus.FAILED)
        wait_until(lambda: q.info(held).status in ended, 30, "the held job ended")
        hold.touch()  # A's task may go on: its executor first, so that it tries its calls
        os.kill(executor, signal.SIGCONT)
        calls = json.loads(wait_until(lambda: _read(Path(f"{hold}.calls")), 30,
                                      "A's task tried its stale calls"))
        os.kill(a.pid(0), signal.SIGCONT)
        refusal = f"lease on job {held!r} was lost"
        wait_until(lambda: refusal in a.log_tail(0, 200), 30, "A's worker was refused")
        wait_until(lambda: q.counts()[JobStatus.COMPLETED] >= len(ids) + 1, 60,
                   "every job completed")
    finally:
        for fleet in (a, b):
            fleet.stop(grace=0)
    winner = b.names[0]
    for key in keys:  # B's, or A's once resumed
        ledger.expect(key, lambda r, key=key: r is not None and
                      r.startswith(tasks.result_of(key) + b"@"))
    ledger.expect("held", tasks.result_of("held") + f"@{winner}".encode())
    job_ids = {"held": held, **dict(zip(keys, ids, strict=True))}
    finals = job_records(config, job_ids, {k: q.result(j) for k, j in job_ids.items()})
    row = ledger.settle("worker SIGSTOP past its lease", finals, 1, time.monotonic() - began)
    row.check()
    assert calls == {"heartbeat": "LeaseLost", "progress": "LeaseLost"}
    info = q.info(held)
    assert (info.status, info.worker) == (JobStatus.COMPLETED, winner)
    assert (info.attempts, info.stalls) == (1, 1)  # A's try was a stall, not an attempt
    assert info.message != "late"
    done = [ev.worker for ev in q.events(count=10_000)
            if ev.job == held and ev.type is EventType.COMPLETED]
    assert done == [winner]
    config.close()


def _read(path: Path) -> str | None:
    try:
        return path.read_text() or None
    except FileNotFoundError:
        return None
