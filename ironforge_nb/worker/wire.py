"""The worker <-> executor pipe: compact messages and cheap readiness checks.

Every task crosses the pipe twice (a lease in, an outcome back), so the messages are plain
tuples pickled with the standard pickler and sent as bytes: pickling a frozen dataclass
through `multiprocessing.reduction.ForkingPickler` costs several times more. Messages to an
executor: a lease tuple (`LEASE_FIELDS`, then whether the claim marked it started),
``("revoke", job_id, token)``, or None (stop). Messages back: an outcome tuple
``(ok, result, error, retry, ran)``.

`Readiness` answers "is there something to read on these descriptors?" with one ``poll(2)``
object kept across calls; `multiprocessing.connection.wait` builds and fills a new selector on
every call, which the worker's loop and each executor would otherwise pay once per task.
"""

from __future__ import annotations

import math
import pickle
import select
from collections.abc import Iterable
from typing import Any

from ironforge_nb.queue import Lease

__all__ = ["LEASE_FIELDS", "Readiness", "decode", "encode", "lease_from", "lease_tuple"]

LEASE_FIELDS = ("job_id", "token", "attempt", "payload", "queue", "deadline_ms", "meta",
                "worker", "lease_ms", "inputs")
_PROTOCOL = pickle.HIGHEST_PROTOCOL


def lease_tuple(lease: Lease) -> tuple[Any, ...]:
    """``lease`` as a plain tuple, in `LEASE_FIELDS` order."""
    return (lease.job_id, lease.token, lease.attempt, lease.payload, lease.queue,
            lease.deadline_ms, lease.meta, lease.worker, lease.lease_ms, lease.inputs)


def lease_from(fields: tuple[Any, ...]) -> Lease:
    """The `Lease` that `lease_tuple` flattened."""
    return Lease(*fields)


def encode(message: Any) -> bytes:
    """Bytes of a message made of builtin types (tuples, str, bytes, dicts, None...)."""
    return pickle.dumps(message, _PROTOCOL)


def decode(data: bytes) -> Any:
    """The message `encode` made (the pipe connects a worker to its own fork: trusted)."""
    return pickle.loads(data)


class Readiness:
    """A ``poll(2)`` set of file descriptors, updated in place as the set changes."""

    def __init__(self, fds: Iterable[int] = ()) -> None:
        self._poll = select.poll()
        self._fds: set[int] = set()
        self.watch(fds)

    def watch(self, fds: Iterable[int]) -> None:
        """Watch exactly ``fds`` from now on (register new ones, forget the others)."""
        wanted = set(fds)
        for fd in self._fds - wanted:
            self._poll.unregister(fd)
        for fd in wanted - self._fds:
            self._poll.register(fd, select.POLLIN)
        self._fds = wanted

    def ready(self, timeout: float | None = 0.0) -> set[int]:
        """The watched descriptors readable (or closed) within ``timeout`` seconds (None:
        wait as long as it takes)."""
        ms = None if timeout is None else max(0, math.ceil(timeout * 1000))
        return {fd for fd, _ in self._poll.poll(ms)}
