"""Chaos: the notebook's `Run.wait` on a quiet run while every connection is cut every ~0.1 s.

A run whose only task takes 4 s appends no event meanwhile, so the wait sits in a blocking read
that each cut breaks. The client retries a broken command 6 times with backoff, which a cut
every 0.1 s exhausts in about a second: the wait used to raise ``ConnectionError`` to the user
although Redis was up all along. It now reads again as long as Redis answers, and returns when
the run ends.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest
import redis

import ironforge_nb as ifn
from ironforge_nb.local import RedisServer
from ironforge_nb.status import RunStatus
from tests.chaos import tasks
from tests.chaos.harness import SECRET, Chaos, Fleet, Ledger, run_records, wait_until

pytestmark = pytest.mark.slow


def test_wait_on_a_quiet_run_outlives_cut_connections(
        fresh_server: Callable[..., RedisServer], tmp_path: Path) -> None:
    """A 4 s task, every client killed every ~0.1 s while the notebook waits: the wait
    returns the succeeded run."""
    server = fresh_server()
    conn = ifn.connect(server.url, namespace="quiet", workers=0, secret=SECRET)
    ledger = Ledger(tmp_path / "ledger")
    p = ifn.Pipeline("quiet")
    p.task("slow", tasks.sleeper_task(ledger.file, "slow", 4.0))
    ledger.expect("slow", "slow")
    admin = redis.Redis.from_url(server.url)
    fleet = Fleet(conn.config, 1, secret=SECRET).start()
    began = time.monotonic()
    try:
        run = p.submit()
        wait_until(lambda: ledger.executions()["slow"], 30, "the task started")
        cut = Chaos(lambda: admin.execute_command("CLIENT", "KILL", "TYPE", "normal",
                                                  "SKIPME", "yes"), 0.1, 2)
        with cut:
            run.wait(timeout=60, progress=False)
    finally:
        fleet.stop(grace=0)
    row = ledger.settle("quiet wait, CLIENT KILL loop", run_records(run), cut.count,
                        time.monotonic() - began)
    admin.close()
    conn.close()
    assert run.status is RunStatus.SUCCEEDED
    assert cut.count >= 10, f"only {cut.count} cuts during the wait"
    row.check()
