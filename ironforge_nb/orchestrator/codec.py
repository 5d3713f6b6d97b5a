"""Encoding of everything a run ships through Redis: signed pickles, JSON values, the code store.

Two encodings share one namespace of bytes, told apart by their first byte:

* **signed pickle**: ``SIGNED_MAGIC + HMAC-SHA256(secret, data) + data`` where ``data`` is a
  cloudpickle dump. Functions defined in a notebook, non-JSON arguments and results travel
  this way. `loads` checks the MAC (in constant time) before unpickling anything, so an
  unsigned or tampered blob raises `SignatureError` and is never unpickled.
* **JSON**: UTF-8 JSON text (never starts with a NUL byte). The JSON mode uses nothing else,
  and a reader in JSON-only mode (`decode_value(..., json_only=True)`) refuses signed pickles.

The secret: ``ifn.connect()`` on the embedded default generates one with `new_secret` and calls
`set_default_secret` (and hands it to its local workers through the ``IRONFORGE_SECRET``
environment variable); a remote setup sets ``IRONFORGE_SECRET`` on both sides.
`default_secret` returns the secret set in this process, else the environment's (else None).

Code store: a function is stored once per content hash under ``Keys.code(digest)``, where
``digest`` is the SHA-256 of its signed blob (so two secrets never share a key). `load_code`
checks that the blob read from a key hashes to that key's digest, besides its MAC: a
blob that is validly signed but stored under another function's key (someone with write access
to Redis swapping code blobs) is refused, never run in the other function's place.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import math
import os
import secrets
from collections.abc import Callable
from typing import Any

from ironforge_nb.errors import ConfigError, InvalidOptionError, SignatureError, TaskError

__all__ = [
    "MAC_SIZE",
    "SECRET_ENV",
    "SIGNED_MAGIC",
    "code_blob",
    "decode_value",
    "default_secret",
    "dumps",
    "encode_result",
    "encode_value",
    "is_plain",
    "is_signed",
    "loads",
    "new_secret",
    "require_secret",
    "secret_from_env",
    "set_default_secret",
    "sign",
    "verify",
]

SECRET_ENV = "IRONFORGE_SECRET"
SIGNED_MAGIC = b"\x00IFS1"  # JSON text never starts with NUL: the two encodings cannot clash
MAC_SIZE = 32  # bytes of an HMAC-SHA256 digest
_HEAD = len(SIGNED_MAGIC) + MAC_SIZE
_PLAIN_SCALARS = (str, int, bool, type(None))
_BUILTIN_SCALARS = frozenset({type(None), bool, int, float, str, bytes})  # pickled by value

_default: list[bytes] = []


def new_secret() -> bytes:
    """A fresh random secret (64 hex characters, so it also fits in an environment variable)."""
    return secrets.token_hex(32).encode()


def secret_from_env() -> bytes | None:
    """The secret in ``IRONFORGE_SECRET`` (UTF-8 bytes), or None when unset or empty."""
    value = os.environ.get(SECRET_ENV, "")
    return value.encode() if value else None


def set_default_secret(secret: bytes | str | None) -> None:
    """Make ``secret`` this process's signing secret (``ifn.connect()`` calls it); None forgets."""
    _default.clear()
    if secret is not None:
        _default.append(secret.encode() if isinstance(secret, str) else bytes(secret))


def default_secret() -> bytes | None:
    """The secret set by `set_default_secret`, else `secret_from_env()`."""
    return _default[0] if _default else secret_from_env()


def require_secret(secret: bytes | None, what: str) -> bytes:
    """``secret``, or a `ConfigError` saying how to configure one (pickles need a signature)."""
    if not secret:
        raise ConfigError(
            f"{what} needs a signing secret, and none is configured: call ifn.connect() "
            f"(it generates one for its local workers) or set {SECRET_ENV} to the same value "
            "in the notebook and on every worker; or give every task as a "
            "'package.module:function' path with JSON arguments (JSON mode needs no secret)"
        )
    return secret


# ---------------------------------------------------------------------- signing


_KEYED: dict[bytes, Any] = {}  # secret -> its HMAC-SHA256 state, keyed once (see `_mac`)


def _mac(secret: bytes, data: bytes) -> bytes:
    """HMAC-SHA256 of ``data`` under ``secret``: the state keyed with the secret is made once
    and copied for each message. ``hmac.digest`` looks the hash up by name and keys it on
    every call, which costs an executor's task 4-8 us each time (its caches are cold between
    two tasks; 1.6 us in a tight loop), twice per task of a chain (the parent's result
    verified, its own signed)."""
    keyed = _KEYED.get(secret)
    if keyed is None:
        if len(_KEYED) >= 8:  # a process sees one secret, or a few (tests): stay bounded
            _KEYED.clear()
        keyed = _KEYED[secret] = hmac.new(secret, digestmod=hashlib.sha256)
    mac = keyed.copy()
    mac.update(data)
    digest: bytes = mac.digest()
    return digest


def sign(data: bytes, secret: bytes) -> bytes:
    """``data`` prefixed with the magic bytes and its HMAC-SHA256 under ``secret``."""
    return SIGNED_MAGIC + _mac(secret, data) + data


def is_signed(blob: bytes) -> bool:
    """True when ``blob`` is in the signed-pickle encoding (it may still be forged)."""
    return blob[: len(SIGNED_MAGIC)] == SIGNED_MAGIC


def verify(blob: bytes, secret: bytes | None, job_id: str | None = None) -> bytes:
    """The signed data of ``blob`` once its MAC checks out, else `SignatureError`."""
    if not is_signed(blob) or len(blob) < _HEAD:
        raise SignatureError(job_id, "the data is not signed (no IronForge signature header)")
    if not secret:
        raise SignatureError(
            job_id, f"no secret is configured here to check the signature: set {SECRET_ENV}")
    data = blob[_HEAD:]
    expected = _mac(secret, data)
    if not hmac.compare_digest(expected, blob[len(SIGNED_MAGIC):_HEAD]):
        raise SignatureError(
            job_id, "the HMAC-SHA256 signature does not match: the data was tampered with or "
            f"signed with another secret (check {SECRET_ENV} on both sides)")
    return data


def dumps(value: Any, secret: bytes) -> bytes:
    """``value`` pickled with cloudpickle (notebook functions by value) and signed; builtin
    scalars (None, numbers, text) with the standard pickler, which writes the same bytes
    without cloudpickle's per-call set-up."""
    if type(value) in _BUILTIN_SCALARS:
        import pickle

        return sign(pickle.dumps(value, protocol=5), secret)
    import cloudpickle

    return sign(cloudpickle.dumps(value, protocol=5), secret)


_REBUILD = "pass what a worker can rebuild it from instead: plain data, a file path, a URL"


def dumps_input(value: Any, secret: bytes, what: str, fix: str = _REBUILD) -> bytes:
    """`dumps` of something the user hands to a run (``what``: params, a task's function or
    constants): a value cloudpickle cannot serialize (a generator, an open file, a lock...)
    raises `InvalidOptionError` naming it, the dict key holding it, and ``fix``."""
    try:
        return dumps(value, secret)
    except Exception as exc:
        if isinstance(value, dict):
            for key, item in value.items():
                dumps_input(item, secret, f"{what}[{key!r}]", fix)
        raise InvalidOptionError(
            what, value, f"a value cloudpickle can serialize (it says: {exc}); {fix}") from exc


def loads(blob: bytes, secret: bytes | None, job_id: str | None = None) -> Any:
    """Verify, then unpickle (nothing is unpickled unless the signature is right)."""
    import pickle

    data = verify(blob, secret, job_id)
    return pickle.loads(data)  # safe: verified by HMAC just above


# ---------------------------------------------------------------------- values


def is_plain(value: Any) -> bool:
    """True when JSON round-trips ``value`` exactly: str/int/bool/None, finite floats, lists
    and str-keyed dicts of those (tuples, sets, NaN or int keys would come back changed)."""
    kind = type(value)
    if kind in _PLAIN_SCALARS:
        return True
    if kind is float:
        return math.isfinite(value)
    if kind is list:
        return all(map(is_plain, value))
    if kind is dict:
        return all(type(k) is str for k in value) and all(map(is_plain, value.values()))
    return False


def encode_value(value: Any, secret: bytes | None, *, json_mode: bool,
                 job_id: str | None = None) -> bytes:
    """JSON bytes in JSON mode (`TaskError` if ``value`` is not plain JSON), else a signed
    pickle (plain values too: the notebook must get back exactly what the task returned)."""
    if json_mode:
        if not is_plain(value):
            raise TaskError(
                job_id, f"a JSON-mode task must return JSON data (str, int, float, bool, None, "
                f"list, dict with str keys); it returned {type(value).__name__}")
        return json.dumps(value, separators=(",", ":")).encode()
    return dumps(value, require_secret(secret, "storing a pickled value"))


def encode_result(value: Any, secret: bytes | None, *, json_mode: bool, job_id: str,
                  task: str) -> bytes:
    """`encode_value` of what ``task`` returned: a value cloudpickle cannot serialize raises
    `TaskError` naming the task and what to return instead; a missing secret still raises
    `ConfigError` (it is the worker's configuration, not the task's result, that is wrong)."""
    if json_mode:
        return encode_value(value, secret, json_mode=True, job_id=job_id)
    key = require_secret(secret, "storing a pickled value")
    try:
        return dumps(value, key)
    except Exception as exc:  # cloudpickle cannot serialize what the task returned
        raise TaskError(job_id, f"the result of task {task!r} cannot be pickled ({exc}); "
                                "return plain data, or write it to a file and return the "
                                "path") from exc


def decode_value(blob: bytes, secret: bytes | None, job_id: str | None = None, *,
                 json_only: bool = False) -> Any:
    """Decode what `encode_value` made; a signed pickle is verified first, and refused with
    `SignatureError` when ``json_only``. A reference to a big result (`store.is_ref`) is
    followed: its file is read, checked and decoded."""
    if blob[:1] == b"\x00" and blob[:5] == b"\x00IFR1":
        from ironforge_nb.orchestrator.store import load_ref

        return load_ref(blob, secret, job_id, json_only=json_only)
    if is_signed(blob) or blob[:1] == b"\x80":  # \x80: a raw pickle planted without signature
        if json_only:
            raise SignatureError(
                job_id, "this reader runs in JSON-only mode and never unpickles data")
        return loads(blob, secret, job_id)
    try:
        return json.loads(blob)
    except ValueError as exc:
        raise TaskError(job_id, f"stored value is neither signed pickle nor JSON: {exc}") from exc


# ---------------------------------------------------------------------- code store


def code_blob(fn: Callable[..., Any], secret: bytes) -> tuple[str, bytes]:
    """``(digest, signed blob)`` of a function shipped by value; digest = SHA-256 of the blob."""
    blob = dumps_input(fn, secret, "fn", "open connections, files and locks inside the "
                       "function instead of using ones made outside it")
    return hashlib.sha256(blob).hexdigest(), blob


def load_code(blob: bytes, digest: str, secret: bytes | None, job_id: str | None = None) -> Any:
    """The function in ``blob``, read from the code store under ``digest``: the blob must carry
    a valid MAC and hash to that digest (it is bound to its key), else `SignatureError`; nothing
    is unpickled before both checks pass."""
    import pickle

    data = verify(blob, secret, job_id)
    actual = hashlib.sha256(blob).hexdigest()
    if not hmac.compare_digest(actual, digest):
        raise SignatureError(job_id, f"the code blob stored under digest {digest[:12]} hashes "
                                     f"to {actual[:12]}: it is not the code the task names")
    return pickle.loads(data)  # safe: verified by HMAC and bound to its key just above
