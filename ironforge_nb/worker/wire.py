"""The worker <-> executor pipe: compact messages and cheap readiness checks.

Every task crosses the pipe twice (a lease in, an outcome back), so the messages are plain
tuples pickled with the standard pickler and sent as bytes: pickling a frozen dataclass
through `multiprocessing.reduction.ForkingPickler` costs several times more. Messages to an
executor: a list of lease tuples (`LEASE_FIELDS`, then whether the claim marked it started:
the leases one claim brings for that executor, one write and one read for all), a single
lease tuple, ``("revoke", job_id, token)``, or None (stop). Messages back: an outcome tuple
``(ok, result, error, retry, ran)``.

Messages are framed as
``multiprocessing.connection.Connection.send_bytes`` frames them (a 4-byte big-endian length,
then the bytes), and read by `Frames`: everything already in the pipe in one ``read(2)``,
where ``recv_bytes`` costs two per message (header, then body) and a ``poll(2)`` before each.

`Readiness` answers "is there something to read on these descriptors?" with one ``poll(2)``
object kept across calls; `multiprocessing.connection.wait` builds and fills a new selector on
every call, which the worker's loop and each executor would otherwise pay once per task.
"""

from __future__ import annotations

import math
import os
import pickle
import select
import struct
from collections import deque
from collections.abc import Iterable
from typing import Any

from ironforge_nb.queue import Lease

__all__ = ["LEASE_FIELDS", "Frames", "Readiness", "decode", "encode", "lease_from", "lease_tuple"]

LEASE_FIELDS = ("job_id", "token", "attempt", "payload", "queue", "deadline_ms", "meta",
                "worker", "lease_ms", "inputs")
_PROTOCOL = pickle.HIGHEST_PROTOCOL
_HEADER = struct.Struct("!i")  # multiprocessing's frame header: the body's length
_LONG = struct.Struct("!Q")  # after a header of -1: the length of a body of 2 GiB or more
_CHUNK = 1 << 16  # bytes asked of one read(2)


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


class Frames:
    """The messages arriving on one end of a pipe (``fd``), framed as ``send_bytes`` frames
    them, read with as few ``read(2)`` calls as the bytes in the pipe allow."""

    def __init__(self, fd: int) -> None:
        self._fd = fd
        self._buffer = bytearray()
        self.messages: deque[Any] = deque()  # decoded, oldest first: the reader pops them
        self.ended = False  # the other end closed the pipe (after the messages read)

    def read(self) -> None:
        """Read what the pipe holds (waiting for it when empty) and decode every message
        whose bytes are all there; a message cut short is waited for to its end, as
        ``recv_bytes`` would (its writer is sending it). Sets `ended` at the end of the pipe
        (raises ``OSError`` when this side is closed)."""
        while True:
            chunk = os.read(self._fd, _CHUNK)
            if not chunk:
                self.ended = True
                return
            self._buffer += chunk
            if self._split():
                return

    def _split(self) -> bool:
        """Decode the complete messages of the buffer; False while one is still cut short."""
        buffer, at = self._buffer, 0
        while len(buffer) - at >= _HEADER.size:
            size, start = _HEADER.unpack_from(buffer, at)[0], at + _HEADER.size
            if size == -1:
                if len(buffer) - start < _LONG.size:
                    break
                size, start = _LONG.unpack_from(buffer, start)[0], start + _LONG.size
            if len(buffer) - start < size:
                break
            self.messages.append(pickle.loads(buffer[start:start + size]))
            at = start + size
        del buffer[:at]
        return not buffer
