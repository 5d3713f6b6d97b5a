"""The run transitions: typed wrappers of the run scripts (``queue/lua/submit_run.lua``,
``cancel_run.lua``, ``retry_run.lua``, ``delete_runs.lua``, and the read
``read_statuses.lua``); their headers document KEYS, ARGV and replies. Cancel, retry and delete
are bounded: each call is one short script, and the wrappers call again (``walk_run.lua``
through `Walks`) until the work is done, so Redis serves other clients between the steps.

The scripts are `queue.scripting.LuaScript` objects, the same as the queue's (source from
`scripting.assemble`: the prelude, common.lua, the shared ``run_helpers.lua`` and the others
it needs; EVALSHA with a fallback to EVAL on NOSCRIPT), over a `queue.link.Link` of the
config's client. submit_run is always sent by its source (`LuaScript.eval`): its arguments
are megabytes, which a NOSCRIPT reply would make cross the network twice, while the source
adds ~10 KB and Redis reuses the compiled script.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, cast

from ironforge_nb.errors import RunNotFoundError, RunStateError
from ironforge_nb.queue.config import RedisConfig
from ironforge_nb.queue.keys import JOB_LOGS_SUFFIX, JOB_PAYLOAD_SUFFIX, JOB_RESULT_SUFFIX
from ironforge_nb.queue.link import Link
from ironforge_nb.queue.scripting import LuaScript
from ironforge_nb.queue.walks import Walks

__all__ = ["DELETE_BUDGET", "STAGE_TTL_MS", "STATUS_CHUNK", "RunTransitions"]

DELETE_BUDGET = 2000  # jobs deleted per delete_runs call: a few ms of Redis time per call
STATUS_CHUNK = 5000  # tasks per read_statuses call: a few ms of Redis time per call
# a staged submit whose client sends nothing for this long may be swept (submit_run.lua): its
# chunks come a fraction of a second apart, and a client interrupted in between aborts it
STAGE_TTL_MS = 30_000


class RunTransitions:
    """The run scripts bound to one config's client and namespace."""

    def __init__(self, config: RedisConfig) -> None:
        link = Link.of(config.client())
        self._keys = config.keys
        self._maxlen = config.events_maxlen
        self._submit = LuaScript(link, "submit_run")
        self._cancel = LuaScript(link, "cancel_run")
        self._retry = LuaScript(link, "retry_run")
        self._delete = LuaScript(link, "delete_runs")
        self._statuses = LuaScript(link, "read_statuses")
        self._retention = config.run_retention
        self._config = config
        self._released: list[str] = []  # result file URLs whose last pin went (delete_runs)
        self._finished: list[tuple[str, str]] = []  # (run, store root) of deleted runs
        self._result_ttl_ms = max(1, round(config.result_ttl * 1000))
        self._walks = Walks(config)

    def _head(self) -> list[Any]:
        k = self._keys
        return [k.job_prefix, k.run_prefix, k.queue_prefix, self._maxlen]

    def submit_run(self, run_id: str, name: str, params: bytes, maps: bytes, mode: str,
                   profiles: Sequence[Sequence[Any]], codes: Sequence[tuple[str, bytes]],
                   records: Sequence[str], payloads: bytes, n_tasks: int, cache: str = ""
                   ) -> str:
        """Create the run: 'created', else 'exists' (a run with this id exists) or 'deleting'
        (one is being deleted); in both cases nothing changed.

        ``profiles`` are 7-field option tuples, ``codes`` (key, signed blob) pairs,
        ``records`` the six columns of the task records and ``payloads`` the tasks' payloads
        concatenated in the same order, ``cache`` the cache lines ('' = no task cached; see
        submit_run.lua).
        """
        keys, args = self._submit_call(run_id, name, params, maps, mode, profiles, codes,
                                       records, payloads, n_tasks, cache, "all", "", 0)
        reply: bytes = self._submit.eval(keys, args)
        return reply.decode()

    def stage_chunk(self, run_id: str, token: str, offset: int,
                    profiles: Sequence[Sequence[Any]], records: Sequence[str], payloads: bytes,
                    n_tasks: int) -> Callable[[], str]:
        """Send one chunk of a staged submit (submit_run.lua, phase 'stage': ``n_tasks`` tasks
        from position ``offset`` on, no codes, no cache) and return the function that waits
        for its reply: 'staged', or 'exists', 'deleting', 'busy', 'lost'."""
        keys, args = self._submit_call(run_id, "", b"", b"", "", profiles, (), records,
                                       payloads, n_tasks, "", "stage", token, offset)
        reply = self._submit.send(keys, args, by_source=True)
        return lambda: cast(bytes, reply()).decode()

    def commit_run(self, run_id: str, token: str, name: str, params: bytes, maps: bytes,
                   mode: str, profiles: Sequence[Sequence[Any]],
                   codes: Sequence[tuple[str, bytes]], n_tasks: int) -> str:
        """Make a staged run exist (phase 'commit'): 'created', or 'exists', 'deleting',
        'busy', 'lost' (nothing changed)."""
        keys, args = self._submit_call(run_id, name, params, maps, mode, profiles, codes,
                                       ("",) * 6, b"", n_tasks, "", "commit", token, 0)
        return cast(bytes, self._submit(keys, args)).decode()

    def abort_staged(self, run_id: str, token: str) -> str:
        """Give up a staged submit (phase 'abort'): its staged part is marked for deletion
        ('aborted'; `purge` deletes it) unless it is no longer this token's ('gone')."""
        keys, args = self._submit_call(run_id, "", b"", b"", "", (), (), ("",) * 6, b"", 0,
                                       "", "abort", token, 0)
        return cast(bytes, self._submit(keys, args)).decode()

    def _submit_call(self, run_id: str, name: str, params: bytes, maps: bytes, mode: str,
                     profiles: Sequence[Sequence[Any]], codes: Sequence[tuple[str, bytes]],
                     records: Sequence[str], payloads: bytes, n_tasks: int, cache: str,
                     phase: str, token: str, offset: int) -> tuple[list[Any], list[Any]]:
        """KEYS and ARGV of submit_run.lua."""
        k = self._keys
        rk = k.run(run_id)
        keys = [rk.meta, rk.tasks, rk.remaining, rk.children, rk.events, k.runs, k.queues,
                k.runs_deleting, k.code_refs, rk.codes, k.cache_index, k.runs_staging,
                *(key for key, _ in codes)]
        args: list[Any] = [k.job_prefix, JOB_PAYLOAD_SUFFIX, k.run_prefix, k.queue_prefix,
                           self._maxlen, run_id, name, params, maps, mode, len(profiles),
                           len(codes), n_tasks]
        for profile in profiles:
            args.extend(profile)
        args.extend(blob for _, blob in codes)
        args += (*records, payloads, cache, k.cache_entries, JOB_RESULT_SUFFIX,
                 self._result_ttl_ms, phase, token, offset, STAGE_TTL_MS)
        return keys, args

    def cancel_run(self, run_id: str) -> int:
        """Cancel the run's unfinished tasks, step by step until all are; returns how many (0
        if the run had ended). Pending work on the run (a retry, skips) is finished first."""
        args = [self._keys.run(run_id).meta, self._keys.queues], [*self._head(), run_id]
        reply = self._begin(self._cancel, run_id, *args)
        if reply[0] != 1:
            return 0
        cancelled = int(reply[2])
        if reply[1]:
            last = self._walks.finish(run_id)
            if last[2] == "cancel":  # else another caller took the last step
                cancelled = last[3]
        return cancelled

    def retry_run(self, run_id: str) -> tuple[int, int]:
        """Reset the run's failed, skipped and cancelled tasks, step by step until all are;
        returns (retried, queued at once). Pending work on the run is finished first."""
        reply = self._begin(self._retry, run_id, [self._keys.run(run_id).meta],
                            [*self._head(), run_id])
        if reply[0] != 1:
            return 0, 0
        counts = int(reply[2]), int(reply[3])
        if reply[1]:
            last = self._walks.finish(run_id)
            if last[2] == "retry":
                counts = last[3], last[4]
        return counts

    def finish(self, run_id: str) -> None:
        """Finish the work pending on the run (a cancel, a retry, skips), if any."""
        self._walks.finish(run_id)

    def _begin(self, script: LuaScript, run_id: str, keys: list[Any], args: list[Any]
               ) -> list[Any]:
        """Call cancel_run or retry_run, finishing the run's pending work first when the
        script asks (-3); raises `RunNotFoundError` (-1)."""
        reply: list[Any] = script(keys, args)
        while reply[0] == -3:
            self._walks.finish(run_id)
            reply = script(keys, args)
        if reply[0] == -1:
            raise RunNotFoundError(run_id, self._keys.namespace)
        return reply

    def delete_runs(self, run_id: str = "", *, retention: bool = True,
                    budget: int = DELETE_BUDGET) -> tuple[int, int]:
        """One bounded step of run deletion: mark ``run_id`` (if given), mark the ended runs
        beyond ``config.run_retention`` (if ``retention``), then delete up to ``budget`` jobs
        of marked runs. Returns (runs still being deleted, jobs deleted by this call).

        Raises `RunError` when ``run_id`` does not exist and `RunStateError` when it has not
        ended (nothing changed in either case).
        """
        k = self._keys
        args = [k.job_prefix, JOB_PAYLOAD_SUFFIX, JOB_RESULT_SUFFIX, k.run_prefix,
                k.queue_prefix, self._retention if retention else 0, budget, run_id,
                JOB_LOGS_SUFFIX]
        keys = [k.runs, k.runs_deleting, k.code_refs, k.result_pins, k.runs_ended,
                k.cache_entries, k.runs_staging]
        reply = self._delete(keys, args)
        while reply[0] == -3:  # a walk or skips pending on run_id: finish them, then delete
            self._walks.finish(run_id)
            reply = self._delete(keys, args)
        pending, detail = reply[0], reply[1]
        if pending == -1:
            raise RunNotFoundError(run_id, self._keys.namespace)
        if pending == -2:
            raise RunStateError(run_id, detail.decode(), "delete",
                                "wait for it, cancel it, or pass force=True (cancels it first)")
        self._released += [u.decode() for u in reply[2]]
        self._finished += [(r.decode(), root.decode())
                           for r, root in zip(reply[3][::2], reply[3][1::2], strict=True)]
        return int(pending), int(detail)

    def task_statuses(self, run_id: str, chunk: int = STATUS_CHUNK) -> dict[str, str]:
        """Every task of the run with its status ('' when its job hash is gone), read in
        chunks of about ``chunk`` tasks, one script call each (not one snapshot: a caller
        that must not miss a change takes its event cursor first)."""
        tasks_key = self._keys.run(run_id).tasks
        out: dict[str, str] = {}
        cursor: Any = b"0"
        while True:
            cursor, flat = self._statuses([tasks_key], [self._keys.job_prefix, cursor, chunk])
            out.update(zip((t.decode() for t in flat[::2]), (s.decode() for s in flat[1::2]),
                           strict=True))
            if cursor in (b"0", 0, "0"):
                return out

    def purge(self, run_id: str = "", *, retention: bool = True) -> int:
        """`delete_runs` until no run is left half-deleted; returns how many jobs were deleted.

        Each call is a bounded script, so Redis serves other clients between the steps.
        """
        pending, total = self.delete_runs(run_id, retention=retention)
        while pending:
            pending, deleted = self.delete_runs(retention=False)
            total += deleted
        self._remove_files()
        return total

    def sweep(self) -> int:
        """One bounded step of the namespace's deletions (`delete_runs` without retention),
        which first marks the staged submits whose client went quiet past their deadline
        (delete_runs.lua, step 1b); returns how many runs are still being deleted. Workers
        take one now and then (worker/housekeeping.py), so that what a dead client staged
        goes even if nobody submits or deletes again."""
        pending, _ = self.delete_runs(retention=False)
        self._remove_files()
        return pending

    def _remove_files(self) -> None:
        """Result files go with their runs (those the last `delete_runs` calls released)."""
        if self._released or self._finished:
            from ironforge_nb.orchestrator.store import cleanup

            released, finished = self._released, self._finished
            self._released, self._finished = [], []
            cleanup(self._config, released, finished)
