"""The queue engine on a 3-master Redis Cluster (the `redis_cluster` fixture): every transition
works, no script touches two slots (CROSSSLOT), and namespaces spread over the masters."""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator
from typing import Any

import pytest

from ironforge_nb.errors import JobNotFoundError, JobStateError, LeaseLost
from ironforge_nb.local import RedisCluster
from ironforge_nb.queue import Queue, RedisConfig
from ironforge_nb.status import EventType, JobStatus
from tests.helpers import assert_woken_by_enqueue, claim


def cluster_config(cluster: RedisCluster, namespace: str) -> RedisConfig:
    """A cluster config for ``namespace``."""
    return RedisConfig(url=cluster.url, namespace=namespace, cluster=True)


@pytest.fixture
def cq(redis_cluster: RedisCluster, namespace: str) -> Iterator[Queue]:
    """Queue 'work' on the cluster, in this test's namespace."""
    config = cluster_config(redis_cluster, namespace)
    yield Queue("work", config)
    config.close()



def node_of(config: RedisConfig) -> str:
    """Name (host:port) of the master serving ``config``'s namespace."""
    client = config.client()
    return str(client.get_node_from_key(config.keys.prefix).name)


def test_enqueue_claim_complete(cq: Queue) -> None:
    """Single and chunked batch enqueues are claimed in order and completed with results."""
    first = cq.enqueue(b"one", priority=5)
    rest = cq.enqueue_batch([b"%d" % i for i in range(25)], chunk_size=10)
    lease = claim(cq)
    assert (lease.job_id, lease.payload) == (first, b"one")
    nxt = cq.complete(lease, b"r1", fetch_next=2)
    assert [le.job_id for le in nxt] == rest[:2]
    more = cq.dequeue_many("w", 30, timeout=0)
    following, refused = cq.complete_many(nxt + more, [b"ok"] * (len(nxt) + len(more)))
    assert not refused and not following
    assert cq.result(first) == b"r1" and cq.result(rest[-1]) == b"ok"
    assert cq.counts()[JobStatus.COMPLETED] == 26


def test_retry_dead_letter_requeue_purge(cq: Queue) -> None:
    """A failing job is retried, dead-lettered with its history, requeued, then purged."""
    jid = cq.enqueue(b"bad", max_attempts=2, backoff=0)
    assert cq.fail(claim(cq), "first") is JobStatus.SCHEDULED
    again = claim(cq)
    assert again.attempt == 2 and cq.fail(again, "second") is JobStatus.FAILED
    dead = cq.dead_letters()
    assert [d.id for d in dead] == [jid] and [e.error for e in dead[0].errors] == [
        "first", "second"]
    cq.requeue(jid)
    assert cq.fail(claim(cq), "third", retry=False) is JobStatus.FAILED
    assert cq.purge_dead() == 1
    with pytest.raises(JobNotFoundError):
        cq.info(jid)


def test_reap_release_and_cancel(cq: Queue) -> None:
    """An expired lease is reaped into a stall (queued again at once, the same attempt), a
    released job is claimable at once, and a cancelled job's worker is told to stop."""
    jid = cq.enqueue(b"x", backoff=100)
    claim(cq, "dies", lease=0.1)
    time.sleep(0.15)
    assert cq.reap() == 1
    retry = claim(cq, "next")
    assert retry.attempt == 1 and cq.info(jid).stalls == 1
    cq.release(retry)
    held = claim(cq, "third")
    assert held.job_id == jid and cq.cancel(jid)
    with pytest.raises(JobStateError, match="cancelled"):
        cq.heartbeat(held)
    assert cq.info(jid).status is JobStatus.CANCELLED


def test_events_and_progress(cq: Queue) -> None:
    """Progress and every transition land in the queue's event stream, readable from an id."""
    jid = cq.enqueue(b"x")
    lease = claim(cq)
    cq.progress(lease, 0.25, "a quarter")
    cq.complete(lease)
    events = cq.events()
    assert [e.type for e in events] == [EventType.ENQUEUED, EventType.CLAIMED,
                                        EventType.PROGRESS, EventType.COMPLETED]
    assert {e.job for e in events} == {jid}
    assert cq.events(since=events[1].id) == events[2:]
    assert cq.info(jid).message == "a quarter"


def test_blocked_worker_is_woken(cq: Queue) -> None:
    """A worker blocked in dequeue on the cluster is woken by an enqueue."""
    assert_woken_by_enqueue(cq)


def test_script_flush_on_every_master(cq: Queue) -> None:
    """After SCRIPT FLUSH on every master, batches, claims and completions still work."""
    client = cq.config.client()
    for node in client.get_primaries():
        node.redis_connection.script_flush()
    ids = cq.enqueue_batch([b"x"] * 5, chunk_size=2)
    for node in client.get_primaries():
        node.redis_connection.script_flush()
    leases = cq.dequeue_many("w", 5, timeout=0)
    for node in client.get_primaries():
        node.redis_connection.script_flush()
    _, refused = cq.complete_many(leases)
    assert not refused and sorted(le.job_id for le in leases) == sorted(ids)


def test_refusals_come_back_as_exceptions(cq: Queue, redis_cluster: RedisCluster) -> None:
    """Script error codes (not found, lease lost, bad state, wrong queue) raise on a cluster."""
    jid = cq.enqueue(b"x", backoff=0)
    stale = claim(cq, lease=0.05)
    time.sleep(0.1)
    cq.reap()
    with pytest.raises(LeaseLost):
        cq.complete(stale)
    with pytest.raises(JobNotFoundError):
        cq.cancel("missing")
    with pytest.raises(JobStateError, match="it is queued"):  # stalled: queued again
        cq.requeue(jid)
    with pytest.raises(JobStateError, match="in queue 'work'"):
        Queue("other", cq.config).cancel(jid)


def far_namespaces(cluster: RedisCluster, count: int) -> list[RedisConfig]:
    """Configs of ``count`` fresh namespaces served by ``count`` different masters."""
    found: dict[str, RedisConfig] = {}
    for _ in range(200):
        config = cluster_config(cluster, "far-" + secrets.token_hex(4))
        if found.setdefault(node_of(config), config) is not config:
            config.close()
        if len(found) == count:
            return list(found.values())
    raise AssertionError("could not place namespaces on distinct masters")


def test_namespaces_on_different_masters(redis_cluster: RedisCluster) -> None:
    """Namespaces on three masters each run a full job life cycle, and each keeps every one of
    its keys on its own master."""
    configs = far_namespaces(redis_cluster, 3)
    for config in configs:
        q = Queue("work", config)
        ids = q.enqueue_batch([b"a", b"b"], max_attempts=1)
        q.complete(claim(q), config.namespace.encode())
        q.fail(claim(q), "boom")
        assert q.counts()[JobStatus.COMPLETED] == q.counts()[JobStatus.FAILED] == 1
        assert q.result(ids[0]) == config.namespace.encode()
    client = configs[0].client()
    for config in configs:
        homes = {node.name for node in client.get_primaries()
                 if any(True for _ in node.redis_connection.scan_iter(
                     match="{" + config.namespace + "}:*"))}
        assert homes == {node_of(config)}
    for config in configs:
        config.close()


def test_cluster_client_is_used(cq: Queue) -> None:
    """The queue talks through a cluster client, so the tests above ran on the cluster."""
    client: Any = cq.config.client()
    assert type(client).__name__ == "RedisCluster" and len(client.get_primaries()) == 3
