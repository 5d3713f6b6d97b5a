"""One HTTP POST of a webhook, with urllib3, to the address the SSRF policy checked.

The connection goes to `Target.address` (never to a fresh lookup of the name), with the name
in the ``Host`` header and, for https, in SNI and the certificate check (the system's CA
store). Redirects are never followed (a 3xx is a failed attempt), nothing is retried here (the
dispatcher owns the schedule), and ``timeout`` bounds the WHOLE attempt: connect, TLS
handshake, sending, and the answer's status line, headers and the bit of body kept for the
error. A socket timeout alone would not do that (it bounds each read, so a receiver that
trickles a byte a second would hold the attempt for ever): a timer shuts the connection's
socket down at the deadline, which ends whatever read or write is blocked on it.
"""

from __future__ import annotations

import contextlib
import email.utils
import http.client
import ipaddress
import socket
import ssl
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass

import urllib3
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.util.ssl_ import create_urllib3_context
from urllib3.util.ssl_match_hostname import CertificateError

from ironforge_nb.webhooks.policy import Target

__all__ = ["Answer", "parse_retry_after", "send"]

_BODY_PEEK = 200  # bytes of an error answer's body kept in the delivery's error


@dataclass(frozen=True)
class Answer:
    """How one attempt ended: the HTTP status (None when there was no answer), an error text
    ('' on 2xx) and the receiver's ``Retry-After`` in seconds, if it sent one."""

    status: int | None
    error: str = ""
    retry_after: float | None = None

    @property
    def ok(self) -> bool:
        """Any 2xx is a success."""
        return self.status is not None and 200 <= self.status < 300


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """``Retry-After`` (seconds, or an HTTP date) as seconds from now; None if absent/bad."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


class _Deadline:
    """Shuts the attempt's socket down once ``seconds`` have passed (unless `cancel` came
    first): whatever connect, TLS handshake, read or write is blocked on it ends at once.
    The socket is `track`ed as soon as it exists (for https, before its handshake)."""

    def __init__(self, seconds: float) -> None:
        self.expired = False
        self._lock = threading.Lock()
        self._socks: list[socket.socket] = []
        self._timer = threading.Timer(seconds, self._expire)
        self._timer.daemon = True
        self._timer.start()

    @staticmethod
    def _shut(sock: socket.socket) -> None:
        with contextlib.suppress(OSError, ValueError):
            sock.shutdown(socket.SHUT_RDWR)

    def track(self, sock: socket.socket | None) -> None:
        if sock is None:
            return
        with self._lock:
            self._socks.append(sock)
            if self.expired:
                self._shut(sock)

    def _expire(self) -> None:
        with self._lock:
            self.expired = True
            for sock in self._socks:
                self._shut(sock)

    def cancel(self) -> None:
        self._timer.cancel()


class _TrackedSSLSocket(ssl.SSLSocket):
    """An SSLSocket that hands itself to its context's deadline before its handshake."""

    def do_handshake(self, block: bool = False) -> None:
        deadline = getattr(self.context, "ifn_deadline", None)
        if deadline is not None:
            deadline.track(self)
        super().do_handshake(block)


def _connection(target: Target, timeout: float, deadline: _Deadline) -> HTTPConnection:
    if target.scheme == "http":
        return HTTPConnection(target.address, target.port, timeout=timeout)
    try:
        ipaddress.ip_address(target.host)
        hostname = None  # an IP URL: the certificate must name that IP
    except ValueError:
        hostname = target.host
    context = create_urllib3_context(cert_reqs=ssl.CERT_REQUIRED)
    context.load_default_certs()  # the system's CA store (what urllib3 does by default)
    context.sslsocket_class = _TrackedSSLSocket
    context.ifn_deadline = deadline  # type: ignore[attr-defined]
    return HTTPSConnection(target.address, target.port, timeout=timeout,
                           cert_reqs="CERT_REQUIRED", server_hostname=hostname,
                           assert_hostname=hostname or target.address, ssl_context=context)


def send(target: Target, headers: Mapping[str, str], body: bytes, timeout: float) -> Answer:
    """POST ``body`` to ``target``, all of it within ``timeout`` seconds; never raises for
    network or HTTP failures (an attempt cut at the deadline is an error Answer)."""
    default_port = 443 if target.scheme == "https" else 80
    host = f"[{target.host}]" if ":" in target.host else target.host
    sent = {**headers, "Host": host if target.port == default_port else f"{host}:{target.port}",
            "User-Agent": "ironforge-nb-webhooks"}
    deadline = _Deadline(timeout)
    conn = _connection(target, timeout, deadline)
    try:
        conn.connect()  # the TCP connect: one step, bounded by the socket timeout
        deadline.track(conn.sock)
        if deadline.expired:
            raise TimeoutError
        conn.request("POST", target.path, body=body, headers=sent, preload_content=False)
        response = conn.getresponse()
        status = response.status
        peek = "" if 200 <= status < 300 else response.read(
            _BODY_PEEK, decode_content=False).decode(errors="replace")
        deadline.cancel()
        if deadline.expired:  # cut short: the socket's end looked like the end of the headers
            raise TimeoutError
        if 200 <= status < 300:
            return Answer(status)
        where = response.headers.get("location")
        error = f"HTTP {status}" + (f" (redirect to {where} not followed)" if where else "")
        if peek.strip():
            error += ": " + " ".join(peek.split())
        return Answer(status, error, parse_retry_after(response.headers.get("retry-after")))
    except (urllib3.exceptions.HTTPError, OSError, http.client.HTTPException,
            CertificateError) as exc:
        if deadline.expired:
            return Answer(None, f"TimeoutError: no complete answer within {timeout:g} s")
        return Answer(None, f"{type(exc).__name__}: {exc}")
    finally:
        deadline.cancel()
        conn.close()
