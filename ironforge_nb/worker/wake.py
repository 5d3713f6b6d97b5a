"""`Waker`: a BLPOP on the queues' wake lists that a single-threaded event loop can wait on.

An idle worker must sleep until a job arrives, yet still notice at once when one of its
executors finishes or a signal arrives. Instead of a thread (the worker stays single-threaded
so that it can fork executors safely at any time), the BLPOP is sent on a dedicated connection
and its socket joins the executor pipes in one `multiprocessing.connection.wait`; the reply is
read when the socket becomes readable. Wake entries are hints only (see `Queue.dequeue_many`):
after any wake-up, or the BLPOP's own timeout, the worker claims by script.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from typing import Any

from ironforge_nb.queue import RedisConfig

__all__ = ["Waker"]


class Waker:
    """One pending-or-idle BLPOP on ``wake_keys`` (all in one namespace, hence one slot)."""

    def __init__(self, config: RedisConfig, wake_keys: Sequence[str]) -> None:
        self._config = config
        self._keys = list(wake_keys)
        self._client: Any = None
        self._conn: Any = None
        self.pending = False

    def arm(self, seconds: float) -> None:
        """Send a BLPOP blocking up to ``seconds`` (unless one is already pending)."""
        if self.pending:
            return
        conn = self._connection()
        try:
            conn.send_command("BLPOP", *self._keys, max(seconds, 0.01))
        except Exception:
            self._drop()
            raise
        self.pending = True

    def fileno(self) -> int:
        """The socket to wait on while a BLPOP is pending."""
        fd: int = self._conn._sock.fileno()
        return fd

    def collect(self) -> None:
        """Read the pending BLPOP's reply (a hint or a timeout: either way, claim next)."""
        if not self.pending:
            return
        self.pending = False
        try:
            self._conn.read_response()
        except Exception:
            self._drop()
            raise

    def close(self) -> None:
        """Drop the connection (a pending BLPOP dies with it)."""
        self._drop()
        if self._client is not None:
            with contextlib.suppress(Exception):
                self._client.close()
            self._client = None

    def _connection(self) -> Any:
        if self._conn is None:
            if self._client is None:
                self._client = self._config.new_client()
            pool = self._client.connection_pool if not self._config.cluster else (
                self._client.get_node_from_key(self._keys[0]).redis_connection.connection_pool)
            self._conn = pool.make_connection()
            self._conn.connect()
        return self._conn

    def _drop(self) -> None:
        self.pending = False
        if self._conn is not None:
            with contextlib.suppress(Exception):
                self._conn.disconnect()
            self._conn = None
