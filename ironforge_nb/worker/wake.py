"""`Waker`: a BLPOP on the queues' wake lists that a single-threaded event loop can wait on.

An idle worker must sleep until a job arrives, yet still notice at once when one of its
executors finishes or a signal arrives. Instead of a thread (the worker stays single-threaded
so that it can fork executors safely at any time), the BLPOP is sent on a dedicated connection
and its socket joins the executor pipes in the worker's one ``poll(2)`` set (`wire.Readiness`);
the reply is read when the socket becomes readable. Wake entries are hints only (see
`Queue.dequeue_many`): after any wake-up, or the BLPOP's own timeout, the worker claims by
script.

Backing off: a hint may be stale (another worker claimed the job first), so a woken worker
may find nothing. In a chain, the worker that completes a task claims its child in the same
call, which then takes back the child's hint (complete_job.lua), so an idle worker is not
woken once per task; hints still go stale when other claims overtake them (wide fan-outs,
several workers). After wake-ups that found nothing, `block` waits a short cooldown (doubling
up to `MAX_COOLDOWN`) before the next BLPOP; the hints left meanwhile are still there then,
so no job waits longer than that.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Sequence
from typing import Any

from ironforge_nb.queue import RedisConfig
from ironforge_nb.queue.link import connection_socket  # the one read of redis-py's `_sock`

__all__ = ["IDLE_BLOCK", "MAX_COOLDOWN", "Waker"]

IDLE_BLOCK = 0.5  # longest BLPOP of an idle worker: due retries are claimed this late at most
MAX_COOLDOWN = 0.01  # longest wait before blocking again after wake-ups that found nothing


class Waker:
    """One pending-or-idle BLPOP on ``wake_keys`` (all in one namespace, hence one slot)."""

    def __init__(self, config: RedisConfig, wake_keys: Sequence[str]) -> None:
        self._config = config
        self._keys = list(wake_keys)
        self._client: Any = None
        self._conn: Any = None
        self.pending = False
        self.woken = False  # a hint arrived and no claim has answered it yet
        self.arm_at: float | None = None  # when `block` will send the BLPOP (cooling down)
        self._cooldown = 0.0

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

    def block(self) -> None:
        """Block on the wake list now, or once the cooldown has passed (see `due`)."""
        if self._cooldown <= 0:
            self.arm(IDLE_BLOCK)
        elif self.arm_at is None and not self.pending:
            self.arm_at = time.monotonic() + self._cooldown

    def due(self, now: float, idle: bool) -> None:
        """Send the BLPOP that `block` delayed, once its time has come (if still ``idle``)."""
        if self.arm_at is not None and now >= self.arm_at:
            self.arm_at = None
            if idle:
                self.arm(IDLE_BLOCK)

    def claimed(self, wanted: int, got: int) -> None:
        """Learn from a claim: one answering a hint that found nothing doubles the cooldown,
        one that found jobs ends it."""
        if self.woken and wanted and not got:
            self._cooldown = min(max(2 * self._cooldown, 0.001), MAX_COOLDOWN)
        elif got:
            self._cooldown = 0.0
        self.woken = False

    def fileno(self) -> int:
        """The socket to wait on while a BLPOP is pending."""
        return connection_socket(self._conn).fileno()

    def collect(self) -> None:
        """Read the pending BLPOP's reply (a hint or a timeout: either way, claim next)."""
        if not self.pending:
            return
        self.pending = False
        self.woken = True
        try:
            self._conn.read_response()
        except Exception:
            self._drop()
            raise

    def close(self) -> None:
        """Drop the connection (a pending BLPOP dies with it)."""
        self.arm_at = None
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
