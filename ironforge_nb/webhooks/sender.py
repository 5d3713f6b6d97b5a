"""One HTTP POST of a webhook, with urllib3, to the address the SSRF policy checked.

The connection goes to `Target.address` (never to a fresh lookup of the name), with the name
in the ``Host`` header and, for https, in SNI and the certificate check (the system's CA
store). Redirects are never followed (a 3xx is a failed attempt), nothing is retried here (the
dispatcher owns the schedule), and ``timeout`` bounds the connect and each read.
"""

from __future__ import annotations

import email.utils
import ipaddress
import time
from collections.abc import Mapping
from dataclasses import dataclass

import urllib3

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


def _pool(target: Target, timeout: float) -> urllib3.HTTPConnectionPool:
    common = {"port": target.port, "timeout": urllib3.Timeout(connect=timeout, read=timeout),
              "retries": False, "maxsize": 1}
    if target.scheme == "http":
        return urllib3.HTTPConnectionPool(target.address, **common)  # type: ignore[arg-type]
    try:
        ipaddress.ip_address(target.host)
        hostname = None  # an IP URL: the certificate must name that IP
    except ValueError:
        hostname = target.host
    return urllib3.HTTPSConnectionPool(
        target.address, cert_reqs="CERT_REQUIRED", server_hostname=hostname,
        assert_hostname=hostname or target.address, **common)  # type: ignore[arg-type]


def send(target: Target, headers: Mapping[str, str], body: bytes, timeout: float) -> Answer:
    """POST ``body`` to ``target``; never raises for network or HTTP failures."""
    default_port = 443 if target.scheme == "https" else 80
    host = f"[{target.host}]" if ":" in target.host else target.host
    sent = {**headers, "Host": host if target.port == default_port else f"{host}:{target.port}",
            "User-Agent": "ironforge-nb-webhooks"}
    pool = _pool(target, timeout)
    try:
        response = pool.urlopen("POST", target.path, body=body, headers=sent, redirect=False,
                                retries=False, preload_content=False, assert_same_host=False)
        try:
            status = response.status
            if 200 <= status < 300:
                return Answer(status)
            peek = response.read(_BODY_PEEK, decode_content=False).decode(errors="replace")
            where = response.headers.get("location")
            error = f"HTTP {status}" + (f" (redirect to {where} not followed)" if where else "")
            if peek.strip():
                error += ": " + " ".join(peek.split())
            return Answer(status, error, parse_retry_after(response.headers.get("retry-after")))
        finally:
            response.release_conn()
    except urllib3.exceptions.HTTPError as exc:
        return Answer(None, f"{type(exc).__name__}: {exc}")
    except OSError as exc:
        return Answer(None, f"{type(exc).__name__}: {exc}")
    finally:
        pool.close()
