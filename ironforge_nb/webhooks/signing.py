"""Secrets, signatures and `verify`, following the Standard Webhooks specification.

Signing and verifying use the spec's own Python package, ``standardwebhooks`` (its
``Webhook.sign`` and ``Webhook.verify``): receivers that verify with it, or with any other
implementation of the spec, agree with us by construction. A signature is ``v1,`` + base64 of
HMAC-SHA256 over ``<webhook-id>.<webhook-timestamp>.<body>``, keyed with the base64-decoded
part of a ``whsec_...`` secret; several space-separated signatures (one per live secret) let a
secret rotate without a moment where receivers refuse.
"""

from __future__ import annotations

import base64
import binascii
import json
import secrets as _random
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from standardwebhooks.webhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError as _LibError

from ironforge_nb.errors import InvalidOptionError, WebhookVerificationError

__all__ = ["MIN_SECRET_BYTES", "TOLERANCE_S", "headers_for", "new_secret", "sign",
           "validate_secret", "verify"]

MIN_SECRET_BYTES = 24  # the spec's minimum; new secrets have 32
TOLERANCE_S = 300  # a timestamp further than this from now is refused (the library's 5 minutes)
_PREFIX = "whsec_"


def new_secret() -> str:
    """A fresh secret: ``whsec_`` + base64 of 32 random bytes."""
    return _PREFIX + base64.b64encode(_random.token_bytes(32)).decode()


def validate_secret(secret: object) -> str:
    """Return ``secret`` if it is ``whsec_<base64 of >= 24 bytes>``, else raise
    `InvalidOptionError` saying what is wrong."""
    expected = f"'{_PREFIX}' + base64 of at least {MIN_SECRET_BYTES} random bytes"
    if not isinstance(secret, str) or not secret.startswith(_PREFIX):
        raise InvalidOptionError("secret", "<hidden>", expected)
    try:
        key = base64.b64decode(secret[len(_PREFIX):], validate=True)
    except (binascii.Error, ValueError):
        raise InvalidOptionError("secret", "<hidden>", expected + " (not valid base64)") from None
    if len(key) < MIN_SECRET_BYTES:
        raise InvalidOptionError("secret", "<hidden>",
                                 f"{expected} (it decodes to {len(key)} bytes)")
    return secret


def sign(msg_id: str, timestamp: int, body: bytes, secrets: Sequence[str]) -> str:
    """The ``webhook-signature`` header: one ``v1,`` signature per secret, space-separated."""
    when = datetime.fromtimestamp(timestamp, tz=UTC)
    text = body.decode()
    return " ".join(Webhook(s).sign(msg_id, when, text) for s in secrets)


def headers_for(msg_id: str, timestamp: int, body: bytes, secrets: Sequence[str]) -> dict[str, str]:
    """The headers of one delivery attempt (a fresh timestamp and signature per attempt)."""
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": sign(msg_id, timestamp, body, secrets),
        "content-type": "application/json",
    }


def _check_of(exc: Exception) -> str:
    text = str(exc)
    if "headers" in text.lower():
        return "headers"
    if "timestamp" in text.lower() or "Invalid Signature Headers" in text:
        return "timestamp"
    return "signature"


def _well_formed(signature: str) -> bool:
    """Whether a ``webhook-signature`` header is ``<version>,<base64>`` entries separated by
    spaces."""
    for entry in signature.split(" "):
        version, comma, sig = entry.partition(",")
        if not (version and comma and sig):
            return False
        try:
            base64.b64decode(sig, validate=True)
        except (binascii.Error, ValueError):
            return False
    return True


def _malformed() -> WebhookVerificationError:
    return WebhookVerificationError(
        "headers", "malformed webhook-signature header (expected 'v1,<base64>' entries "
        "separated by spaces)")


def verify(headers: Mapping[str, str], body: bytes | str, secret: str | Sequence[str]) -> Any:
    """Check a received webhook and return its JSON payload; for receivers.

    ``headers`` as received (any case), ``body`` the raw bytes (verify before parsing),
    ``secret`` one ``whsec_...`` secret or several (during a rotation, the old and the new).
    The checks are the spec's, done by the ``standardwebhooks`` package: the three headers are
    present, the timestamp is within 5 minutes of now, and a ``v1`` signature matches one of
    the secrets (compared in constant time). Raises `WebhookVerificationError` whose ``.check``
    names the check that failed: ``'headers'``, ``'timestamp'`` or ``'signature'``.
    """
    keys = [validate_secret(secret)] if isinstance(secret, str) else [
        validate_secret(s) for s in secret]
    if not keys:
        raise InvalidOptionError("secret", keys, "a 'whsec_...' secret or a list of them")
    data = body.decode() if isinstance(body, bytes) else body
    plain = {str(k): str(v) for k, v in headers.items()}
    signature = next((v for k, v in plain.items() if k.lower() == "webhook-signature"), "")
    if signature and not _well_formed(signature):  # checked here: standardwebhooks >= 1.3
        raise _malformed()                         # takes it for a signature that differs
    for key in keys:
        try:
            Webhook(key).verify(data, plain, json_parse=False)
        except _LibError as exc:
            check = _check_of(exc)
            if check != "signature":  # the same for every secret
                raise WebhookVerificationError(check, str(exc)) from None
            continue
        except ValueError:  # a signature entry without 'v1,' (standardwebhooks < 1.3)
            raise _malformed() from None
        return json.loads(data)
    raise WebhookVerificationError(
        "signature", f"no signature matches {'the secret' if len(keys) == 1 else 'any secret'}"
                     " (the body was changed, or the secret is not the endpoint's)")
