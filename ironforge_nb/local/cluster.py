"""A small Redis Cluster on loopback, for tests and benchmarks.

N masters (no replicas) started by `RedisServer` from one binary with ``cluster-enabled yes``,
joined by ``redis-cli --cluster create`` (the redis-cli next to the binary, else the one on
PATH). `RedisCluster.start` returns once every node reports ``cluster_state:ok`` and knows all the
others, so a ``RedisConfig(url, cluster=True)`` client works right away.

One master can be taken down and brought back, as a crash or a maintenance would do: `kill`
(SIGKILL) or `shutdown` (graceful) node ``i``, then `restart` it: same port, same data dir, same
node id (its ``nodes.conf``), and `restart` returns once the cluster is ok again. Its keys
survive with ``appendonly=True`` (AOF, ``appendfsync everysec``; pass ``extra_args=
("--appendfsync", "always")`` to lose nothing). While a master is down the others refuse every
command (``CLUSTERDOWN``) once ``node_timeout_ms`` has passed, unless the cluster was made with
``extra_args=("--cluster-require-full-coverage", "no")``: then the other masters' slots keep
working.

>>> with RedisCluster(appendonly=True) as cluster:
...     cluster.kill(1)              # the master serving a third of the slots dies
...     cluster.restart(1)           # back on its port with its data; the cluster is ok
"""

from __future__ import annotations

import random
import shutil
import socket
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType

from ironforge_nb.errors import ServerError
from ironforge_nb.local.server import RedisServer, find_redis_server

__all__ = ["RedisCluster"]


_BUS_OFFSET = 10_000  # a cluster node also listens on port + 10000 (the cluster bus)


def _cluster_port() -> int:
    """A free port whose cluster-bus port (+10000) is free too, so at most 55535."""
    for _ in range(200):
        port = random.randint(20_000, 65_535 - _BUS_OFFSET)
        try:
            with socket.socket() as a, socket.socket() as b:
                a.bind(("127.0.0.1", port))
                b.bind(("127.0.0.1", port + _BUS_OFFSET))
        except OSError:
            continue
        return port
    raise ServerError("found no free port pair (port, port + 10000) for a cluster node")


def _find_redis_cli(server_binary: str) -> str:
    beside = Path(server_binary).with_name("redis-cli")
    if beside.is_file():
        return str(beside)
    found = shutil.which("redis-cli")
    if found is None:
        raise ServerError(
            "redis-cli is needed to create a Redis Cluster and was not found next to "
            f"{server_binary!r} nor on PATH; install the Redis tools "
            "(`apt-get install redis-tools`)"
        )
    return found


class RedisCluster:
    """A Redis Cluster of ``masters`` nodes on 127.0.0.1, owned by the caller.

    >>> with RedisCluster() as cluster:
    ...     RedisConfig(cluster.url, cluster=True).client().ping()
    """

    def __init__(self, masters: int = 3, binary: str | None = None, node_timeout_ms: int = 5000,
                 *, appendonly: bool = False, extra_args: Sequence[str] = ()) -> None:
        if masters < 3:
            raise ServerError(f"a Redis Cluster needs at least 3 masters, got {masters}")
        self.binary = find_redis_server(binary)
        self.redis_cli = _find_redis_cli(self.binary)
        self._appendonly = appendonly
        self._cluster_args = (
            "--cluster-enabled", "yes",
            "--cluster-config-file", "nodes.conf",
            "--cluster-node-timeout", str(node_timeout_ms),
            *extra_args,
        )  # fmt: skip
        self.nodes = [self._node(_cluster_port()) for _ in range(masters)]

    def _node(self, port: int) -> RedisServer:
        return RedisServer(port=port, binary=self.binary, appendonly=self._appendonly,
                           extra_args=self._cluster_args)

    @property
    def url(self) -> str:
        """URL of the first node; a cluster client discovers the others from it."""
        return self.nodes[0].url

    @property
    def ports(self) -> list[int]:
        """TCP ports of the nodes."""
        return [int(node.port or 0) for node in self.nodes]

    def start(self, timeout: float = 30.0) -> RedisCluster:
        """Start the nodes, assign all slots, wait until the cluster is ok; returns ``self``."""
        try:
            for index in range(len(self.nodes)):
                self._start_new_node(index)
            self._create(timeout)
            self._wait_ok(timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def _start_new_node(self, index: int, attempts: int = 5) -> None:
        """Start node ``index`` before the cluster is made. Its ports were free when picked,
        but any process may bind one (or its bus port) before the node does, as an outgoing
        connection's local port for instance: then it starts on other ports, as `RedisServer`
        does for a port of its own choosing (a restart keeps its port: clients know it)."""
        for attempt in range(attempts):
            try:
                self.nodes[index].start()
                return
            except ServerError as exc:
                if attempt + 1 == attempts or "Address already in use" not in str(exc):
                    raise
                self.nodes[index].stop()
                self.nodes[index] = self._node(_cluster_port())

    def stop(self) -> None:
        """Stop every node and remove their temp dirs."""
        for node in self.nodes:
            node.stop()

    def kill(self, index: int) -> None:
        """SIGKILL master ``index`` (0-based, the order of `ports`), as a crash would; its data
        dir stays for `restart`."""
        self.nodes[index].kill()

    def shutdown(self, index: int, timeout: float = 10.0) -> None:
        """Stop master ``index`` gracefully, keeping its data dir for `restart`."""
        self.nodes[index].shutdown(timeout)

    def restart(self, index: int, timeout: float = 30.0) -> None:
        """Start master ``index`` again on its port with its data dir (stopping it first if it
        runs), and wait until every node reports the cluster ok again."""
        self.nodes[index].restart(timeout)
        self._wait_ok(timeout)

    def __enter__(self) -> RedisCluster:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def _create(self, timeout: float) -> None:
        addresses = [f"127.0.0.1:{port}" for port in self.ports]
        cmd = [self.redis_cli, "--cluster", "create", *addresses,
               "--cluster-replicas", "0", "--cluster-yes"]  # fmt: skip
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
        if done.returncode != 0 or "[OK]" not in done.stdout:
            raise ServerError(
                f"`redis-cli --cluster create` failed (exit {done.returncode}):\n"
                f"{done.stdout[-2000:]}{done.stderr[-2000:]}"
            )

    def _wait_ok(self, timeout: float) -> None:
        import redis

        deadline = time.monotonic() + timeout
        clients = [redis.Redis(port=port, socket_timeout=2.0) for port in self.ports]
        try:
            while True:
                infos = [_cluster_info(client) for client in clients]
                if all(
                    info.get("cluster_state") == "ok"
                    and info.get("cluster_known_nodes") == str(len(self.nodes))
                    for info in infos
                ):
                    return
                if time.monotonic() > deadline:
                    raise ServerError(
                        f"the cluster did not become ok within {timeout:g} s: {infos}"
                    )
                time.sleep(0.05)
        finally:
            for client in clients:
                client.close()


def _cluster_info(client: object) -> dict[str, str]:
    """``CLUSTER INFO`` of one node as a dict of strings."""
    raw = client.execute_command("CLUSTER INFO")  # type: ignore[attr-defined]
    if isinstance(raw, dict):
        return {str(k): str(v) for k, v in raw.items()}
    text = raw.decode() if isinstance(raw, bytes) else str(raw)
    return dict(line.split(":", 1) for line in text.splitlines() if ":" in line)
