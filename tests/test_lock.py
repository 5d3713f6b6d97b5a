"""Locks (`ironforge_nb.queue.lock.Lock`) against a real redis-server."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
import redis

from ironforge_nb.errors import (
    InvalidNameError,
    InvalidOptionError,
    LockError,
    LockTimeoutError,
    RunError,
)
from ironforge_nb.local import RedisCluster, RedisServer
from ironforge_nb.queue.config import RedisConfig
from ironforge_nb.queue.lock import Lock


def test_acquire_free_lock(config: RedisConfig) -> None:
    """A free lock is acquired and then reported locked and owned."""
    lock = Lock("job", ttl=10, config=config)
    assert lock.acquire() is True
    assert lock.locked() and lock.owned()


def test_locks_queues_and_runs_of_one_config_share_a_connection(redis_server: RedisServer,
                                                                 namespace: str) -> None:
    """Many live locks, queues and run handles of one config, used from one thread, hold one
    pool connection between them (each used to keep a connection of its own while alive)."""
    from ironforge_nb.orchestrator import Run
    from ironforge_nb.queue import Queue

    cfg = RedisConfig(url=redis_server.url, namespace=namespace)
    try:
        pool = cfg.client().connection_pool
        locks = [Lock(f"lock-{i}", 5, cfg) for i in range(20)]
        assert all(lock.acquire() for lock in locks)
        queues = [Queue(f"q{i}", cfg) for i in range(20)]
        for q in queues:
            q.enqueue(b"x")
        for i in range(20):
            with pytest.raises(RunError):
                Run(f"missing-{i}", config=cfg).cancel()
        assert len(pool._in_use_connections) <= 1
    finally:
        cfg.close()


def test_held_lock_returns_false(config: RedisConfig) -> None:
    """A lock held by another owner gives False, not an exception."""
    assert Lock("job", ttl=10, config=config).acquire()
    assert Lock("job", ttl=10, config=config).acquire() is False


def test_lock_key_has_ttl(config: RedisConfig, redis_client: Any) -> None:
    """The lock key carries the requested TTL, so a crashed owner cannot hold it forever."""
    began = time.monotonic()
    Lock("job", ttl=10, config=config).acquire()
    ttl = redis_client.pttl(config.keys.lock("job"))
    elapsed_ms = (time.monotonic() - began) * 1000  # a loaded machine may take a while
    assert 10_000 - elapsed_ms - 10 <= ttl <= 10_000


def test_ttl_expiry_frees_lock(config: RedisConfig) -> None:
    """Once the TTL elapses, another owner acquires the lock."""
    assert Lock("job", ttl=0.05, config=config).acquire()
    time.sleep(0.1)
    assert Lock("job", ttl=10, config=config).acquire() is True


def test_release_frees_lock(config: RedisConfig) -> None:
    """After release, the lock is free for another owner."""
    first = Lock("job", ttl=10, config=config)
    first.acquire()
    assert first.release() is True
    assert not first.locked()
    assert Lock("job", ttl=10, config=config).acquire()


def test_release_by_non_owner_changes_nothing(config: RedisConfig, redis_client: Any) -> None:
    """A non-owner's release returns False and leaves the holder's token and TTL intact."""
    holder = Lock("job", ttl=10, config=config)
    holder.acquire()
    key = config.keys.lock("job")
    intruder = Lock("job", ttl=10, config=config)
    intruder.token = "forged-token"  # as if it once held the lock and it expired since
    assert intruder.release() is False
    assert redis_client.get(key) == holder.token.encode()  # type: ignore[union-attr]
    assert redis_client.pttl(key) > 9_000


def test_release_after_expiry_spares_next_owner(config: RedisConfig) -> None:
    """An owner whose lock expired and was retaken cannot release the new owner's lock."""
    stale = Lock("job", ttl=0.05, config=config)
    stale.acquire()
    time.sleep(0.1)
    fresh = Lock("job", ttl=10, config=config)
    assert fresh.acquire()
    assert stale.release() is False
    assert fresh.owned()


def test_extend_by_owner(config: RedisConfig, redis_client: Any) -> None:
    """The owner's extend resets the TTL."""
    lock = Lock("job", ttl=1, config=config)
    lock.acquire()
    assert lock.extend(30) is True
    assert redis_client.pttl(config.keys.lock("job")) > 29_000


def test_extend_by_non_owner_refused(config: RedisConfig, redis_client: Any) -> None:
    """A non-owner's extend returns False and leaves the holder's TTL unchanged."""
    holder = Lock("job", ttl=5, config=config)
    holder.acquire()
    intruder = Lock("job", ttl=5, config=config)
    intruder.token = "forged-token"
    assert intruder.extend(60) is False
    assert redis_client.pttl(config.keys.lock("job")) <= 5_000


def test_extend_after_expiry_refused(config: RedisConfig) -> None:
    """An expired lock cannot be revived by its former owner."""
    lock = Lock("job", ttl=0.05, config=config)
    lock.acquire()
    time.sleep(0.1)
    assert lock.extend() is False
    assert not lock.locked()


def test_release_without_acquire_is_false(config: RedisConfig) -> None:
    """Releasing a lock never acquired returns False."""
    assert Lock("job", ttl=1, config=config).release() is False


def test_reacquire_by_owner_succeeds(config: RedisConfig) -> None:
    """An owner acquiring again (e.g. a retried call) succeeds instead of seeing 'held'."""
    lock = Lock("job", ttl=10, config=config)
    assert lock.acquire()
    assert lock.acquire() is True


def test_blocking_acquire_times_out(config: RedisConfig) -> None:
    """A blocking acquire with a timeout gives up with False after about that long."""
    Lock("job", ttl=10, config=config).acquire()
    start = time.monotonic()
    assert Lock("job", ttl=10, config=config).acquire(blocking=True, timeout=0.2) is False
    assert time.monotonic() - start >= 0.2


def test_blocking_acquire_waits_for_release(config: RedisConfig) -> None:
    """A blocking acquire succeeds once the holder releases."""
    holder = Lock("job", ttl=10, config=config)
    holder.acquire()
    timer = threading.Timer(0.1, holder.release)
    timer.start()
    try:
        assert Lock("job", ttl=10, config=config).acquire(blocking=True, timeout=5) is True
    finally:
        timer.join()


def test_context_manager_holds_and_releases(config: RedisConfig) -> None:
    """``with Lock(...)`` holds the lock inside the block and frees it after."""
    lock = Lock("job", ttl=10, config=config)
    with lock:
        assert lock.owned()
        assert Lock("job", ttl=10, config=config).acquire() is False
    assert not lock.locked()


def test_context_manager_timeout_raises(config: RedisConfig) -> None:
    """``with`` on a lock held elsewhere raises LockTimeoutError after its timeout."""
    Lock("job", ttl=10, config=config).acquire()
    with (
        pytest.raises(LockTimeoutError, match="held by another owner"),
        Lock("job", ttl=10, config=config, timeout=0.1),
    ):
        pass


def test_context_manager_logs_expiry(config: RedisConfig, caplog: pytest.LogCaptureFixture) -> None:
    """A ``with`` block that outlives the TTL logs a warning when it ends."""
    with (
        caplog.at_level(logging.WARNING, logger="ironforge_nb.lock"),
        Lock("job", ttl=0.05, config=config),
    ):
        time.sleep(0.1)
    assert "expired before the end" in caplog.text


def test_redis_down_raises_lock_error(
    fresh_server: Callable[..., RedisServer], caplog: pytest.LogCaptureFixture
) -> None:
    """With Redis stopped, acquire raises LockError chaining the cause (never False) and logs."""
    server = fresh_server()
    cfg = RedisConfig(url=server.url, namespace="locks", retries=0)
    server.stop()
    with (
        caplog.at_level(logging.ERROR, logger="ironforge_nb.lock"),
        pytest.raises(LockError) as err,
    ):
        Lock("job", ttl=1, config=cfg).acquire()
    assert err.value.__cause__ is not None
    assert "acquire_lock failed" in caplog.text
    cfg.close()


def test_redis_down_release_and_extend_raise(fresh_server: Callable[..., RedisServer]) -> None:
    """Release and extend also raise LockError when Redis is gone, and keep the token."""
    server = fresh_server()
    cfg = RedisConfig(url=server.url, namespace="locks", retries=0)
    lock = Lock("job", ttl=10, config=cfg)
    lock.acquire()
    server.kill()
    with pytest.raises(LockError):
        lock.extend()
    with pytest.raises(LockError):
        lock.release()
    assert lock.token is not None
    cfg.close()


def test_lock_survives_script_flush(config: RedisConfig, redis_client: Any) -> None:
    """Scripts are reloaded after SCRIPT FLUSH (NOSCRIPT), invisibly to the caller."""
    lock = Lock("job", ttl=10, config=config)
    lock.acquire()
    redis_client.script_flush()
    assert lock.extend() is True
    redis_client.script_flush()
    assert lock.release() is True


def test_script_flush_racing_lock_calls(config: RedisConfig, redis_server: RedisServer) -> None:
    """With SCRIPT FLUSH looping in another connection, no acquire, extend or release raises."""
    flusher = redis.Redis.from_url(redis_server.url)
    flushes, stop = [0], threading.Event()

    def flush() -> None:
        while not stop.is_set():
            flusher.script_flush()
            flushes[0] += 1

    thread = threading.Thread(target=flush, daemon=True)
    thread.start()
    try:
        lock = Lock("job", ttl=10, config=config)
        results = [(lock.acquire(), lock.extend(), lock.release()) for _ in range(500)]
    finally:
        stop.set()
        thread.join()
        flusher.close()
    assert flushes[0] > 10
    assert set(results) == {(True, True, True)}


def test_invalid_lock_name_rejected(quiet_config: RedisConfig) -> None:
    """A name that would break the key layout raises InvalidNameError and writes nothing."""
    before = quiet_config.client().dbsize()
    with pytest.raises(InvalidNameError, match="lock"):
        Lock("bad:name", ttl=1, config=quiet_config)
    assert quiet_config.client().dbsize() == before


@pytest.mark.parametrize("ttl", [0, -1, "10", True])
def test_invalid_ttl_rejected(config: RedisConfig, ttl: object) -> None:
    """A TTL that is not a positive number of seconds raises InvalidOptionError."""
    with pytest.raises(InvalidOptionError, match="ttl"):
        Lock("job", ttl=ttl, config=config)  # type: ignore[arg-type]


def test_namespaces_do_not_share_locks(config: RedisConfig) -> None:
    """The same lock name in two namespaces is two independent locks."""
    other = config.with_namespace(config.namespace + "-other")
    assert Lock("job", ttl=10, config=config).acquire()
    assert Lock("job", ttl=10, config=other).acquire()
    other.close()


def test_default_config_from_env(
    redis_server: RedisServer, namespace: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without a config, a Lock uses IRONFORGE_REDIS_URL and IRONFORGE_NAMESPACE."""
    monkeypatch.setenv("IRONFORGE_REDIS_URL", redis_server.url)
    monkeypatch.setenv("IRONFORGE_NAMESPACE", namespace)
    lock = Lock("job", ttl=10)
    try:
        assert lock.config.namespace == namespace
        assert lock.acquire() and lock.release()
    finally:
        lock.config.close()


def test_lock_scripts_on_bundled_redis_6(bundled_server: RedisServer) -> None:
    """The lock scripts behave the same on the bundled Redis 6.2 binary."""
    cfg = RedisConfig(url=bundled_server.url, namespace="locks-6")
    try:
        holder, other = Lock("job", ttl=10, config=cfg), Lock("job", ttl=10, config=cfg)
        assert holder.acquire() and not other.acquire()
        assert holder.extend() and holder.release()
        assert other.acquire()
    finally:
        cfg.close()


def test_lock_on_redis_cluster(redis_cluster: RedisCluster, namespace: str) -> None:
    """On a 3-master cluster, lock scripts route by key and survive SCRIPT FLUSH on every master."""
    cfg = RedisConfig(url=redis_cluster.url, namespace=namespace, cluster=True)
    try:
        holder, other = Lock("job", ttl=10, config=cfg), Lock("job", ttl=10, config=cfg)
        assert holder.acquire() and not other.acquire()
        for node in cfg.client().get_primaries():
            node.redis_connection.script_flush()
        assert holder.extend() and holder.release()
        assert other.acquire() and other.owned()
    finally:
        cfg.close()
