"""Pandas views of runs: one row per task of a run, one row per recent run.

Both read Redis with pipelined commands, one round trip per chunk of 1000 hashes, and convert
the server's millisecond timestamps to UTC ``Timestamp`` columns (``NaT`` when not reached).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from ironforge_nb.orchestrator.tasks import run_of
from ironforge_nb.queue.borrowing import origin, progress_of
from ironforge_nb.queue.config import RedisConfig, default_config
from ironforge_nb.queue.options import validate_count
from ironforge_nb.queue.submitted import Absent, fill_in

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["RUN_COLUMNS", "TASK_COLUMNS", "agreeing_read", "recent_runs", "run_frame", "runs"]

TASK_COLUMNS = ("task", "status", "progress", "message", "attempts", "stalls", "queued",
                "started", "finished", "duration", "worker", "error", "queue", "job", "cached")
RUN_COLUMNS = ("id", "pipeline", "status", "tasks", "completed", "failed", "created",
               "finished", "duration")
_CHUNK = 1000
_JOB_FIELDS = ("status", "attempts", "stalls", "enqueued", "started", "finished", "worker",
               "error", "queue", "progress", "message", "source_run", "source_job")
_RUN_FIELDS = ("name", "status", "total", "completed", "failed", "skipped", "cancelled",
               "created", "finished")
_AGREE_TRIES = 3


def agreeing_read(client: Any, meta: str, reads: Callable[[Any], None]) -> tuple[Any, list[Any]]:
    """The run meta hash ``meta`` and the replies of the commands ``reads`` adds to a pipeline,
    as of one moment: the meta hash is read before and after them, and all is read again (up
    to 3 times) while it changed in between. Returns (meta hash, replies).

    No MULTI: cluster clients refuse it (or, in some redis-py versions, return raw replies),
    and a MULTI of a 100k-task run's reads would block Redis as long as a long script. Every
    transition of a run's task changes its meta hash (a counter or the status) but moves
    among queued, scheduled and active (all "in flight" in the counters), so agreeing reads
    differ from a snapshot by at most those; a run that keeps moving
    through all tries gets the last read, its meta hash as of the end.
    """
    for _ in range(_AGREE_TRIES):
        pipe = client.pipeline(transaction=False)
        pipe.hgetall(meta)
        reads(pipe)
        pipe.hgetall(meta)
        before, *replies, after = pipe.execute()
        if before == after:
            break
    return after, replies


def _ms(raw: bytes | None) -> int | None:
    return None if raw is None else int(raw)


def _text(raw: bytes | None) -> str | None:
    return None if raw is None else raw.decode()


def _frame(rows: dict[str, list[Any]], times: Sequence[str]) -> pd.DataFrame:
    """A DataFrame with ``times`` (ms since the epoch, or None) as UTC timestamps."""
    import pandas as pd

    frame: pd.DataFrame = pd.DataFrame(rows)
    for name in times:
        frame[name] = pd.to_datetime(pd.Series(rows[name], dtype="float64"), unit="ms",
                                     utc=True)
    return frame


def _duration(start: int | None, end: int | None) -> float | None:
    return None if start is None or end is None else (end - start) / 1000


def run_frame(config: RedisConfig, jobs: Sequence[tuple[str, str]]) -> pd.DataFrame:
    """One row per ``(task, job id)`` of a run with the columns of `TASK_COLUMNS`.

    ``attempts`` counts the tries the task's own code ended (error, timeout, success);
    ``stalls`` the times its worker or executor died under it (see `Queue.stall`).

    ``duration`` is seconds from the last attempt's start to the end (None while running);
    ``cached`` is the run whose result a task reused from the cache (None: it ran here).
    """
    client = config.client()
    rows: dict[str, list[Any]] = {name: [] for name in TASK_COLUMNS}
    created: dict[str, bytes | None] = {}  # run -> its created: a root's `enqueued` (below)
    for start in range(0, len(jobs), _CHUNK):
        chunk = jobs[start:start + _CHUNK]
        pipe = client.pipeline(transaction=False)
        for _, jid in chunk:
            pipe.hmget(config.keys.job(jid), *_JOB_FIELDS)
        runs = list(dict.fromkeys(run for _, jid in chunk if (run := run_of(jid)) not in created))
        for run in runs:
            pipe.hget(config.keys.run(run).meta, "created")
        replies = pipe.execute()
        created.update(zip(runs, replies[len(chunk):], strict=True))
        replies = replies[:len(chunk)]
        # a root its submit queued has no `enqueued` of its own (queue.submitted)
        absent = [None if values[0] is None or values[3] is not None else
                  Absent(run_of(jid), task, values[0].decode(),
                         values[11] is not None or values[12] is not None, False, True)
                  for (task, jid), values in zip(chunk, replies, strict=True)]
        filled = fill_in(client, config.keys, absent, created)
        for (task, jid), values, (_, enqueued) in zip(chunk, replies, filled, strict=True):
            (status, attempts, stalls, queued, started, finished, worker, error, queue,
             progress, message, source_run, source_job) = values
            queued = queued if enqueued is None else enqueued
            begun, ended = _ms(started), _ms(finished)
            rows["task"].append(task)
            rows["status"].append(_text(status))
            rows["progress"].append(progress_of(progress, _text(status)))
            rows["message"].append(_text(message))
            rows["attempts"].append(int(attempts or 0))
            rows["stalls"].append(int(stalls or 0))
            rows["queued"].append(_ms(queued))
            rows["started"].append(begun)
            rows["finished"].append(ended)
            rows["duration"].append(_duration(begun, ended))
            rows["worker"].append(_text(worker))
            rows["error"].append(_text(error))
            rows["queue"].append(_text(queue))
            rows["job"].append(jid)
            rows["cached"].append(origin(source_run, source_job))
    return _frame(rows, ("queued", "started", "finished"))


def recent_runs(config: RedisConfig, limit: int = 50) -> list[dict[str, Any]]:
    """The ``limit`` most recent runs of the namespace, newest first, as plain records: the
    keys of `RUN_COLUMNS` (times in ms since the epoch, ``duration`` in seconds, None while
    running) plus ``skipped``, ``cancelled`` and ``done`` (tasks that ended). Two round trips.
    """
    validate_count("limit", limit)
    client = config.client()
    ids = [i.decode() for i in client.zrevrange(config.keys.runs, 0, limit - 1)]
    pipe = client.pipeline(transaction=False)
    for rid in ids:
        pipe.hmget(config.keys.run(rid).meta, *_RUN_FIELDS)
    out = []
    for rid, values in zip(ids, pipe.execute() if ids else [], strict=True):
        name, status, total, completed, failed, skipped, cancelled, created, finished = values
        counts = [int(n or 0) for n in (completed, failed, skipped, cancelled)]
        out.append({"id": rid, "pipeline": _text(name), "status": _text(status),
                    "tasks": int(total or 0), "completed": counts[0], "failed": counts[1],
                    "skipped": counts[2], "cancelled": counts[3], "done": sum(counts),
                    "created": _ms(created), "finished": _ms(finished),
                    "duration": _duration(_ms(created), _ms(finished))})
    return out


def runs(config: RedisConfig | None = None, limit: int = 50) -> pd.DataFrame:
    """The ``limit`` most recent runs of the namespace, newest first, with the columns of
    `RUN_COLUMNS` (``duration`` in seconds, None while running)."""
    records = recent_runs(config if config is not None else default_config(), limit)
    rows = {name: [r[name] for r in records] for name in RUN_COLUMNS}
    return _frame(rows, ("created", "finished"))
