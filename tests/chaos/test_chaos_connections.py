"""Chaos: ``SCRIPT FLUSH`` and ``CLIENT KILL`` of every client, in a loop, while runs are
submitted, claimed and completed.

Every connection the notebook and the workers hold is cut about every 0.1 s, and the script
cache emptied with it, so replies get lost in every kind of call: submit, claim (alone or with
a completion), complete, fail, heartbeat, wait. No error may reach the user, no job may be
created twice, and none may sit claimed by nobody: the leases are the default 30 s and each run
must end within 25 s, so a claim whose reply was lost and not handed back would show.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest
import redis

import ironforge_nb as ifn
from ironforge_nb.errors import RunTimeoutError
from ironforge_nb.local import RedisServer
from tests.chaos.harness import (
    SECRET,
    Chaos,
    Final,
    Fleet,
    Ledger,
    job_hashes,
    pipeline,
    run_records,
)

pytestmark = pytest.mark.slow

RUNS, TASKS = 4, 150
CUT_EVERY = 0.1  # seconds between two rounds of SCRIPT FLUSH + CLIENT KILL


def test_cut_connections_and_flushed_scripts_reach_no_user(
        fresh_server: Callable[..., RedisServer], tmp_path: Path) -> None:
    """4 runs of 152 tasks on 2 workers, every client killed and scripts flushed every ~0.1 s:
    each submit, wait and result call succeeds; 4 runs, 608 jobs, each run once."""
    server = fresh_server()
    conn = ifn.connect(server.url, namespace="cuts", workers=0, secret=SECRET)
    ledger = Ledger(tmp_path / "ledger")
    admin = redis.Redis.from_url(server.url)  # SKIPME: the injector's own link survives

    def cut() -> None:
        admin.script_flush()
        admin.execute_command("CLIENT", "KILL", "TYPE", "normal", "SKIPME", "yes")

    fleet = Fleet(conn.config, 2, secret=SECRET).start()
    chaos = Chaos(cut, CUT_EVERY, 1)
    errors: list[str] = []
    made: list[tuple[str, ifn.Run]] = []
    began = time.monotonic()
    try:
        with chaos:
            for r in range(RUNS):
                prefix = f"r{r}."
                try:
                    made.append((prefix, pipeline(ledger, TASKS, 0.005, prefix).submit()))
                    made[-1][1].wait(timeout=25, progress=False)
                except Exception as exc:  # the point: nothing may get here
                    errors.append(f"run {r}: {type(exc).__name__}: {exc}")
        for _, run in made:  # the cuts are over: let a run whose wait was cut short end
            try:
                run.wait(timeout=40, progress=False)
            except RunTimeoutError as exc:
                errors.append(f"after the cuts: {exc}")
    finally:
        fleet.stop(grace=0)
    finals: dict[str, Final] = {}
    for prefix, run in made:
        finals.update(run_records(run, prefix))
    runs = ifn.runs(conn.config)
    jobs = job_hashes(conn.config)
    row = ledger.settle("SCRIPT FLUSH + CLIENT KILL loop", finals, chaos.count,
                        time.monotonic() - began,
                        f"{len(runs)} runs, {jobs} jobs, {len(errors)} errors")
    row.problems[:0] = errors
    admin.close()
    conn.close()
    assert not errors, "\n".join(row.problems[:20])
    row.check()
    assert (len(runs), jobs) == (RUNS, RUNS * (TASKS + 2))
    assert set(runs["status"]) == {"succeeded"}
    assert chaos.count >= 20, f"only {chaos.count} cuts: the runs were over too soon"
