"""What a notebook user does, on the 3-master Redis Cluster (the `redis_cluster` fixture):
``ifn.connect("redis+cluster://...")`` with its local workers, submit, wait, results,
``to_dataframe``, the run's display, ``runs()``, cancel, ``retry_failed`` and delete, with no
CROSSSLOT error on any master."""

from __future__ import annotations

import secrets
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import ironforge_nb as ifn
from ironforge_nb.errors import RunNotFoundError
from ironforge_nb.local import RedisCluster
from ironforge_nb.local.connect import Connection
from ironforge_nb.status import RunStatus
from tests import tasks


@pytest.fixture(scope="module")
def conn(redis_cluster: RedisCluster) -> Iterator[Connection]:
    """``ifn.connect`` on the cluster's URL with two local workers (one for the module)."""
    url = redis_cluster.url.replace("redis://", "redis+cluster://")
    connection = ifn.connect(url, namespace="cl-" + secrets.token_hex(4), workers=2)
    yield connection
    connection.close()


def crossslot_errors(cluster: RedisCluster) -> dict[int, str]:
    """The CROSSSLOT error counters of the masters that counted any (INFO errorstats)."""
    client = ifn.RedisConfig(cluster.url, cluster=True).client()
    try:
        found = {}
        for node in client.get_primaries():
            stats = node.redis_connection.info("errorstats")
            if "errorstat_CROSSSLOT" in stats:
                found[node.port] = str(stats["errorstat_CROSSSLOT"])
        return found
    finally:
        client.close()


def namespace_keys(conn: Connection, cluster: RedisCluster) -> dict[int, list[bytes]]:
    """The keys of the connection's namespace, by the port of the master holding them."""
    client = ifn.RedisConfig(cluster.url, cluster=True).client()
    try:
        return {node.port: keys for node in client.get_primaries()
                if (keys := list(node.redis_connection.scan_iter(
                    match=conn.config.keys.prefix + "*", count=1000)))}
    finally:
        client.close()


def test_connect_starts_workers_that_reach_the_cluster(conn: Connection) -> None:
    """The local workers get the cluster URL (not a single node's) and register."""
    assert conn.url.startswith("redis+cluster://")
    assert type(conn.config.client()).__name__ == "RedisCluster"
    assert conn.local_workers is not None and len(conn.workers()) == 2


@pytest.mark.parametrize("staged", [False, True], ids=["one call", "staged"])
def test_a_pipeline_with_a_map_of_100_runs_on_the_cluster(
        conn: Connection, redis_cluster: RedisCluster, staged: bool,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A pipeline with a map of 100 tasks runs to the end; results, the task table, the
    display and the runs table read it; every key of the run sits on one master. Staged:
    submitted in chunks of 30 tasks (as a big run is, orchestrator/submit.py)."""
    if staged:
        module = sys.modules["ironforge_nb.orchestrator.submit"]
        monkeypatch.setattr(module, "STAGED_MIN", 1)
        monkeypatch.setattr(module, "STAGE_CHUNK", 30)
    p = ifn.Pipeline("cl")
    (p.task("one", tasks.one)
      .map("sq", tasks.square, over=list(range(100)), after="one")
      .task("total", tasks.total, after="sq")
      .then("twice", tasks.double)
      .task("scaled", tasks.scaled_total))
    run = p.submit(params={"factor": 3}).wait(timeout=120)
    assert run.status is RunStatus.SUCCEEDED
    assert run.result("total") == sum(i * i for i in range(100))
    assert run.result("sq") == [i * i for i in range(100)]
    results = run.results()
    assert results["twice"] == 2 * sum(i * i for i in range(100))
    assert results["scaled"] == 3 * sum(i * i for i in range(100))
    frame = run.to_dataframe()
    assert len(frame) == 104 and set(frame["status"]) == {"completed"}
    assert set(frame["attempts"]) == {1} and frame["worker"].notna().all()
    bundle = run._repr_mimebundle_()
    assert "status=succeeded, 104/104 completed" in bundle["text/plain"]
    assert "<svg" in bundle["text/html"] or "<pre>" in bundle["text/html"]
    listed = ifn.runs()
    row = listed[listed["id"] == run.id].iloc[0]
    assert (row["status"], row["tasks"], row["completed"]) == ("succeeded", 104, 104)
    assert len(namespace_keys(conn, redis_cluster)) == 1
    assert crossslot_errors(redis_cluster) == {}


def test_retry_failed_on_the_cluster(conn: Connection, tmp_path: Path,
                                     redis_cluster: RedisCluster) -> None:
    """A failed root skips its descendants; once fixed, retry_failed reruns them all."""
    marker = tmp_path / "broken"
    marker.touch()
    p = ifn.Pipeline("cl-retry")
    (p.task("root", tasks.fail_if_file, params={"marker": str(marker)})
      .map("kid", tasks.square, over=list(range(5)), after="root")
      .task("total", tasks.total, after="kid"))
    run = p.submit().wait(timeout=60)
    assert run.status is RunStatus.FAILED
    assert run.counts() | {"in_flight": 0} == {"waiting": 0, "in_flight": 0, "completed": 0,
                                               "failed": 1, "skipped": 6, "cancelled": 0}
    marker.unlink()
    assert run.retry_failed() == 7
    assert run.wait(timeout=60).status is RunStatus.SUCCEEDED
    assert run.result("total") == sum(i * i for i in range(5))
    assert crossslot_errors(redis_cluster) == {}


def test_cancel_and_delete_on_the_cluster(conn: Connection,
                                          redis_cluster: RedisCluster) -> None:
    """A run on a queue no worker serves is cancelled whole, rerun by retry_failed, then
    deleted by delete(force=True): no key of it is left on any master."""
    p = ifn.Pipeline("cl-cancel")
    p.task("a", tasks.one, queue="nobody").map("b", tasks.square, over=[1, 2, 3], after="a",
                                               queue="nobody")
    run = p.submit()
    assert run.cancel() == 4
    assert run.status is RunStatus.CANCELLED
    assert set(run.to_dataframe()["status"]) == {"cancelled"}
    assert run.retry_failed() == 4 and run.status is RunStatus.RUNNING
    assert run.delete(force=True) == 4
    with pytest.raises(RunNotFoundError):
        run.info()
    leftover: list[Any] = [key for keys in namespace_keys(conn, redis_cluster).values()
                           for key in keys if run.id.encode() in key]
    assert leftover == []
    assert run.id not in set(ifn.runs()["id"])
    assert crossslot_errors(redis_cluster) == {}


def test_webhooks_on_the_cluster(conn: Connection, redis_cluster: RedisCluster) -> None:
    """An endpoint registered on the cluster gets a pipeline run's job.completed (one per
    task) and run.succeeded from the local workers' dispatchers, signed; deliveries() lists
    them delivered; the webhook keys sit on the namespace's master; no CROSSSLOT."""
    import json

    from tests.receivers import receiver

    p = ifn.Pipeline("cl-hooks")
    (p.task("one", tasks.one)
      .map("sq", tasks.square, over=list(range(5)), after="one")
      .task("total", tasks.total, after="sq"))
    with receiver() as rec:
        ep = ifn.webhooks.register(rec.url, ["job.completed", "run.succeeded"],
                                   pipeline="cl-hooks", allow_private=True)
        run = p.submit().wait(timeout=60)
        assert run.status is RunStatus.SUCCEEDED
        give_up = time.monotonic() + 60
        while len(rec.got) < 8 and time.monotonic() < give_up:
            time.sleep(0.1)
    payloads = [ifn.webhooks.verify(g.headers, g.body, ep.secret) for g in rec.got]
    assert sorted(json.dumps([x["type"], x["data"].get("task")]) for x in payloads) == sorted(
        json.dumps(pair) for pair in [["job.completed", "one"], ["job.completed", "total"],
                                      *[["job.completed", f"sq[{i}]"] for i in range(5)],
                                      ["run.succeeded", None]])
    assert {x["data"]["run_id"] for x in payloads} == {run.id}
    shown = ifn.webhooks.deliveries(ep.id)
    assert len(shown) == 8 and set(shown["status"]) == {"delivered"}
    hook_keys = {port: [k for k in keys if b":webhooks" in k]
                 for port, keys in namespace_keys(conn, redis_cluster).items()}
    assert len([port for port, keys in hook_keys.items() if keys]) == 1
    assert crossslot_errors(redis_cluster) == {}
    ifn.webhooks.remove(ep.id)
