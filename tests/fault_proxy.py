"""`FaultProxy`: a TCP proxy on loopback that cuts a Redis connection at an exact moment.

Between clients and a real redis-server, it forwards bytes both ways and reads the RESP
protocol in both directions, so that it knows which reply answers which command. Faults are
armed for the next commands that match, and each fires once:

- ``drop_reply(match)``: the command reaches the server and RUNS there; its reply is thrown
  away and the client's connection is closed right then (both sides). The client sees a
  connection error for a request that took effect: what a network cut, or a server killed
  between executing and answering, leaves behind. redis-py then resends the request. An error
  reply (such as NOSCRIPT, for a script the server had not loaded yet) is passed on and the
  fault stays armed for the next matching command, so that it fires on one that took effect.
- ``cut_before(match)``: the connection is closed before the command is forwarded: it never
  runs (the other case a client cannot tell apart).

``match`` is bytes (a substring of the command's raw RESP bytes) or a predicate on the parsed
arguments (``list[bytes]``, e.g. ``lambda a: a[0] == b"EVALSHA" and a[1] == sha``). `fired`
counts the faults that fired; `wait_fired(n)` waits for them. Usage::

    with FaultProxy(server.port) as proxy:
        config = RedisConfig(url=proxy.url, namespace="ns")
        proxy.drop_reply(script_match("claim_jobs"))
        ...  # the next claim runs in Redis, its reply is lost, redis-py sends it again

Speaks RESP2 and RESP3. Standard library only; one thread per proxied connection; for tests
(loopback, no TLS).
"""

from __future__ import annotations

import hashlib
import select
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from types import TracebackType

__all__ = ["FaultProxy", "Match", "script_match"]

Match = bytes | Callable[[list[bytes]], bool]


def script_match(name: str) -> Callable[[list[bytes]], bool]:
    """A predicate matching calls of the package's Lua script ``name`` (by SHA or source)."""
    from ironforge_nb.queue.scripting import lua_source

    source = lua_source(name).encode()
    sha = hashlib.sha1(source).hexdigest().encode()
    return lambda a: (a[0].upper() == b"EVALSHA" and a[1] == sha) or (
        a[0].upper() == b"EVAL" and a[1] == source)


def _resp_end(buf: bytes | bytearray, pos: int = 0) -> int | None:
    """End offset of the RESP2/RESP3 value starting at ``pos``, or None while incomplete."""
    line = buf.find(b"\r\n", pos)
    if line < 0:
        return None
    kind, head = buf[pos:pos + 1], buf[pos + 1:line]
    end = line + 2
    if kind in b"+-:_,#(":  # simple: status, error, integer, null, double, boolean, big number
        return end
    if kind in b"$!=":  # sized: bulk string, blob error, verbatim string
        size = int(head)
        if size < 0:
            return end
        return end + size + 2 if len(buf) >= end + size + 2 else None
    if kind in b"*~>%|":  # aggregates: array, set, push; map and attribute hold pairs
        count = int(head) * (2 if kind in b"%|" else 1)
        for _ in range(max(count, 0)):
            found = _resp_end(buf, end)
            if found is None:
                return None
            end = found
        return _resp_end(buf, end) if kind == b"|" else end  # an attribute precedes a value
    raise ValueError(f"not RESP: {bytes(buf[pos:pos + 20])!r}")


def _args(raw: bytes) -> list[bytes]:
    """The bulk strings of a RESP array command."""
    out, pos = [], raw.find(b"\r\n") + 2
    while pos < len(raw):
        line = raw.find(b"\r\n", pos)
        size = int(raw[pos + 1:line])
        out.append(raw[line + 2:line + 2 + size])
        pos = line + 2 + size + 2
    return out


@dataclass
class _Fault:
    match: Match
    after: bool  # True: drop the reply (the command ran); False: cut before forwarding

    def hits(self, raw: bytes) -> bool:
        if isinstance(self.match, bytes):
            return self.match in raw
        return self.match(_args(raw))


@dataclass
class FaultProxy:
    """Forwards 127.0.0.1:<port> (`url`) to the redis-server at ``target_port``."""

    target_port: int
    target_host: str = "127.0.0.1"
    fired: int = 0
    _faults: list[_Fault] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _fired_cv: threading.Condition = field(default_factory=threading.Condition)

    def __post_init__(self) -> None:
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        self._closed = False
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        """``redis://127.0.0.1:<port>/0`` of the proxy."""
        return f"redis://127.0.0.1:{self.port}/0"

    def drop_reply(self, match: Match) -> None:
        """The next command matching ``match`` runs, then its connection is cut unanswered."""
        with self._lock:
            self._faults.append(_Fault(match, after=True))

    def cut_before(self, match: Match) -> None:
        """The next command matching ``match`` is not forwarded: its connection is cut."""
        with self._lock:
            self._faults.append(_Fault(match, after=False))

    def wait_fired(self, n: int, timeout: float = 10.0) -> bool:
        """True once ``n`` faults have fired in all (False after ``timeout`` seconds)."""
        with self._fired_cv:
            return self._fired_cv.wait_for(lambda: self.fired >= n, timeout)

    def close(self) -> None:
        """Stop accepting; live connections end with their clients."""
        self._closed = True
        self._listener.close()

    def __enter__(self) -> FaultProxy:
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    # -- internals ---------------------------------------------------------------------------

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            server = socket.create_connection((self.target_host, self.target_port))
            threading.Thread(target=self._pump, args=(client, server), daemon=True).start()

    def _take(self, raw: bytes) -> _Fault | None:
        with self._lock:
            for fault in self._faults:
                if fault.hits(raw):
                    self._faults.remove(fault)
                    return fault
        return None

    def _fire(self) -> None:
        with self._fired_cv:
            self.fired += 1
            self._fired_cv.notify_all()

    def _pump(self, client: socket.socket, server: socket.socket) -> None:
        """Forward whole commands and whole replies, acting on the faults armed."""
        up, down = bytearray(), bytearray()
        pending: list[_Fault | None] = []  # per forwarded command: the fault on its reply
        try:
            while True:
                ready, _, _ = select.select([client, server], [], [])
                if client in ready:
                    data = client.recv(65536)
                    if not data:
                        return
                    up += data
                    while (end := _resp_end(up)) is not None:
                        raw, up = bytes(up[:end]), up[end:]
                        fault = self._take(raw)
                        if fault is not None and not fault.after:
                            self._fire()
                            return
                        pending.append(fault)
                        server.sendall(raw)
                if server in ready:
                    data = server.recv(65536)
                    if not data:
                        return
                    down += data
                    while pending and (end := _resp_end(down)) is not None:
                        raw, down = bytes(down[:end]), down[end:]
                        fault = pending.pop(0)
                        if fault is not None and not raw.startswith((b"-", b"!")):
                            self._fire()
                            return
                        if fault is not None:  # an error took no effect: wait for the next
                            with self._lock:
                                self._faults.insert(0, fault)
                        client.sendall(raw)
        except OSError:
            return
        finally:
            for sock in (client, server):
                sock.close()
