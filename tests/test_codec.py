"""Signed pickles, JSON values, secrets and task payloads (`orchestrator.codec`, `.payload`)."""

from __future__ import annotations

import hashlib
import hmac
import os
import pickle
import threading
from pathlib import Path

import pandas as pd
import pytest

from ironforge_nb.errors import ConfigError, SignatureError, TaskError
from ironforge_nb.orchestrator import codec
from ironforge_nb.orchestrator.payload import decode_payload, encode_payload

SECRET = b"test-secret"


class Canary:
    """Unpickling this creates a file: proof that something was unpickled."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self) -> tuple[object, ...]:
        return (Path.touch, (self.path,))


def test_signed_pickle_round_trips() -> None:
    """A signed value comes back equal after verification."""
    assert codec.loads(codec.dumps({"a": (1, 2)}, SECRET), SECRET) == {"a": (1, 2)}


def test_dataframe_round_trips() -> None:
    """A pandas DataFrame survives encode/decode in pickle mode unchanged."""
    frame = pd.DataFrame({"x": [1, 2], "y": ["a", "b"]})
    blob = codec.encode_value(frame, SECRET, json_mode=False)
    pd.testing.assert_frame_equal(codec.decode_value(blob, SECRET), frame)


def test_tampered_blob_is_refused_before_unpickling(tmp_path: Path) -> None:
    """Changing one byte of a signed pickle raises SignatureError and unpickles nothing."""
    canary = tmp_path / "canary"
    blob = bytearray(codec.dumps("harmless", SECRET))
    forged = bytes(blob[: -len(b"harmless") - 10]) + pickle.dumps(Canary(canary))
    with pytest.raises(SignatureError, match="does not match"):
        codec.loads(forged, SECRET)
    assert not canary.exists()


def test_wrong_secret_is_refused() -> None:
    """A blob signed with another secret does not verify."""
    with pytest.raises(SignatureError):
        codec.loads(codec.dumps(1, b"other"), SECRET)


def test_unsigned_pickle_is_refused(tmp_path: Path) -> None:
    """A raw pickle (no signature header) is never unpickled, even by decode_value."""
    canary = tmp_path / "canary"
    with pytest.raises(SignatureError, match="not signed"):
        codec.decode_value(pickle.dumps(Canary(canary)), SECRET)
    assert not canary.exists()


def test_verify_without_secret_is_a_signature_error() -> None:
    """With no secret configured a worker cannot verify, so it refuses."""
    with pytest.raises(SignatureError, match="IRONFORGE_SECRET"):
        codec.loads(codec.dumps(1, SECRET), None)


def test_require_secret_explains_how_to_configure_one() -> None:
    """The missing-secret error names ifn.connect() and IRONFORGE_SECRET."""
    with pytest.raises(ConfigError, match=r"ifn\.connect\(\).*IRONFORGE_SECRET"):
        codec.require_secret(None, "submitting notebook functions")


def test_secret_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """IRONFORGE_SECRET is read as bytes; unset or empty means no secret."""
    monkeypatch.setenv(codec.SECRET_ENV, "abc")
    assert codec.secret_from_env() == b"abc"
    monkeypatch.setenv(codec.SECRET_ENV, "")
    assert codec.secret_from_env() is None


def test_default_secret_prefers_the_one_set(monkeypatch: pytest.MonkeyPatch) -> None:
    """A secret set in the process wins over the environment's; None falls back to it."""
    monkeypatch.setenv(codec.SECRET_ENV, "from-env")
    codec.set_default_secret("set-here")
    try:
        assert codec.default_secret() == b"set-here"
    finally:
        codec.set_default_secret(None)
    assert codec.default_secret() == b"from-env"


@pytest.mark.parametrize(("value", "plain"), [
    ({"a": [1, 2.5, None, True, "x"]}, True),
    ((1, 2), False),
    ({1: "int key"}, False),
    (float("nan"), False),
    ({1, 2}, False),
])
def test_is_plain(value: object, plain: bool) -> None:
    """Only values that JSON round-trips exactly count as plain."""
    assert codec.is_plain(value) is plain


def test_json_mode_values_are_json() -> None:
    """In JSON mode a value is stored as JSON text, decoded without a secret."""
    blob = codec.encode_value({"n": [1, 2]}, None, json_mode=True)
    assert blob == b'{"n":[1,2]}'
    assert codec.decode_value(blob, None, json_only=True) == {"n": [1, 2]}


def test_json_mode_refuses_non_json_results() -> None:
    """A JSON-mode task returning a tuple gets a TaskError naming the type."""
    with pytest.raises(TaskError, match="tuple"):
        codec.encode_value((1, 2), None, json_mode=True)


def test_an_unpicklable_result_and_a_missing_secret_are_told_apart() -> None:
    """A task result cloudpickle refuses is the task's TaskError; a worker without a secret
    is a ConfigError saying how to configure one, whatever the result."""
    with pytest.raises(TaskError, match=r"result of task 'load' cannot be pickled"):
        codec.encode_result(threading.Lock(), SECRET, json_mode=False, job_id="r.0", task="load")
    with pytest.raises(ConfigError, match="signing secret"):
        codec.encode_result(1, None, json_mode=False, job_id="r.0", task="load")
    assert codec.encode_result([1], None, json_mode=True, job_id="r.0", task="load") == b"[1]"


def test_json_only_reader_refuses_signed_pickles() -> None:
    """A JSON-only reader refuses even a correctly signed pickle."""
    with pytest.raises(SignatureError, match="JSON-only"):
        codec.decode_value(codec.dumps(1, SECRET), SECRET, json_only=True)


def test_code_digest_is_the_hash_of_the_signed_blob() -> None:
    """The code key's digest is the SHA-256 of what is stored, the same for the same function."""
    digest, blob = codec.code_blob(len, SECRET)
    assert digest == hashlib.sha256(blob).hexdigest()
    assert codec.code_blob(len, SECRET)[0] == digest
    assert codec.code_blob(len, b"other")[0] != digest


def test_payload_with_pickled_part_round_trips() -> None:
    """Non-JSON arguments travel in a signed part after the JSON line."""
    data = encode_payload({"run": "r", "task": "t", "path": "m:f", "item_param": "x"},
                          {"item": (1, 2)}, SECRET)
    head, _, _ = data.partition(b"\n")
    assert b'"blob":1' in head
    assert decode_payload(data, SECRET, "j").item == (1, 2)


def test_payload_that_is_a_raw_pickle_is_refused(tmp_path: Path) -> None:
    """A job payload that is not JSON (e.g. a planted pickle) raises SignatureError."""
    canary = tmp_path / "canary"
    with pytest.raises(SignatureError, match="raw pickles"):
        decode_payload(pickle.dumps(Canary(canary)), SECRET, "j")
    assert not canary.exists()


def test_json_only_refuses_shipped_code() -> None:
    """A JSON-only worker refuses a payload whose function is pickled code."""
    data = encode_payload({"run": "r", "task": "t", "code": "ab"}, {}, SECRET)
    with pytest.raises(SignatureError, match="JSON-only"):
        decode_payload(data, SECRET, "j", json_only=True)


def test_payload_arguments_follow_the_binding_rule() -> None:
    """Parents, gathers with keys, item, constants and run params land in their parameters."""
    data = encode_payload({"run": "r", "task": "t", "path": "m:f",
                           "parents": {"a": "j0"}, "gathers": {"g": ["j1", "j2"]},
                           "gather_keys": {"g": ["x", "y"]}, "item_param": "it", "item": 7,
                           "consts": {"c": 3}, "need": ["day"], "optional": ["opt"]},
                          {}, None)
    payload = decode_payload(data, None, "j")
    args, kwargs = payload.arguments({"j0": 0, "j1": 1, "j2": 2}, {"day": "mon"})
    assert args == []
    assert kwargs == {"a": 0, "g": {"x": 1, "y": 2}, "it": 7, "c": 3, "day": "mon"}


def test_missing_run_param_is_a_task_error() -> None:
    """A task asking for a run param the run lacks fails with a TaskError naming it."""
    data = encode_payload({"run": "r", "task": "t", "path": "m:f", "need": ["day"]}, {}, None)
    with pytest.raises(TaskError, match="day"):
        decode_payload(data, None, "j").arguments({}, {})


def test_the_keyed_mac_is_hmac_sha256() -> None:
    """`codec._mac` (the keyed state made once per secret, copied per message) gives exactly
    HMAC-SHA256, for several secrets in turn (a cached state is never reused for another
    secret), empty and long messages; a signed blob still verifies and a flipped byte fails."""
    keys = [b"k" * 64, b"short", os.urandom(100), b"k" * 64]
    for key in keys:
        for data in (b"", b"x", os.urandom(10_000)):
            assert codec._mac(key, data) == hmac.digest(key, data, "sha256")
    blob = codec.sign(b"payload", keys[0])
    assert codec.verify(blob, keys[0]) == b"payload"
    with pytest.raises(SignatureError):
        codec.verify(blob, keys[1])
    with pytest.raises(SignatureError):
        codec.verify(blob[:-1] + b"X", keys[0])
