"""Typed wrappers of the run scripts (``queue/lua/submit_run.lua``, ``cancel_run.lua``,
``retry_run.lua``), each a single atomic call; their headers document KEYS, ARGV and replies.

The scripts are loaded like the queue's (`queue.scripts.lua_source`, which prepends the shared
``run_helpers.lua``) and called by EVALSHA with a fallback to EVAL on NOSCRIPT.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ironforge_nb.errors import RunError
from ironforge_nb.queue.config import RedisConfig
from ironforge_nb.queue.keys import JOB_PAYLOAD_SUFFIX
from ironforge_nb.queue.scripts import _Script, lua_source

__all__ = ["RunScripts"]


class RunScripts:
    """The run scripts bound to one config's client and namespace."""

    def __init__(self, config: RedisConfig) -> None:
        client = config.client()
        self._keys = config.keys
        self._maxlen = config.events_maxlen
        self._submit = _Script(client, lua_source("submit_run"))
        self._cancel = _Script(client, lua_source("cancel_run"))
        self._retry = _Script(client, lua_source("retry_run"))

    def _head(self) -> list[Any]:
        k = self._keys
        return [k.job_prefix, k.run_prefix, k.queue_prefix, self._maxlen]

    def submit_run(self, run_id: str, name: str, params: bytes, maps: bytes, mode: str,
                   profiles: Sequence[Sequence[Any]], codes: Sequence[tuple[str, bytes]],
                   tasks: Sequence[Any], n_tasks: int) -> bool:
        """Create the run; False when a run with this id already exists (nothing changed).

        ``profiles`` are 6-field option tuples, ``codes`` (key, signed blob) pairs and
        ``tasks`` the flat task records, two arguments per task (see submit_run.lua).
        """
        k = self._keys
        rk = k.run(run_id)
        keys = [rk.meta, rk.tasks, rk.remaining, rk.children, rk.events, k.runs, k.queues,
                *(key for key, _ in codes)]
        args: list[Any] = [k.job_prefix, JOB_PAYLOAD_SUFFIX, k.run_prefix, k.queue_prefix,
                           self._maxlen, run_id, name, params, maps, mode, len(profiles),
                           len(codes), n_tasks]
        for profile in profiles:
            args.extend(profile)
        args.extend(blob for _, blob in codes)
        args.extend(tasks)
        reply = self._submit(keys, args)
        return bool(reply == b"created")

    def cancel_run(self, run_id: str) -> int:
        """Cancel the run's unfinished tasks; returns how many (0 if the run had ended)."""
        rk = self._keys.run(run_id)
        done, detail = self._cancel([rk.meta, rk.tasks], [*self._head(), run_id])
        if done == -1:
            raise RunError(run_id, f"no run {run_id!r} in this namespace")
        return int(detail) if done == 1 else 0

    def retry_run(self, run_id: str) -> tuple[int, int]:
        """Reset the run's failed, skipped and cancelled tasks; (retried, queued at once)."""
        rk = self._keys.run(run_id)
        n, queued = self._retry([rk.meta, rk.tasks, rk.remaining, rk.children],
                                [*self._head(), run_id])
        if n == -1:
            raise RunError(run_id, f"no run {run_id!r} in this namespace")
        return int(n), int(queued)

