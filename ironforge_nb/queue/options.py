"""Checks of every queue input, run before anything is written to Redis.

Each check returns the value in the form the scripts take (milliseconds as ints, ARGV bytes) or
raises the specific error of `ironforge_nb.errors` naming the option and what would be valid.
"""

from __future__ import annotations

import functools
import math
import os
import secrets
from collections.abc import Mapping, Sequence
from itertools import count
from typing import Any

from ironforge_nb.errors import InvalidNameError, InvalidOptionError, SizeLimitError
from ironforge_nb.names import validate_name
from ironforge_nb.queue.records import DEFAULT_MAX_STALLS, RESERVED_FIELDS, RUN_FIELDS

__all__ = [
    "DEFAULT_MAX_STALLS",
    "MAX_PRIORITY",
    "check_bytes",
    "job_options",
    "meta_args",
    "new_job_id",
    "new_request_id",
    "seconds_to_ms",
    "validate_count",
    "validate_worker",
]

MAX_PRIORITY = 1000  # |priority| bound that keeps wait scores exact (see enqueue_jobs.lua)


def _number(option: str, value: object, *, positive: bool) -> float:
    """A finite real number >= 0 (or > 0 when ``positive``)."""
    bound = "> 0" if positive else ">= 0"
    if (isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value)
            or value < 0 or (positive and value == 0)):
        raise InvalidOptionError(option, value, f"a finite number of seconds {bound}")
    return float(value)


def seconds_to_ms(option: str, value: object, *, positive: bool = False) -> int:
    """Seconds (validated) as whole milliseconds; a positive duration is at least 1 ms."""
    ms = int(_number(option, value, positive=positive) * 1000)
    return max(ms, 1) if positive else ms


def validate_count(option: str, value: object, minimum: int = 1) -> int:
    """An int >= minimum (bools refused)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise InvalidOptionError(option, value, f"an int >= {minimum}")
    return value


def validate_worker(worker: object) -> str:
    """A worker name: any non-empty str of at most 200 characters (it is a value, not a key)."""
    if not isinstance(worker, str) or not 0 < len(worker) <= 200:
        raise InvalidOptionError("worker", worker, "a non-empty str of at most 200 characters")
    return worker


def check_bytes(what: str, value: object, limit: int) -> bytes:
    """``value`` if it is bytes within ``limit``, else InvalidOptionError / SizeLimitError."""
    if not isinstance(value, bytes):
        raise InvalidOptionError(
            what, type(value).__name__,
            "bytes (encode text with .encode(); serialize objects with json or pickle)")
    if len(value) > limit:
        raise SizeLimitError(what, len(value), limit,
                             "raise the RedisConfig limit or store the data elsewhere and pass "
                             "a reference")
    return value


def job_options(priority: object, delay: object, max_attempts: object,
                backoff: object) -> tuple[bytes, bytes, bytes, bytes]:
    """Validated (priority, delay_ms, max_attempts, backoff_ms) as ARGV bytes.

    A producer sends the same few option sets over and over: validated sets are remembered
    (by value and type, so ``True`` is never mistaken for ``1``), a miss is validated in full.
    """
    try:
        return _remembered_options(priority, delay, max_attempts, backoff)
    except TypeError:  # an unhashable value: validation names the option
        return _job_options(priority, delay, max_attempts, backoff)


def _job_options(priority: object, delay: object, max_attempts: object,
                 backoff: object) -> tuple[bytes, bytes, bytes, bytes]:
    if (isinstance(priority, bool) or not isinstance(priority, int)
            or not -MAX_PRIORITY <= priority <= MAX_PRIORITY):
        raise InvalidOptionError("priority", priority,
                                 f"an int from {-MAX_PRIORITY} to {MAX_PRIORITY}")
    delay_ms = seconds_to_ms("delay", delay)
    attempts = validate_count("max_attempts", max_attempts)
    backoff_ms = seconds_to_ms("backoff", backoff)
    return (b"%d" % priority, b"%d" % delay_ms, b"%d" % attempts, b"%d" % backoff_ms)


_remembered_options = functools.lru_cache(maxsize=256, typed=True)(_job_options)


_NO_META: tuple[bytes] = (b"0",)


def meta_args(meta: Mapping[str, str] | None,
              max_stalls: int = DEFAULT_MAX_STALLS) -> Sequence[Any]:
    """``[n, field, value, ...]`` for the user's extra meta-hash fields, with ``max_stalls``
    among them when it is not the default (readers default it)."""
    default = type(max_stalls) is int and max_stalls == DEFAULT_MAX_STALLS
    if meta is None and default:
        return _NO_META
    if meta is not None and not isinstance(meta, Mapping):
        raise InvalidOptionError("meta", type(meta).__name__, "a mapping of str to str")
    out: list[Any] = [b"0"]
    if not default:
        out += ("max_stalls", b"%d" % validate_count("max_stalls", max_stalls, 0))
    for name, value in (meta or {}).items():
        validate_name(name, "meta field")
        if name in RUN_FIELDS:
            raise InvalidNameError("meta field", name, "only the tasks of a pipeline run carry "
                                   "it (submit the pipeline to get a run); choose another name")
        if name in RESERVED_FIELDS or name.startswith("error."):
            raise InvalidNameError("meta field", name, "the queue uses this field itself; "
                                   "choose another name")
        if not isinstance(value, str):
            raise InvalidOptionError(f"meta[{name!r}]", value, "a str")
        out += (name, value)
    out[0] = b"%d" % (len(out) // 2)
    return out


class _Ids:
    """Job ids unique across processes: a random per-process prefix and a counter."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.prefix = secrets.token_hex(6) + "-"
        self.counter = count(1)


_ids = _Ids()
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_ids.reset)  # a forked child must not reuse the ids


def new_request_id() -> str:
    """A request id made once per logical call of a script that must not act twice: redis-py
    resends the same arguments after a connection error, so the script tells a resend apart."""
    return f"r{_ids.prefix}{next(_ids.counter):x}"


def new_job_id() -> str:
    """A fresh job id such as ``'9f1c2e4ab07d-1a'`` (valid as a name, short, unique)."""
    return f"{_ids.prefix}{next(_ids.counter):x}"
