"""Running one task job: the function a worker calls for each claimed job of a run.

Contract with the worker (``ironforge_nb.worker``), which calls `execute_task` in a child
process for each `Lease` it holds and then completes or fails the job with its lease token::

    try:
        result = execute_task(config, lease, secret, json_only=json_only)
    except SignatureError as exc:      # unsigned/tampered pickle, or a pickle in JSON-only mode:
        queue.fail(lease, str(exc), retry=False)   # fail for good; nothing was executed
    except BaseException:              # TaskError, SizeLimitError, anything from user code
        queue.fail(lease, traceback.format_exc())  # retried while attempts remain
    else:
        queue.complete(lease, result)

* ``secret`` is `codec.default_secret()` in the worker (``IRONFORGE_SECRET``, or the secret
  ``ifn.connect()`` hands to its local workers); None is fine for JSON-mode runs.
* The per-attempt timeout is in ``lease.meta["timeout"]`` (seconds, as text; absent = none),
  also in the payload. Enforcing it (stopping the child) is the worker's job.
* The returned bytes are always a value (an encoded ``None`` too) and within
  ``config.max_result_bytes`` (else `SizeLimitError`, raised before anything is written).

Security: the payload is JSON; every pickled byte string (the function from the code store,
non-JSON arguments, parents' pickled results, pickled run params) is HMAC-verified before it is
unpickled (`codec.loads`). With ``json_only=True`` any pickled part is refused outright.
"""

from __future__ import annotations

import importlib
import time
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import redis.exceptions

from ironforge_nb.errors import SizeLimitError, TaskError
from ironforge_nb.orchestrator import codec
from ironforge_nb.orchestrator.payload import TaskPayload, decode_payload
from ironforge_nb.queue.borrowing import read_results
from ironforge_nb.queue.config import RedisConfig
from ironforge_nb.queue.records import Lease

__all__ = ["execute_task", "import_path", "load_function"]

# (digest, secret) -> function: the code store is content-addressed, so a verified function can
# be reused by every later task of any run (keyed by secret too: a cache hit never skips a check
# that a different secret would have failed)
_functions: dict[tuple[str, bytes], Callable[..., Any]] = {}
_FAILED_PARENT = frozenset({b"failed", b"cancelled", b"skipped"})
_CUT = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError)
_READS = 5  # tries of an engine read before the task's code runs (backoff 0.05 s doubling)
T = TypeVar("T")


def execute_task(config: RedisConfig, lease: Lease, secret: bytes | None, *,
                 json_only: bool = False) -> bytes | None:
    """Decode the task payload of ``lease`` (HMAC-verified before any unpickling), load the
    parents' results it needs, call the function with its arguments (parents' results by
    parameter name, gathered map results, map item, run params, constants) and return the
    encoded (signed, in pickle mode) result to pass to ``Queue.complete``.

    The parents' results come from ``lease.inputs`` (the small ones, brought by the claim);
    only the others are read from Redis, in one round trip. All go through the same decoding
    (and signature check).

    Raises `SignatureError` (the job must fail for good; nothing was executed), `TaskError`
    (inputs unusable or result not encodable), `SizeLimitError` (result over
    ``config.max_result_bytes``) or whatever the task itself raises.
    """
    job_id = lease.job_id
    payload = decode_payload(lease.payload, secret, job_id, json_only=json_only)
    fn = _again(lambda: load_function(config, payload, secret, job_id))
    results, run_params = _again(lambda: _inputs(config, payload, secret, job_id, json_only,
                                                 lease.inputs))
    try:
        args, kwargs = payload.arguments(results, run_params)
    except TaskError as exc:
        raise TaskError(job_id, str(exc).split(": ", 1)[-1]) from None
    value = fn(*args, **kwargs)
    encoded: list[bytes] = []

    def blob_of() -> bytes:
        if not encoded:
            encoded.append(codec.encode_result(value, secret, json_mode=payload.json_mode,
                                               job_id=job_id, task=payload.task))
        return encoded[0]

    if config.result_store:  # big results go to the store; Redis keeps a reference
        from ironforge_nb.orchestrator.store import maybe_store

        ref = maybe_store(config, value, blob_of, run=payload.run, task=payload.task,
                          job=job_id, token=lease.token, json_mode=payload.json_mode)
        if ref is not None:
            return ref
    blob = blob_of()
    if len(blob) > config.max_result_bytes:
        raise SizeLimitError(f"result of task {payload.task!r} (job {job_id})", len(blob),
                             config.max_result_bytes,
                             "return a smaller value (e.g. write the data to a file or a "
                             "database and return its path), or raise "
                             "RedisConfig.max_result_bytes")
    return blob


def _again(read: Callable[[], T]) -> T:
    """``read()`` (the engine's own reads before the task runs: its code, its inputs), tried
    again after a lost connection. The client retries each command, but a connection cut again
    as it is taken from the pool fails outside those retries; a task must not fail for that
    (its code has not even started), so the read gets `_READS` tries in all, with backoff."""
    for attempt in range(_READS):
        try:
            return read()
        except _CUT:
            if attempt + 1 == _READS:
                raise
            time.sleep(0.05 * 2 ** attempt)
    raise AssertionError("unreachable")  # pragma: no cover


def load_function(config: RedisConfig, payload: TaskPayload, secret: bytes | None,
                  job_id: str) -> Callable[..., Any]:
    """The task's function: imported by path, or fetched from the code store and verified."""
    if payload.path is not None:
        return import_path(payload.path, job_id)
    digest = payload.code or ""
    key = (digest, secret or b"")
    fn = _functions.get(key)
    if fn is None:
        blob: bytes | None = config.client().get(config.keys.code(digest))
        if blob is None:
            raise TaskError(job_id, f"the code of task {payload.task!r} (digest {digest[:12]}) "
                                    "is missing from the code store")
        loaded = codec.load_code(blob, digest, secret, job_id)
        if not callable(loaded):
            raise TaskError(job_id, f"code {digest[:12]} is not a function")
        fn = _functions[key] = loaded
    return fn


def import_path(path: str, job_id: str | None = None) -> Callable[..., Any]:
    """The callable at ``"package.module:function"`` (attributes may be dotted)."""
    module_name, _, attr = path.partition(":")
    try:
        obj: Any = importlib.import_module(module_name)
        for part in attr.split("."):
            obj = getattr(obj, part)
    except (ImportError, AttributeError) as exc:
        raise TaskError(job_id, f"cannot import {path!r} on this worker: {exc}") from exc
    if not callable(obj):
        raise TaskError(job_id, f"{path!r} is not callable")
    fn: Callable[..., Any] = obj
    return fn


def _inputs(config: RedisConfig, payload: TaskPayload, secret: bytes | None, job_id: str,
            json_only: bool, inline: Mapping[str, bytes]
            ) -> tuple[dict[str, Any], dict[str, Any]]:
    """Parents' results (by job id) and run params: the ``inline`` ones (claimed with the
    lease) from memory, the others in one round trip (none when all are inline)."""
    ids = payload.job_ids()
    wants_params = bool(payload.need or payload.optional)
    if not ids and not wants_params:
        return {}, {}
    cached = {j: b for j in ids if (b := inline.get(j)) is not None}
    fetched, raw = _read(config, payload.run, [j for j in ids if j not in cached], wants_params)
    rest = iter(fetched)
    blobs = [cached[j] if j in cached else next(rest) for j in ids]
    missing = [j for j, b in zip(ids, blobs, strict=True) if b is None]
    if missing:
        found = _missing_parents(config, missing, job_id)
        blobs = [found[j] if b is None else b for j, b in zip(ids, blobs, strict=True)]
    results: dict[str, Any] = {}
    for jid, blob in zip(ids, blobs, strict=True):
        results[jid] = (None if blob is None else
                        codec.decode_value(blob, secret, job_id, json_only=json_only))
    params: dict[str, Any] = {}
    if raw:
        params = codec.decode_value(raw, secret, job_id, json_only=json_only)
    return results, params


def _read(config: RedisConfig, run: str, ids: list[str], params: bool
          ) -> tuple[list[bytes | None], bytes | None]:
    """The stored results of ``ids`` and (when ``params``) the run's params blob, in one
    round trip at most: a plain MGET when no params are wanted (GETs in a pipeline otherwise:
    cluster pipelines refuse MGET)."""
    client = config.client()
    keys = [config.keys.result(j) for j in ids]
    if not params:
        return (list(client.mget(keys)) if keys else []), None
    pipe = client.pipeline(transaction=False)
    for key in keys:
        pipe.get(key)
    pipe.hget(config.keys.run(run).meta, "params")
    *blobs, raw = pipe.execute()
    return blobs, raw


def _missing_parents(config: RedisConfig, missing: list[str], job_id: str
                     ) -> dict[str, bytes | None]:
    """The results of the parents a first read did not find: a parent served from the cache
    holds none of its own and reads the result of the job its ``source_job`` names
    (submit_run.lua); None for parents that failed (their child runs only under
    ``allow_failure``); a `TaskError` for a completed parent whose result is gone (expired)."""
    found = read_results(config.client(), config.keys, missing, ("status",))
    gone = [j for j, ((status,), blob) in zip(missing, found, strict=True)
            if blob is None and status not in _FAILED_PARENT]
    if gone:
        raise TaskError(job_id, f"the result of parent job {gone[0]!r} is gone: it expired "
                                "(RedisConfig.result_ttl, keep it longer than a run lasts); "
                                "retry the run's failed tasks")
    return {j: blob for j, (_, blob) in zip(missing, found, strict=True)}

