"""How to reach Redis and the limits of a namespace: one injectable settings object."""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass, field, fields, replace
from typing import Any

from ironforge_nb.errors import ConfigError, InvalidOptionError
from ironforge_nb.names import validate_name
from ironforge_nb.queue.keys import Keys

__all__ = ["RESULT_STORE_ENV", "RedisConfig", "default_config", "set_default_config"]

RESULT_STORE_ENV = "IRONFORGE_RESULT_STORE"

_MiB = 1024 * 1024
_LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


def _mask_password(url: str) -> str:
    """``url`` with its password (if any) replaced by ``***``."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    if parts.password is None:
        return url
    user = parts.username or ""
    host = parts.netloc.rsplit("@", 1)[1]
    return urlunsplit(parts._replace(netloc=f"{user}:***@{host}"))


def _rebuild(cls: type[RedisConfig], settings: dict[str, Any]) -> RedisConfig:
    """Unpickle a `RedisConfig` from its settings (see `RedisConfig.__reduce__`)."""
    return cls(**settings)


@dataclass(frozen=True)
class RedisConfig:
    """Where Redis is, which namespace to use, and the limits that apply to it.

    URLs may carry a password, an ACL user and TLS: ``rediss://user:secret@host:6380/0``.
    ``cluster=True`` (or a ``redis+cluster://`` URL) talks to a Redis Cluster; a namespace
    lives in one slot thanks to the ``{namespace}`` hash tag.
    """

    url: str = "redis://127.0.0.1:6379/0"
    namespace: str = "default"
    cluster: bool = False
    max_payload_bytes: int = 64 * _MiB
    max_result_bytes: int = 64 * _MiB
    result_ttl: float = 7 * 24 * 3600.0  # seconds a result is kept
    completed_retention: int = 10_000  # completed jobs kept per queue (oldest trimmed)
    # Finished runs kept per namespace: at each submit, older finished runs are deleted whole
    # (jobs, results, events). Jobs of runs are never trimmed by completed_retention, but their
    # results still expire after result_ttl: keep it longer than a run lasts.
    run_retention: int = 1_000
    events_maxlen: int = 10_000  # approximate cap of each event stream
    socket_timeout: float | None = 30.0
    connect_timeout: float = 5.0
    # Reconnect attempts on connection errors, with exponential backoff (50 ms doubling, capped
    # at 1 s): the default rides out about 3.5 s of Redis downtime, e.g. a restart.
    retries: int = 6
    # What workers keep of each task attempt's output (print, stderr, log records at
    # task_log_level and above): the last task_log_bytes bytes, older output dropped with a
    # marker saying how much (0: nothing captured). Kept with the result TTL.
    task_log_bytes: int = 64 * 1024
    task_log_level: str = "INFO"
    # Where workers write results of result_threshold bytes or more (Redis keeps a reference;
    # see orchestrator.store): a directory, a file:// path or any fsspec URL (s3://bucket/p).
    # None keeps every result in Redis. connect() with a home sets <home>/results.
    result_store: str | None = None
    result_threshold: int = 1 * _MiB
    _client: list[Any] = field(default_factory=list, init=False, repr=False, compare=False)
    _lock: threading.Lock = field(
        default_factory=threading.Lock, init=False, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        validate_name(self.namespace, "namespace")  # before any client touches Redis
        for scheme in ("redis", "rediss"):
            if self.url.startswith(f"{scheme}+cluster://"):
                rest = self.url[len(f"{scheme}+cluster://"):]
                object.__setattr__(self, "url", f"{scheme}://{rest}")
                object.__setattr__(self, "cluster", True)
        if not self.url.startswith(("redis://", "rediss://", "unix://")):
            raise ConfigError(
                f"unsupported Redis URL {self.url!r}: use redis://host:port/db, "
                "rediss:// (TLS), redis+cluster:// or unix:///path/to/socket"
            )
        for name in ("max_payload_bytes", "max_result_bytes", "completed_retention",
                     "events_maxlen", "run_retention", "result_threshold"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise InvalidOptionError(name, value, "an int >= 1")
        for name in ("retries", "task_log_bytes"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise InvalidOptionError(name, value, "an int >= 0")
        if self.task_log_level not in _LOG_LEVELS:
            raise InvalidOptionError("task_log_level", self.task_log_level,
                                     f"one of {', '.join(_LOG_LEVELS)}")
        for name in ("result_ttl", "connect_timeout", "socket_timeout"):
            value = getattr(self, name)
            if name == "socket_timeout" and value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
                raise InvalidOptionError(name, value, "a number of seconds > 0")

    def __repr__(self) -> str:
        """Like the dataclass repr, with the URL's password masked (configs end up in logs)."""
        shown = ", ".join(
            f"{f.name}={self.masked_url if f.name == 'url' else getattr(self, f.name)!r}"
            for f in fields(self)
            if f.repr
        )
        return f"RedisConfig({shown})"

    @property
    def full_url(self) -> str:
        """The URL that reaches this Redis the same way: ``url`` with ``+cluster`` in its
        scheme when ``cluster`` is on (what another process, e.g. a worker, is given)."""
        if self.cluster and self.url.startswith(("redis://", "rediss://")):
            scheme, rest = self.url.split("://", 1)
            return f"{scheme}+cluster://{rest}"
        return self.url

    @property
    def masked_url(self) -> str:
        """`full_url` with its password (if any) replaced by ``***``, safe to print."""
        return _mask_password(self.full_url)

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickle/copy the settings only: the client and its lock belong to one process."""
        settings = {f.name: getattr(self, f.name) for f in fields(self) if f.init}
        return (_rebuild, (type(self), settings))

    @classmethod
    def from_env(cls, **overrides: Any) -> RedisConfig:
        """Settings from ``IRONFORGE_REDIS_URL``, ``IRONFORGE_NAMESPACE`` and
        ``IRONFORGE_RESULT_STORE`` (plus overrides)."""
        kw: dict[str, Any] = {}
        if url := os.environ.get("IRONFORGE_REDIS_URL"):
            kw["url"] = url
        if ns := os.environ.get("IRONFORGE_NAMESPACE"):
            kw["namespace"] = ns
        if store := os.environ.get(RESULT_STORE_ENV):
            kw["result_store"] = store
        kw.update(overrides)
        return cls(**kw)

    def with_namespace(self, namespace: str) -> RedisConfig:
        """The same Redis and limits, another namespace."""
        return replace(self, namespace=namespace)

    @property
    def keys(self) -> Keys:
        """Key builder of this namespace."""
        return Keys(self.namespace)

    def client(self) -> Any:
        """The shared client of this config (created on first use, thread-safe).

        Returns a ``redis.Redis`` (or ``redis.cluster.RedisCluster``) with a connection pool
        and retries with exponential backoff on connection errors and timeouts.
        """
        with self._lock:
            if not self._client:
                self._client.append(self.new_client())
            return self._client[0]

    def new_client(self) -> Any:
        """A fresh client (its own pool): for forked processes and blocking readers."""
        import redis
        from redis.backoff import ExponentialBackoff
        from redis.retry import Retry

        retry = Retry(ExponentialBackoff(cap=1.0, base=0.05), self.retries)
        errors = [redis.exceptions.ConnectionError, redis.exceptions.TimeoutError]
        kw: dict[str, Any] = {
            "socket_timeout": self.socket_timeout,
            "socket_connect_timeout": self.connect_timeout,
            "retry": retry,
            "retry_on_error": errors,
        }
        if self.cluster:
            from redis.cluster import RedisCluster

            return RedisCluster.from_url(self.url, **kw)
        return redis.Redis.from_url(self.url, health_check_interval=30, **kw)

    def close(self) -> None:
        """Close the shared client's connections."""
        with self._lock:
            if self._client:
                self._client.pop().close()


_default: list[RedisConfig] = []


def set_default_config(config: RedisConfig | None) -> None:
    """Make ``config`` the process default (``ifn.connect()`` calls this); None forgets it."""
    _default.clear()
    if config is not None:
        _default.append(config)


def default_config() -> RedisConfig:
    """The config set by `set_default_config` (``ifn.connect()``), else `RedisConfig.from_env`."""
    return _default[0] if _default else RedisConfig.from_env()
