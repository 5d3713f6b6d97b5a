"""Chaos: one master of a 3-master Redis Cluster SIGKILLed mid-run and restarted 2 s later.

Three namespaces, one on each master (a namespace lives in one slot), each with a run of its
own on a local worker of its own (``redis+cluster://`` URL). The master serving the first
namespace is killed: the runs on the other two masters go on meanwhile (the cluster is made
with ``cluster-require-full-coverage no``, so the masters still up keep serving their slots),
and once the master is back with its AOF, its run finishes too. No replicas: the killed master's
slots are simply unavailable while it is down.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import ironforge_nb as ifn
from ironforge_nb.local import RedisCluster
from ironforge_nb.queue import RedisConfig
from ironforge_nb.status import RunStatus
from tests.chaos.harness import (
    SECRET,
    Final,
    Fleet,
    Ledger,
    finishes,
    pipeline,
    run_records,
    run_stall_history,
    wait_until,
)

pytestmark = [pytest.mark.slow, pytest.mark.cluster]

TASKS = 400


@pytest.fixture
def cluster() -> Iterator[RedisCluster]:
    """A cluster of this test's own (it kills a master), with AOF on every master, fsynced at
    every write: with everysec, Redis acknowledges a write before writing it to the AOF while
    an fsync runs (up to 2 s when the disk is slow), and the SIGKILL loses it: a completion
    undone is one more duplicate than the one fault allows."""
    with RedisCluster(appendonly=True,
                      extra_args=("--cluster-require-full-coverage", "no",
                                  "--appendfsync", "always")) as made:
        yield made


def one_namespace_per_master(cluster: RedisCluster) -> list[tuple[RedisConfig, int]]:
    """``(config, index of its master)`` for three namespaces on three different masters."""
    found: dict[int, RedisConfig] = {}
    for i in range(1000):
        config = RedisConfig(url=cluster.url, namespace=f"cl{i}", cluster=True)
        port = config.client().get_node_from_key(config.keys.prefix).port
        found.setdefault(cluster.ports.index(int(port)), config)
        if len(found) == len(cluster.ports):
            break
    return [(config, index) for index, config in sorted(found.items())]


def test_runs_survive_a_cluster_master_restart(cluster: RedisCluster, tmp_path: Path) -> None:
    """Three runs of 402 tasks; the first one's master is SIGKILLed and restarted 2 s later:
    the two others keep running meanwhile, and all three succeed with every effect."""
    conn = ifn.connect(f"redis+cluster://127.0.0.1:{cluster.ports[0]}", namespace="cl",
                       workers=0, secret=SECRET)
    placed = one_namespace_per_master(cluster)
    ledger = Ledger(tmp_path / "ledger")
    fleets = [Fleet(config, 1, secret=SECRET, extra_args=["--lease", "2"]).start()
              for config, _ in placed]
    victim = placed[0][1]
    began = time.monotonic()
    finals: dict[str, Final] = {}
    try:
        runs = [pipeline(ledger, TASKS, 0.01, f"{config.namespace}.").submit(config=config)
                for config, _ in placed]
        wait_until(lambda: len(ledger.lines()) >= 150, 60, "the runs started")
        cluster.kill(victim)
        before = ledger.executions()
        time.sleep(2.0)
        during = ledger.executions()
        cluster.restart(victim)
        unfinished = [run.id for run in runs if not finishes(run, 90)]
    finally:
        for fleet in fleets:
            fleet.stop(grace=0)
    history: dict[str, list[str]] = {}
    for run, (config, _) in zip(runs, placed, strict=True):
        finals.update(run_records(run, f"{config.namespace}."))
        history.update(run_stall_history(run, f"{config.namespace}."))
    moved = {config.namespace: sum(during[k] - before[k] for k in during
                                   if k.startswith(f"{config.namespace}."))
             for config, _ in placed}
    row = ledger.settle("cluster master SIGKILL + restart", finals, 1,
                        time.monotonic() - began,
                        f"ran while down: {moved}" + (f"; unfinished {unfinished}"
                                                      if unfinished else ""), history)
    conn.close()
    row.check()
    assert not unfinished
    assert all(run.status is RunStatus.SUCCEEDED for run in runs)
    assert all(moved[config.namespace] > 0 for config, _ in placed[1:]), (
        f"the masters still up did no work while one was down: {moved}")
