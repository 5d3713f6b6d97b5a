"""Webhooks without a dispatcher: the SSRF policy, signing and `verify`, the endpoint registry.

Non-loopback addresses are only ever checked through `check_url` with an injected resolver:
nothing here opens a connection (the delivery tests prove that with a canary listener).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import socket
import time
from typing import Any

import pytest

import ironforge_nb as ifn
from ironforge_nb.errors import (
    InvalidOptionError,
    WebhookNotFoundError,
    WebhookRejectedError,
    WebhookVerificationError,
)
from ironforge_nb.queue import RedisConfig
from ironforge_nb.webhooks import check_url, new_secret, verify
from ironforge_nb.webhooks.policy import address_refusal
from ironforge_nb.webhooks.signing import headers_for


def resolving_to(*addresses: str) -> Any:
    """A resolver that answers ``addresses`` for any name (no DNS query is made)."""
    return lambda host, port: list(addresses)


def hmac_signature(secret: str, msg_id: str, timestamp: str, body: bytes) -> str:
    """The spec's signature, computed independently of the product (a few lines of HMAC)."""
    key = base64.b64decode(secret.removeprefix("whsec_"))
    mac = hmac.new(key, f"{msg_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    return "v1," + base64.b64encode(mac).decode()


# -- the SSRF policy -----------------------------------------------------------------------------

PROBES = ["http://127.0.0.1/", "http://[::1]/", "http://169.254.169.254/latest/meta-data/",
          "http://10.0.0.5/", "http://[::ffff:127.0.0.1]/", "http://0.0.0.0/",
          "http://[::ffff:a9fe:a9fe]/", "http://192.168.1.1/", "http://172.16.0.1/",
          "http://100.64.0.1/", "http://[fe80::1]/", "http://[fd00:ec2::254]/",
          "http://224.0.0.1/", "http://[2002:7f00:1::]/", "http://[64:ff9b::a00:5]/",
          "https://[::]/"]


@pytest.mark.parametrize("url", PROBES)
def test_internal_addresses_are_refused(url: str) -> None:
    """Loopback, private, link-local/metadata, CGNAT, multicast, unspecified and IPv4 inside
    IPv6 (mapped, 6to4, NAT64) are refused under the default policy."""
    with pytest.raises(WebhookRejectedError) as err:
        check_url(url, resolver=resolving_to("93.184.216.34"))
    assert "allow_private" in str(err.value) and err.value.url == url


def test_integer_ip_form_is_judged_by_its_address() -> None:
    """``http://2130706433/`` is 127.0.0.1 to the system resolver (a numeric form, no DNS
    query: AI_NUMERICHOST accepts it) and is refused as loopback."""
    numeric = socket.getaddrinfo("2130706433", 80, flags=socket.AI_NUMERICHOST)
    assert {info[4][0] for info in numeric} == {"127.0.0.1"}
    with pytest.raises(WebhookRejectedError, match="loopback"):
        check_url("http://2130706433/")


def test_a_name_resolving_to_a_private_address_is_refused() -> None:
    """A public-looking name is refused when ANY of its addresses is private."""
    with pytest.raises(WebhookRejectedError, match="private"):
        check_url("https://hooks.example.com/x", resolver=resolving_to("93.184.216.34",
                                                                       "10.1.2.3"))


def test_a_public_name_passes_and_keeps_the_checked_address() -> None:
    """The target carries the address that was checked, the name and the path with query."""
    target = check_url("https://hooks.example.com:8443/in?k=1",
                       resolver=resolving_to("93.184.216.34"))
    assert (target.address, target.host, target.port, target.path) == (
        "93.184.216.34", "hooks.example.com", 8443, "/in?k=1")


@pytest.mark.parametrize("url", ["file:///etc/passwd", "gopher://127.0.0.1:6379/_PING",
                                 "ftp://example.com/", "http://", "example.com/hook",
                                 "http://user:pw@example.com/"])
def test_other_schemes_and_malformed_urls_are_refused(url: str) -> None:
    """Only http and https with a host and no credentials, even with allow_private."""
    with pytest.raises(WebhookRejectedError):
        check_url(url, allow_private=True, resolver=resolving_to("93.184.216.34"))


def test_allow_private_admits_loopback() -> None:
    """Local development: allow_private=True lets a loopback receiver through."""
    assert check_url("http://127.0.0.1:9/x", allow_private=True).address == "127.0.0.1"


def test_public_addresses_have_no_refusal() -> None:
    """The policy does not refuse ordinary public IPv4 and IPv6 addresses."""
    assert address_refusal("93.184.216.34") is None
    assert address_refusal("2606:2800:220:1:248:1893:25c8:1946") is None


# -- signing and verify ---------------------------------------------------------------------------

BODY = b'{"type":"job.completed","data":{"job_id":"j1"}}'


def signed(secret: str | list[str], *, at: float | None = None,
           body: bytes = BODY) -> dict[str, str]:
    """Headers of a delivery of ``body`` signed with ``secret`` at time ``at``."""
    keys = [secret] if isinstance(secret, str) else secret
    return headers_for("msg_t_1", int(time.time() if at is None else at), body, keys)


def test_signature_matches_an_independent_hmac() -> None:
    """The header is the spec's v1 HMAC-SHA256 over id.timestamp.body, keyed by the secret's
    decoded bytes, as a few lines of hmac compute it."""
    secret = new_secret()
    headers = signed(secret)
    assert headers["webhook-signature"] == hmac_signature(
        secret, "msg_t_1", headers["webhook-timestamp"], BODY)
    assert verify(headers, BODY, secret) == json.loads(BODY)


def test_new_secrets_have_enough_entropy() -> None:
    """Generated secrets are whsec_ + base64 of 32 random bytes, different each time."""
    a, b = new_secret(), new_secret()
    assert a != b and a.startswith("whsec_")
    assert len(base64.b64decode(a.removeprefix("whsec_"))) == 32


@pytest.mark.parametrize(("case", "check"), [("tampered", "signature"), ("old", "timestamp"),
                                             ("future", "timestamp"), ("wrong", "signature"),
                                             ("missing", "headers"), ("garbled", "headers")])
def test_verify_refuses_and_names_the_check(case: str, check: str) -> None:
    """Tampered body, a timestamp 6 minutes away, another secret, missing or malformed
    headers: refused, with the failed check named."""
    secret = new_secret()
    headers, body = signed(secret), BODY
    if case == "tampered":
        body = BODY.replace(b"j1", b"j2")
    elif case == "old":
        headers = signed(secret, at=time.time() - 360)
    elif case == "future":
        headers = signed(secret, at=time.time() + 360)
    elif case == "wrong":
        secret = new_secret()
    elif case == "missing":
        del headers["webhook-signature"]
    else:
        headers["webhook-signature"] = "v1"
    with pytest.raises(WebhookVerificationError) as err:
        verify(headers, body, secret)
    assert err.value.check == check


def test_verify_accepts_any_of_several_secrets() -> None:
    """A rotation: a delivery signed with the old and the new secret verifies with either."""
    old, new, other = new_secret(), new_secret(), new_secret()
    headers = signed([new, old])
    assert len(headers["webhook-signature"].split(" ")) == 2
    assert verify(headers, BODY, old) and verify(headers, BODY, new)
    assert verify(signed(old), BODY, [new, old])
    with pytest.raises(WebhookVerificationError):
        verify(headers, BODY, other)


@pytest.mark.parametrize("secret", ["abc", "whsec_" + base64.b64encode(b"short").decode(),
                                    "whsec_not base64!"])
def test_bad_secrets_are_refused(secret: str) -> None:
    """A secret must be whsec_ + base64 of at least 24 bytes."""
    with pytest.raises(InvalidOptionError, match="24"):
        verify(signed(new_secret()), BODY, secret)


# -- the registry ---------------------------------------------------------------------------------


def webhook_keys(config: RedisConfig) -> list[bytes]:
    """Every webhook key of the namespace."""
    return sorted(config.client().keys(config.keys.webhooks + "*"))


def test_register_stores_settings_and_route(config: RedisConfig) -> None:
    """An endpoint gets an id, a generated secret, its filter; endpoints() lists it without
    the secret."""
    ep = ifn.webhooks.register("http://127.0.0.1:9/hook", ["job.failed", "run.failed"],
                               allow_private=True, pipeline="sales", config=config)
    assert ep.id.startswith("ep_") and ep.secret.startswith("whsec_")
    assert ep.filters == {"events": ["job.failed", "run.failed"], "pipeline": "sales",
                          "queue": None}
    frame = ifn.webhooks.endpoints(config)
    assert frame.to_dict("records")[0]["url"] == "http://127.0.0.1:9/hook"
    assert ep.secret not in frame.to_string()
    route = config.client().hget(config.keys.hooks.routes, ep.id)
    assert json.loads(route) == ep.filters
    assert ifn.webhooks.get_endpoint(ep.id, config) == ep


@pytest.mark.parametrize(("kwargs", "error"), [
    ({"allow_private": False}, WebhookRejectedError),
    ({"url": "ftp://x/", "allow_private": True}, WebhookRejectedError),
    ({"events": ["job.done"]}, InvalidOptionError),
    ({"events": []}, InvalidOptionError),
    ({"secret": "whsec_c2hvcnQ="}, InvalidOptionError),
    ({"pipeline": "a b"}, ValueError),
])
def test_bad_registrations_write_nothing(config: RedisConfig, kwargs: dict[str, Any],
                                         error: type[Exception]) -> None:
    """SSRF, scheme, unknown event, empty events, short secret, bad name: a clear error and
    no key written."""
    args: dict[str, Any] = {"url": "http://127.0.0.1:9/", "allow_private": True, **kwargs}
    with pytest.raises(error):
        ifn.webhooks.register(args.pop("url"), config=config, **args)
    assert webhook_keys(config) == []


def test_remove_and_unknown_ids(config: RedisConfig) -> None:
    """remove() deletes settings and route; unknown ids raise WebhookNotFoundError."""
    ep = ifn.webhooks.register("http://127.0.0.1:9/", allow_private=True, config=config)
    ifn.webhooks.remove(ep.id, config)
    assert webhook_keys(config) == []
    for call in (lambda: ifn.webhooks.remove(ep.id, config),
                 lambda: ifn.webhooks.rotate_secret(ep.id, config=config),
                 lambda: ifn.webhooks.get_endpoint(ep.id, config),
                 lambda: ifn.webhooks.replay("1-" + ep.id, config)):
        with pytest.raises(WebhookNotFoundError, match=ep.id):
            call()


def test_rotate_keeps_the_old_secret_for_the_grace_period(config: RedisConfig) -> None:
    """After a rotation both secrets sign; with grace=0 the old one stops at once."""
    ep = ifn.webhooks.register("http://127.0.0.1:9/", allow_private=True, config=config)
    rotated = ifn.webhooks.rotate_secret(ep.id, grace=3600, config=config)
    assert rotated.secret != ep.secret and rotated.secrets == (rotated.secret, ep.secret)
    again = ifn.webhooks.rotate_secret(ep.id, grace=0, config=config)
    assert again.secrets == (again.secret, ep.secret)  # the first grace period still runs
    assert rotated.secret not in again.secrets


def test_retry_after_in_seconds_or_as_a_date() -> None:
    """Retry-After is read as seconds or as an HTTP date (relative to now); junk is ignored."""
    from ironforge_nb.webhooks.sender import parse_retry_after

    assert parse_retry_after("120") == 120.0
    now = 1_445_412_400.0  # 2015-10-21 07:26:40 UTC
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now=now) == 80.0
    assert parse_retry_after("soon") is None and parse_retry_after(None) is None
