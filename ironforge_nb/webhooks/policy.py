"""The SSRF policy: which URLs a webhook may target, and the one address to connect to.

A webhook makes this machine send requests to a URL someone typed, so by default a URL is
refused unless it is ``http``/``https`` and EVERY address its host resolves to is public: not
loopback, private (RFC 1918, unique-local ``fc00::/7``), link-local (``169.254/16``, where cloud
metadata services live, ``fe80::/10``), shared/CGNAT (``100.64/10``), multicast, unspecified
(``0.0.0.0``, ``::``) or otherwise reserved; IPv4 addresses inside IPv6 ones (``::ffff:a.b.c.d``,
6to4, Teredo, NAT64) are judged by the IPv4 address they carry. The check runs at registration
and again before each delivery, because a name may resolve differently later (DNS rebinding):
`check_url` returns the address it checked, and the sender connects to that address (the name
still goes in the ``Host`` header and, for ``https``, in SNI and the certificate check).
``allow_private=True`` lifts the address rules (local development); the scheme rule stays.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

from ironforge_nb.errors import WebhookRejectedError

__all__ = ["Resolver", "Target", "address_refusal", "check_url", "system_resolver"]

# host, port -> the addresses the host resolves to (strings); tests inject their own
Resolver = Callable[[str, int], list[str]]

_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_METADATA = {ipaddress.ip_address(a) for a in ("169.254.169.254", "fd00:ec2::254",
                                               "100.100.100.200", "192.0.0.192")}
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


@dataclass(frozen=True)
class Target:
    """Where one request goes: ``address`` is the checked IP to connect to; ``host`` (the
    name in the URL) goes in the Host header and TLS SNI."""

    url: str
    scheme: str
    host: str
    port: int
    address: str
    path: str  # path and query, as sent in the request line


def system_resolver(host: str, port: int) -> list[str]:
    """The addresses ``host`` resolves to, through the system resolver (getaddrinfo)."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def _embedded_v4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip.teredo is not None:
        return ip.teredo[1]
    if ip in _NAT64:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


def address_refusal(address: str) -> str | None:
    """Why the default policy refuses to connect to ``address`` (an IP string), or None."""
    try:
        ip: IPAddress = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return f"{address!r} is not an IP address"
    if isinstance(ip, ipaddress.IPv6Address) and (inner := _embedded_v4(ip)) is not None:
        why = address_refusal(str(inner))
        return None if why is None else f"{ip} carries {why}"
    checks = [
        (ip in _METADATA, "a cloud metadata address"),
        (ip.is_loopback, "a loopback address"),
        (ip.is_unspecified, "the unspecified address"),
        (ip.is_link_local, "a link-local address"),
        (ip.is_multicast, "a multicast address"),
        (ip.is_private, "a private address"),
        (ip.is_reserved, "a reserved address"),
        (not ip.is_global, "a non-public address"),
    ]
    for hit, what in checks:
        if hit:
            return f"{ip} is {what}"
    return None


def _split(url: str) -> tuple[str, str, int, str]:
    if not isinstance(url, str) or not url:
        raise WebhookRejectedError(str(url), "expected an http:// or https:// URL")
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError as exc:
        raise WebhookRejectedError(url, f"malformed URL ({exc})") from None
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise WebhookRejectedError(url, f"scheme {scheme or '(none)'!r} is not allowed; "
                                        "use http:// or https://")
    if not parts.hostname:
        raise WebhookRejectedError(url, "the URL has no host")
    if parts.username is not None or parts.password is not None:
        raise WebhookRejectedError(url, "credentials in the URL are not allowed; put a token "
                                        "in the path or query instead")
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return scheme, parts.hostname, port or (443 if scheme == "https" else 80), path


def check_url(url: str, *, allow_private: bool = False,
              resolver: Resolver | None = None) -> Target:
    """Check ``url`` against the policy; return the `Target` to connect to.

    Raises `WebhookRejectedError` (with the reason) for another scheme than http/https, a
    malformed URL, a name that does not resolve, or (unless ``allow_private``) any resolved
    address that `address_refusal` refuses. ``resolver`` defaults to `system_resolver`.
    """
    scheme, host, port, path = _split(url)
    try:
        literal: IPAddress | None = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        literal = None
    if literal is not None:
        addresses = [str(literal)]
    else:
        try:
            addresses = (resolver or system_resolver)(host, port)
        except OSError as exc:
            raise WebhookRejectedError(url, f"host {host!r} does not resolve ({exc})") from None
        if not addresses:
            raise WebhookRejectedError(url, f"host {host!r} resolves to no address")
    if not allow_private:
        for address in addresses:
            if (why := address_refusal(address)) is not None:
                raise WebhookRejectedError(
                    url, f"{host!r} resolves to {why}; pass allow_private=True only for "
                         "local development")
    return Target(url=url, scheme=scheme, host=host, port=port, address=addresses[0], path=path)
