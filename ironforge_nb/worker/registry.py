"""The worker registry: each worker heartbeats its presence into the namespace's workers HASH.

Field = worker name, value = JSON ``{pid, host, queues, concurrency, started, last_seen,
jobs_done, running}`` with times in seconds since the epoch from Redis ``TIME`` (one clock for
every machine). A notebook lists the live workers of a namespace with `list_workers`; entries
not refreshed for `STALE_AFTER` seconds (a SIGKILLed worker) are left out; a live worker that
finds one ends that worker's leases at once (`Queue.release_worker`: its running jobs stall,
the ones it held ahead go back for free) instead of letting them wait out their length, then
deletes the entry. Entries much older than that are deleted by whichever worker next refreshes
its own entry.
"""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

from ironforge_nb.queue import RedisConfig

__all__ = ["BEAT_INTERVAL", "STALE_AFTER", "Registry", "WorkerInfo", "gone_workers",
           "list_workers"]

BEAT_INTERVAL = 2.0  # seconds between two registry refreshes of one worker
STALE_AFTER = 10.0  # seconds without a refresh after which a worker is not listed
_FORGET_AFTER = 3600.0  # seconds after which a stale entry is deleted


@dataclass(frozen=True)
class WorkerInfo:
    """One worker as it last reported itself."""

    name: str
    pid: int
    host: str
    queues: tuple[str, ...]
    concurrency: int
    started: float  # Redis time, seconds since the epoch
    last_seen: float
    jobs_done: int
    running: int  # tasks running at the last refresh

    @property
    def last_seen_at(self) -> datetime:
        """`last_seen` as a UTC datetime."""
        return datetime.fromtimestamp(self.last_seen, tz=UTC)

    def to_json(self) -> str:
        """The registry value (without the name, which is the field)."""
        data = asdict(self)
        del data["name"]
        data["queues"] = list(self.queues)
        return json.dumps(data, separators=(",", ":"))

    @classmethod
    def from_json(cls, name: str, text: str | bytes) -> WorkerInfo:
        """Parse a registry value."""
        data = json.loads(text)
        return cls(name=name, pid=int(data["pid"]), host=str(data["host"]),
                   queues=tuple(data["queues"]), concurrency=int(data["concurrency"]),
                   started=float(data["started"]), last_seen=float(data["last_seen"]),
                   jobs_done=int(data["jobs_done"]), running=int(data.get("running", 0)))


def _redis_now(client: Any) -> float:
    seconds, micros = client.time()
    return float(seconds) + float(micros) / 1e6


class Registry:
    """One worker's entry in the registry."""

    def __init__(self, config: RedisConfig, name: str, queues: Sequence[str],
                 concurrency: int) -> None:
        self._client = config.client()
        self._key = config.keys.workers
        self.name = name
        self._queues = tuple(queues)
        self._concurrency = concurrency
        self._started: float | None = None
        self._beats = 0

    def beat(self, jobs_done: int, running: int) -> None:
        """Refresh this worker's entry and forget long-dead ones (two round trips)."""
        now = _redis_now(self._client)
        if self._started is None:
            self._started = now
        info = WorkerInfo(self.name, os.getpid(), socket.gethostname(), self._queues,
                          self._concurrency, self._started, now, jobs_done, running)
        self._client.hset(self._key, self.name, info.to_json())
        self._beats += 1
        if self._beats % 30 == 1:  # pruning is rare work: now and then is enough
            _prune(self._client, self._key, now)

    def remove(self) -> None:
        """Delete this worker's entry (clean shutdown)."""
        self._client.hdel(self._key, self.name)

    def forget(self, name: str) -> None:
        """Delete another worker's entry (it is gone and its leases were released)."""
        self._client.hdel(self._key, name)


def _prune(client: Any, key: str, now: float) -> None:
    dead = [name for name, info in _read(client, key) if now - info.last_seen > _FORGET_AFTER]
    if dead:
        client.hdel(key, *dead)


def _read(client: Any, key: str) -> list[tuple[str, WorkerInfo]]:
    out = []
    for field, value in client.hgetall(key).items():
        name = field.decode()
        out.append((name, WorkerInfo.from_json(name, value)))
    return out


def gone_workers(config: RedisConfig, stale_after: float = STALE_AFTER) -> list[WorkerInfo]:
    """The workers of ``config``'s namespace whose entry was not refreshed for ``stale_after``
    seconds (killed, or cut off from Redis), by name; see `Housekeeper`."""
    client = config.client()
    now = _redis_now(client)
    gone = [info for _, info in _read(client, config.keys.workers)
            if now - info.last_seen > stale_after]
    return sorted(gone, key=lambda info: info.name)


def list_workers(config: RedisConfig, stale_after: float = STALE_AFTER) -> list[WorkerInfo]:
    """The workers of ``config``'s namespace seen in the last ``stale_after`` seconds, by name."""
    client = config.client()
    now = _redis_now(client)
    live = [info for _, info in _read(client, config.keys.workers)
            if now - info.last_seen <= stale_after]
    return sorted(live, key=lambda info: info.name)
