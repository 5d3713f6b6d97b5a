"""``ifn.connect()``: point this process at a Redis (embedded by default) and start local workers.

With no URL, the local home's redis-server (`Home`: ``$IRONFORGE_HOME`` or
``~/.cache/ironforge``, AOF on) is joined, or started and left running for the next kernel,
and ``workers`` local worker processes start with the home's signing secret; ``home=None``
starts a throwaway server instead (stopped by `Connection.close`, data gone) with a freshly
generated secret. With a URL, the given Redis is used and local workers start only if
``workers > 0``. Either way the connection becomes the process default
(`set_default_config`, `codec.set_default_secret`), so pipelines, queues and runs need no
arguments. One connection per process: connecting again closes the previous one, and so does
interpreter exit.
"""

from __future__ import annotations

import atexit
import contextlib
import os
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

from ironforge_nb.local.home import Home
from ironforge_nb.local.server import RedisServer
from ironforge_nb.local.workers import LocalWorkers
from ironforge_nb.names import validate_name
from ironforge_nb.queue.config import RESULT_STORE_ENV, RedisConfig, set_default_config
from ironforge_nb.worker.registry import WorkerInfo, list_workers

__all__ = ["Connection", "connect", "current_connection"]

_current: list[Connection] = []


class Connection:
    """What `connect` set up: a config, maybe a server, maybe local workers.

    `close` (or leaving a ``with`` block, or interpreter exit) stops what it started: the
    local workers and a throwaway server (``server``), never the home's server (``home``).
    """

    def __init__(self, config: RedisConfig, server: RedisServer | None,
                 local: LocalWorkers | None, secret: bytes | None,
                 home: Home | None = None) -> None:
        self.config = config
        self.server = server
        self.home = home
        self.local_workers = local
        self.secret = secret
        self.closed = False

    @property
    def url(self) -> str:
        """The Redis URL, password masked (it ends up in notebook outputs)."""
        return self.config.masked_url

    @property
    def namespace(self) -> str:
        """The namespace every default object uses."""
        return self.config.namespace

    def workers(self) -> list[WorkerInfo]:
        """The live workers of this namespace (local and remote), from the worker registry."""
        return list_workers(self.config)

    def close(self) -> None:
        """Stop the local workers and the embedded server; forget the process defaults."""
        if self.closed:
            return
        self.closed = True
        if self.local_workers is not None:
            self.local_workers.stop()
        if self.server is not None:
            self.server.stop()
        with contextlib.suppress(Exception):
            self.config.close()
        if _current and _current[0] is self:
            _current.clear()
            set_default_config(None)
            _set_secret(None)

    def __enter__(self) -> Connection:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def __repr__(self) -> str:
        where = ("embedded" if self.server is not None else
                 f"home {self.home.path}" if self.home is not None else "external")
        n = 0 if self.local_workers is None else self.local_workers.count
        state = " closed" if self.closed else ""
        return (f"<Connection {self.url} ({where}) namespace={self.namespace!r} "
                f"local_workers={n}{state}>")


def connect(url: str | None = None, namespace: str = "default", *, workers: int = 2,
            secret: bytes | str | None = None, queues: Sequence[str] = ("default",),
            worker_args: Sequence[str] = (),
            home: str | os.PathLike[str] | bool | None = True,
            result_store: str | None = None, task_log_bytes: int | None = None,
            task_log_level: str | None = None) -> Connection:
    """Connect this process to Redis and start ``workers`` local worker processes.

    ``url=None`` uses the local home's server (``home=True``: ``$IRONFORGE_HOME``, else
    ``~/.cache/ironforge``; or a directory), joined if running, else started and left running
    after this process (runs and results survive a kernel restart); ``home=None`` (or False)
    starts a throwaway server instead, stopped by `Connection.close`. The signing secret is
    ``secret``, else ``IRONFORGE_SECRET``, else the home's, else (throwaway server, or local
    workers) a new random one handed to the local workers; remote workers need the same value
    in their ``IRONFORGE_SECRET``. ``worker_args`` are extra ``ironforge worker`` options.
    Results of 1 MiB or more go to ``result_store`` (a directory or fsspec URL), else
    ``IRONFORGE_RESULT_STORE``, else the home's ``results/`` directory (none without a home:
    they stay in Redis); remote workers need the same ``IRONFORGE_RESULT_STORE``.
    ``task_log_bytes`` and ``task_log_level`` (`RedisConfig`'s defaults when None) say how
    much of a task's output the local workers keep and from which log level; remote workers
    take them as ``ironforge worker --task-log-bytes N --task-log-level LEVEL``.
    """
    from ironforge_nb.orchestrator import codec

    validate_name(namespace, "namespace")
    if _current:
        _current[0].close()
    key = secret.encode() if isinstance(secret, str) else secret
    if key is None:
        key = codec.secret_from_env()
    place = _home(home) if url is None else None
    if key is None and place is not None:
        key = place.secret()
    if key is None and (url is None or workers > 0):
        key = codec.new_secret()
    server = RedisServer().start() if url is None and place is None else None
    if place is not None:
        url = place.url()
    local = None
    try:
        store = result_store or os.environ.get(RESULT_STORE_ENV) or (
            str(place.results_dir) if place is not None else None)
        if store:
            from ironforge_nb.orchestrator.store import check_store

            check_store(store)  # a missing fsspec backend fails here, naming the package
        logs: dict[str, Any] = {name: value for name, value in (
            ("task_log_bytes", task_log_bytes), ("task_log_level", task_log_level))
            if value is not None}
        config = RedisConfig(url=server.url if server is not None else url or "",
                             namespace=namespace, result_store=store, **logs)
        config.client().ping()  # fail here, not at the first submit
        if workers:
            local = LocalWorkers(config, workers, queues, secret=key,
                                 extra_args=worker_args).start()
    except BaseException:
        if server is not None:
            server.stop()
        raise
    conn = Connection(config, server, local, key, place)
    _current.append(conn)
    set_default_config(config)
    _set_secret(key)
    return conn


def _home(home: str | os.PathLike[str] | bool | None) -> Home | None:
    if home is None or home is False:
        return None
    if home is True:
        return Home()
    if isinstance(home, str | os.PathLike):
        return Home(Path(home))
    from ironforge_nb.errors import InvalidOptionError

    raise InvalidOptionError("home", home, "True (the default home), a directory, or None "
                             "(a throwaway server)")


def current_connection() -> Connection | None:
    """The connection made by the last `connect` call, if still open."""
    return _current[0] if _current else None


def _set_secret(secret: bytes | None) -> None:
    from ironforge_nb.orchestrator import codec

    codec.set_default_secret(secret)


@atexit.register
def _close_at_exit() -> None:
    conn = current_connection()
    if conn is not None:
        conn.close()
