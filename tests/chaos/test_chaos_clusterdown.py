"""Chaos: a Redis Cluster that reports itself down (``CLUSTERDOWN``) does not stop a worker.

A master is SIGKILLed and stays down past the node timeout: the masters still up mark it failed
and, as Redis Cluster does by default (``cluster-require-full-coverage yes``), refuse every
command with ``CLUSTERDOWN``, also on the slots they serve. A worker whose namespace lives on a
master still up gets ``ClusterDownError`` at its next call; it must wait and retry as it does
for a lost connection (it used to die on it, leaving its namespace with no worker at all), and
serve again once the master is back.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from ironforge_nb.local import RedisCluster
from ironforge_nb.local.cluster import _cluster_info
from ironforge_nb.queue import Queue, RedisConfig
from ironforge_nb.status import JobStatus
from tests.chaos import tasks
from tests.chaos.harness import Fleet, wait_until

pytestmark = [pytest.mark.slow, pytest.mark.cluster]


@pytest.fixture
def cluster() -> Iterator[RedisCluster]:
    """A cluster of this test's own (it kills a master) that notices a dead master in 1 s."""
    with RedisCluster(node_timeout_ms=1000) as made:
        yield made


def test_worker_outlives_a_cluster_down(cluster: RedisCluster, tmp_path: Path) -> None:
    """The worker sees CLUSTERDOWN while another master is dead, stays up, and completes the
    jobs enqueued before and after the master came back."""
    config = RedisConfig(url=cluster.url, namespace="down", cluster=True)
    home = int(config.client().get_node_from_key(config.keys.prefix).port)
    victim = next(i for i, port in enumerate(cluster.ports) if port != home)
    q = Queue("work", config)
    fleet = Fleet(config, 1, queues=["work"],
                  extra_args=["--lease", "5", "--executor", tasks.EXECUTOR]).start()
    ledger = str(tmp_path / "ledger")

    def job(key: str) -> str:
        return q.enqueue(json.dumps({"key": key, "ledger": ledger}).encode())

    try:
        first = job("before")
        wait_until(lambda: q.info(first).status is JobStatus.COMPLETED, 30, "the first job")
        cluster.kill(victim)
        survivor = redis.Redis(port=home)
        wait_until(lambda: _cluster_info(survivor)["cluster_state"] == "fail", 30,
                   "the masters still up declared the cluster down")
        survivor.close()
        met = "Redis unavailable (The cluster is down)"
        wait_until(lambda: met in fleet.log_tail(0, 50) or not fleet.pids, 30,
                   "the worker met CLUSTERDOWN")
        assert fleet.pids == [fleet.pid(0)], f"the worker died:\n{fleet.log_tail(0, 50)}"
        cluster.restart(victim)
        second = job("after")
        wait_until(lambda: q.info(second).status is JobStatus.COMPLETED, 30, "the second job")
        assert fleet.pids == [fleet.pid(0)]
    finally:
        fleet.stop(grace=0)
        config.close()
