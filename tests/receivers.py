"""Real HTTP receivers for the webhook tests, on 127.0.0.1 only: each records what it got and
answers from a script of statuses (or hangs); a canary counts connections it should never get;
a trickler answers one byte at a time, for ever."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Received:
    """One request as the receiver saw it."""

    path: str
    headers: dict[str, str]
    body: bytes
    at: float = 0.0  # time.time() when it arrived (comparable with Redis TIME here)


@dataclass
class Receiver:
    """A receiver's record and behaviour: ``answers`` are the statuses of the first requests
    (then 200); ``hang`` makes it hold every request until `release`; ``delay`` makes it
    answer each request that many seconds late (a slow receiver)."""

    url: str
    answers: list[int] = field(default_factory=list)
    extra_headers: dict[str, str] = field(default_factory=dict)
    hang: bool = False
    delay: float = 0.0
    got: list[Received] = field(default_factory=list)
    arrived: threading.Event = field(default_factory=threading.Event)
    released: threading.Event = field(default_factory=threading.Event)

    def release(self) -> None:
        """Let hanging requests end."""
        self.released.set()


@contextmanager
def receiver(answers: Sequence[int] = (), *, hang: bool = False, delay: float = 0.0,
             headers: dict[str, str] | None = None) -> Iterator[Receiver]:
    """A threaded HTTP server on 127.0.0.1 (a free port) for the duration of the block."""
    state: list[Receiver] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            rec = state[0]
            body = self.rfile.read(int(self.headers.get("content-length", 0)))
            rec.got.append(Received(self.path, {k.lower(): v for k, v in self.headers.items()},
                                    body, time.time()))
            rec.arrived.set()
            if rec.hang:
                rec.released.wait(60)
                return
            if rec.delay:
                rec.released.wait(rec.delay)
            status = rec.answers.pop(0) if rec.answers else 200
            self.send_response(status)
            for name, value in rec.extra_headers.items():
                self.send_header(name, value)
            self.send_header("content-length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    state.append(Receiver(f"http://127.0.0.1:{server.server_address[1]}/hook",
                          list(answers), dict(headers or {}), hang, delay))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state[0]
    finally:
        state[0].release()
        server.shutdown()
        server.server_close()


@contextmanager
def canary(family: socket.AddressFamily = socket.AF_INET,
           host: str = "127.0.0.1") -> Iterator[tuple[int, list[object]]]:
    """A listener on loopback that records every connection made to it: (port, connections)."""
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.bind((host, 0))
    sock.listen(16)
    sock.settimeout(0.1)
    seen: list[object] = []
    stop = threading.Event()

    def accept() -> None:
        while not stop.is_set():
            try:
                conn, peer = sock.accept()
            except (TimeoutError, OSError):
                continue
            seen.append(peer)
            conn.close()

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield sock.getsockname()[1], seen
    finally:
        stop.set()
        thread.join(2)
        sock.close()


@contextmanager
def trickler(prefix: bytes = b"HTTP/1.1 200 OK\r\n", every: float = 0.1) -> Iterator[
        tuple[int, list[float]]]:
    """A listener on 127.0.0.1 that answers each connection with ``prefix`` and then one byte
    (of a header that never ends) every ``every`` seconds until the client goes away: each
    read gets data long before any per-read timeout. Yields (port, how many seconds each
    connection was held)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    sock.settimeout(0.1)
    held: list[float] = []
    stop = threading.Event()

    def serve(conn: socket.socket) -> None:
        start = time.monotonic()
        try:
            conn.settimeout(0.5)
            with contextlib.suppress(TimeoutError):
                conn.recv(65536)  # the request (or a TLS ClientHello)
            conn.sendall(prefix)
            while not stop.is_set():
                conn.sendall(b"a")
                time.sleep(every)
        except OSError:
            pass  # the client hung up
        finally:
            held.append(time.monotonic() - start)
            conn.close()

    def accept() -> None:
        while not stop.is_set():
            try:
                conn, _ = sock.accept()
            except (TimeoutError, OSError):
                continue
            threading.Thread(target=serve, args=(conn,), daemon=True).start()

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield sock.getsockname()[1], held
    finally:
        stop.set()
        thread.join(2)
        sock.close()
