"""The Redis queue engine: config and keys, the `Queue` API, its records and error codes, locks.

Every job transition is one Lua script (``lua/*.lua``), so delivery is at-least-once, leases are
fenced by tokens, and metadata updates are O(1) (docs/design.md).
"""

from __future__ import annotations

from ironforge_nb.queue.codes import ErrorCode
from ironforge_nb.queue.config import RedisConfig, default_config, set_default_config
from ironforge_nb.queue.lock import Lock
from ironforge_nb.queue.options import DEFAULT_MAX_STALLS
from ironforge_nb.queue.queue import Queue
from ironforge_nb.queue.records import AttemptError, JobInfo, Lease

__all__ = [
    "DEFAULT_MAX_STALLS",
    "AttemptError",
    "ErrorCode",
    "JobInfo",
    "Lease",
    "Lock",
    "Queue",
    "RedisConfig",
    "default_config",
    "set_default_config",
]
