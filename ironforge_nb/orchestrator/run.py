"""`Run`: the handle of a submitted run (status, wait, results, views, cancel, retry).

A handle holds no state of its own: every property reads the run's hashes in Redis, so any
number of handles (in the notebook, in another process, rebuilt from the id with
``Run(run_id)``) agree. Waiting follows the run's event stream with a blocking XREAD: it costs
nothing while the run is quiet, at most one read per 5 ms while events keep coming, and returns
as soon as the 'run_finished' event is appended.
"""

from __future__ import annotations

import contextlib
import difflib
import warnings
from typing import TYPE_CHECKING, Any

from ironforge_nb.errors import (
    RunError,
    RunNotFoundError,
    RunStateError,
    TaskFailedError,
    UnknownTaskError,
)
from ironforge_nb.names import validate_name
from ironforge_nb.orchestrator import codec
from ironforge_nb.orchestrator.drawing import run_dag, run_html
from ironforge_nb.orchestrator.frames import agreeing_read
from ironforge_nb.orchestrator.run_transitions import RunTransitions
from ironforge_nb.orchestrator.tasks import TaskState, read_task_states, task_state
from ironforge_nb.queue.borrowing import read_results
from ironforge_nb.queue.config import RedisConfig, default_config
from ironforge_nb.queue.queue import read_events
from ironforge_nb.status import Event, JobStatus, RunStatus

if TYPE_CHECKING:
    import pandas as pd

    from ironforge_nb.widgets import RunMonitor

__all__ = ["Run"]

_CHUNK = 1000  # job hashes / results read per round trip


class Run:
    """A run of a pipeline: ``Run(run_id, config)`` reattaches to one submitted earlier."""

    def __init__(self, run_id: str, config: RedisConfig | None = None, *,
                 secret: bytes | None = None) -> None:
        self.id = validate_name(run_id, "run")
        self.config = config if config is not None else default_config()
        self._secret = secret if secret is not None else codec.default_secret()
        self._keys = self.config.keys.run(run_id)

    # ------------------------------------------------------------------ state

    @property
    def status(self) -> RunStatus:
        """The run's status, read now."""
        raw = self.config.client().hget(self._keys.meta, "status")
        if raw is None:
            raise self._not_found()
        return RunStatus(raw.decode())

    def info(self) -> dict[str, Any]:
        """The run's meta hash: name, status, total, counters by status, created/finished."""
        return self._info(self.config.client().hgetall(self._keys.meta))

    def _info(self, raw: dict[bytes, bytes]) -> dict[str, Any]:
        """`info` of a meta hash read elsewhere (`RunError` if the run does not exist)."""
        if not raw:
            raise self._not_found()
        out: dict[str, Any] = {}
        for key, value in raw.items():
            name = key.decode()
            if name in ("params", "maps"):
                continue
            text = value.decode()
            out[name] = int(text) if text.lstrip("-").isdigit() else text
        return out

    def counts(self) -> dict[str, int]:
        """Tasks by status: waiting, completed, failed, skipped, cancelled, and ``in_flight``:
        queued, scheduled or active (the run's counters do not tell these three apart; the
        tasks' own statuses do: `tasks`, `dataframe`).

        ``counts()["pending"]`` (the name of ``in_flight`` up to version 0.1.0) still answers,
        with a `FutureWarning`, until 0.3; it is not one of the keys, so the values still sum
        to the run's total."""
        info = self.info()
        names = ("waiting", "completed", "failed", "skipped", "cancelled")
        counts = _Counts((n, int(info.get(n, 0))) for n in names)
        counts["in_flight"] = int(info.get("total", 0)) - sum(counts.values())
        return counts

    def events(self, since: str = "0", count: int = 1000) -> list[Event]:
        """Events of this run after stream id ``since`` ("0": from the oldest kept)."""
        return read_events(self.config.client(), self._keys.events, since, count)

    def __repr__(self) -> str:
        try:
            info = self.info()
        except RunError:
            return f"Run({self.id!r}, not found)"
        return _summary(self.id, info)

    # ------------------------------------------------------------------ waiting

    def wait(self, timeout: float | None = None, *, progress: bool = True,
             raise_on_failure: bool = False) -> Run:
        """Block until the run ends (any terminal status); returns self.

        While it blocks it draws a progress bar: in a notebook a widget (its text form is
        fixed, so checked outputs do not change), in a terminal a one-line text bar on
        stderr; ``progress=False`` draws nothing. ``raise_on_failure=True`` (for scripts)
        raises `RunFailedError` when the run ended failed or cancelled. Raises
        `RunTimeoutError` after ``timeout`` seconds (the run goes on).
        """
        from ironforge_nb.orchestrator.waiting import wait

        wait(self, timeout, progress, raise_on_failure)
        return self

    # ------------------------------------------------------------------ tasks

    def task(self, name: str) -> TaskState:
        """The state of task ``name`` read now: status, progress and message, attempts,
        worker, times, error (last line) and traceback (see `TaskState`).

        A map member is named like ``"by_region[eu]"``; a map's own name is not one task
        (``run.tasks("by_region")`` lists its members). Raises `UnknownTaskError` with close
        matches for a name that is not in the run, `RunNotFoundError` if the run is gone.
        """
        jid = self.config.client().hget(self._keys.tasks, name) if isinstance(name, str) else None
        state = None if jid is None else task_state(self.config, name, jid.decode())
        if state is None:
            raise self._unknown(name)
        return state

    def tasks(self, map: str | None = None) -> list[TaskState]:
        """The state of every task, in the pipeline's task order; with ``map``, of that map's
        members in item order (one round trip per 1000 tasks)."""
        pairs = self.job_ids()
        if map is not None:
            members = self._maps().get(map)
            if members is None:
                raise self._unknown(map)
            wanted = dict(pairs)
            pairs = [(m, wanted[m]) for m in members[0]]
        return read_task_states(self.config, pairs)

    def monitor(self, *, interval: float = 0.5) -> RunMonitor:
        """A live view of the run that follows it without blocking the cell: status, counts,
        a bar per task (or per map in big runs), the graph colored by status, cancel and
        retry buttons (see `RunMonitor`). It re-reads the run every ``interval`` seconds on
        the kernel's event loop and stops when the run ends or the view is closed; where
        there is no kernel it prints a text view. Raises `RunNotFoundError` for a run that
        does not exist."""
        from ironforge_nb.widgets import RunMonitor

        return RunMonitor(self, interval=interval)

    # ------------------------------------------------------------------ results

    def result(self, task: str) -> Any:
        """The return value of ``task``; for a map name, its members' results gathered (a
        list in item order, or a dict keyed like the map's ``over``).

        Raises `TaskFailedError` if the task failed, was skipped or cancelled, `RunError` if it
        has not finished yet, `UnknownTaskError` for a name that is not in the run.
        """
        client = self.config.client()
        jid = client.hget(self._keys.tasks, task)
        if jid is None:
            maps = self._maps()
            if task in maps:
                members, keys = maps[task]
                values = [self.result(m) for m in members]
                return values if keys is None else dict(zip(keys, values, strict=True))
            if not maps and not client.exists(self._keys.meta):
                raise self._not_found()
            raise UnknownTaskError(None, task, self._suggest(task, maps))
        [((status, error), blob)] = read_results(client, self.config.keys, [jid.decode()],
                                                  ("status", "error"))
        state = JobStatus(status.decode()) if status else None
        if state is JobStatus.COMPLETED:
            if blob is None:
                raise RunError(self.id, f"the result of task {task!r} has expired "
                                        "(RedisConfig.result_ttl)")
            return codec.decode_value(blob, self._secret, jid.decode())
        if state in (JobStatus.FAILED, JobStatus.SKIPPED, JobStatus.CANCELLED):
            text = error.decode() if error else ""
            if state is JobStatus.SKIPPED:
                text = "skipped: an upstream task failed or was cancelled"
            elif state is JobStatus.CANCELLED:
                text = "cancelled"
            raise TaskFailedError(self.id, task, text)
        raise RunError(self.id, f"task {task!r} has not finished (status {state}); call "
                                "run.wait() first")

    def results(self) -> dict[str, Any]:
        """``{task: result}`` of every completed task, in the pipeline's task order (a task
        served from the cache reads the result of the job it names, ``source_job``); one
        round trip per 1000 tasks (and one more for those served from the cache)."""
        client, pairs = self.config.client(), self.job_ids()
        out: dict[str, Any] = {}
        for start in range(0, len(pairs), _CHUNK):  # decoded a chunk at a time
            chunk = pairs[start:start + _CHUNK]
            found = read_results(client, self.config.keys, [j for _, j in chunk], ("status",))
            for (task, jid), ((status,), blob) in zip(chunk, found, strict=True):
                if status == b"completed" and blob is not None:
                    out[task] = codec.decode_value(blob, self._secret, jid)
        return out

    def logs(self, task: str, attempt: int | None = None) -> str:
        """What ``task`` printed and logged (stdout, stderr and log records, interleaved) in
        its latest attempt, or in attempt number ``attempt``; "" if nothing. Readable while
        the task runs (written about once a second). Only the tail is kept
        (`RedisConfig.task_log_bytes`). A member of a map is named ``"name[key]"``.

        Raises `UnknownTaskError` (with close matches; a map's members for its name) for a
        name that is not one task of the run, `RunNotFoundError` if the run is gone.
        """
        from ironforge_nb.queue.logs import read_logs

        jid = self.config.client().hget(self._keys.tasks, task)
        if jid is None:
            raise self._unknown(task)
        return read_logs(self.config, jid.decode(), attempt)

    def job_ids(self) -> list[tuple[str, str]]:
        """``(task, job id)`` of every task, in the pipeline's task order."""
        client = self.config.client()
        raw = client.hgetall(self._keys.tasks)
        if not raw and not client.exists(self._keys.meta):
            raise self._not_found()
        pairs = [(t.decode(), j.decode()) for t, j in raw.items()]
        pairs.sort(key=lambda p: int(p[1].rsplit(".", 1)[1]))
        return pairs

    def to_dataframe(self) -> pd.DataFrame:
        """One row per task: task, status, progress (0 to 1) and message (as last reported by
        the task), attempts (tries its code ended), stalls (times its worker died under it),
        queued/started/finished, duration (s), worker, error, queue, job
        (read one round trip per 1000 tasks)."""
        from ironforge_nb.orchestrator.frames import run_frame

        return run_frame(self.config, self.job_ids())

    # ------------------------------------------------------------------ control

    def cancel(self) -> int:
        """Cancel the queued and waiting tasks and tell running ones to stop (their worker's
        next heartbeat or completion is refused); the run ends cancelled. Returns how many
        tasks were cancelled (0 if the run had already ended)."""
        return RunTransitions(self.config).cancel_run(self.id)

    def retry_failed(self) -> int:
        """Run again the failed, skipped and cancelled tasks, reusing the completed results;
        the run is running again. Returns how many tasks will rerun."""
        retried, _queued = RunTransitions(self.config).retry_run(self.id)
        return retried

    # ------------------------------------------------------------------ display

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, str]:
        """Jupyter display, read now: the run's status, its tasks counted by status and its
        graph colored by status (HTML); as text, `repr` plus the tasks level by level. Without
        ``dot`` the graph part is that text, so displaying a run never fails for lack of it."""
        from ironforge_nb.render import mimebundle

        try:
            dag, info, statuses = self._snapshot()
        except RunError:
            return {"text/plain": repr(self)}
        drawing = mimebundle(dag, statuses, title=f"run {self.id}: {info.get('status')}")
        bundle = {"text/plain": f"{_summary(self.id, info)}\n{drawing['text/plain']}",
                  "text/html": run_html(self.id, info, statuses, drawing)}
        wanted = (set(bundle) if include is None else set(include)) - set(exclude or ())
        return {k: v for k, v in bundle.items() if k in wanted}

    def _snapshot(self) -> tuple[Any, dict[str, Any], dict[str, str]]:
        """The run's tasks as a `DAG` (edges from the run's children hash; each map's members
        grouped, so big maps collapse into one box), its meta hash and each task's status
        ("cached" for a task completed from the cache), the last two agreeing
        (`agreeing_read`)."""
        pairs = self.job_ids()
        keys = self.config.keys

        def reads(pipe: Any) -> None:
            pipe.hgetall(self._keys.children)
            for _, jid in pairs:
                pipe.hmget(keys.job(jid), "status", "source_run", "source_job")

        meta, (children, *states) = agreeing_read(self.config.client(), self._keys.meta, reads)
        info = self._info(meta)
        # a task completed from the cache is drawn as "cached" (a display state of the palette)
        statuses = {task: "cached" if run or job else raw.decode()
                    for (task, _), (raw, run, job) in zip(pairs, states, strict=True)
                    if raw is not None}
        return run_dag(pairs, children, self._maps()), info, statuses

    def delete(self, *, force: bool = False) -> int:
        """Delete the run whole: its hashes, events, and every job's meta, payload and result
        (code blobs, shared by content hash, stay). Returns how many jobs were deleted.

        A run that has not ended is refused with `RunStateError`, unless ``force=True``, which
        cancels it first. The run disappears at once (handles then report no such run); its
        jobs go in bounded steps, so Redis keeps serving others while a big run is deleted.
        Old ended runs are also deleted automatically at submit (`RedisConfig.run_retention`).
        """
        scripts = RunTransitions(self.config)
        if force:
            # no meta hash: gone, or already being deleted (delete_runs tells which)
            with contextlib.suppress(RunError):
                scripts.cancel_run(self.id)
        try:
            return scripts.purge(self.id, retention=False)
        except RunStateError as exc:
            if force:  # restarted (retry_failed) between the cancel and the delete
                raise RunStateError(self.id, exc.status, "delete", "it was restarted while "
                                    "being cancelled; call delete(force=True) again") from None
            raise

    # ------------------------------------------------------------------ internals

    def _not_found(self) -> RunNotFoundError:
        return RunNotFoundError(self.id, self.config.namespace)

    def _maps(self) -> dict[str, Any]:
        raw = self.config.client().hget(self._keys.meta, "maps")
        if not raw:
            return {}
        maps: dict[str, Any] = codec.decode_value(raw, self._secret, None)
        return maps

    def _unknown(self, name: object) -> RunNotFoundError | UnknownTaskError:
        """The error for a task name the run does not have: `RunNotFoundError` if the run
        is gone, else `UnknownTaskError` with close matches (a map's members for its name)."""
        if not self.config.client().exists(self._keys.meta):
            return self._not_found()
        maps = self._maps()
        if isinstance(name, str) and name in maps:
            members = list(maps[name][0])
            return UnknownTaskError(None, name, members[:3] + ([f"run.tasks({name!r})"]
                                                               if len(members) > 3 else []))
        return UnknownTaskError(None, str(name), self._suggest(str(name), maps))

    def _suggest(self, task: str, maps: dict[str, Any]) -> list[str]:
        names = [t for t, _ in self.job_ids()] + list(maps)
        return difflib.get_close_matches(task, names, n=3)


class _Counts(dict[str, int]):
    """`Run.counts`' dict: ``["pending"]`` and ``.get("pending")`` read ``in_flight`` with a
    `FutureWarning` (its old name), without being a key (iterating, summing and comparing see
    the new keys only)."""

    def __missing__(self, key: str) -> int:
        if key == _OLD_IN_FLIGHT:
            return self._old_name()
        raise KeyError(key)

    def get(self, key: str, default: Any = None) -> Any:
        if key == _OLD_IN_FLIGHT and key not in self:
            return self._old_name()
        return super().get(key, default)

    def _old_name(self) -> int:
        warnings.warn('Run.counts()["pending"] is deprecated: use Run.counts()["in_flight"] '
                      "(queued, scheduled or active tasks)", FutureWarning, stacklevel=3)
        return self["in_flight"]


_OLD_IN_FLIGHT = "pending"


def _summary(run_id: str, info: dict[str, Any]) -> str:
    """The one-line description of a run, from its meta hash (`Run.__repr__`)."""
    return (f"Run({run_id!r}, pipeline={info.get('name')!r}, status={info.get('status')}, "
            f"{info.get('completed', 0)}/{info.get('total', 0)} completed, "
            f"{info.get('failed', 0)} failed, {info.get('skipped', 0)} skipped)")
