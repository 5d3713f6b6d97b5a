"""`TaskState`: one task of a run as its user thinks of it, read from its job's meta hash.

``run.task("clean")`` needs no queue name and no job id: the run's tasks hash maps the task to
its job, and one HMGET of `TASK_FIELDS` reads the rest. The same reader serves ``run.tasks()``
(pipelined, one round trip per 1000 tasks) and the live monitor, so every view parses a job's
hash the same way. Times are Redis server times (UTC).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from ironforge_nb.queue.borrowing import origin, progress_of
from ironforge_nb.queue.config import RedisConfig
from ironforge_nb.status import JobStatus

__all__ = ["TASK_FIELDS", "TaskState", "last_line", "read_states", "read_task_states",
           "run_of", "task_state"]

# The job hash fields a TaskState is made of, in HMGET order. `stalls` is written by workers
# that count stalled attempts separately (0 when absent); `source_run` / `source_job` by a run
# that reused another run's stored result instead of running the task (`borrowing.origin`).
TASK_FIELDS = ("status", "queue", "progress", "message", "attempts", "stalls", "max_attempts",
               "worker", "created", "started", "finished", "error", "source_run", "source_job")
_CHUNK = 1000


@dataclass(frozen=True)
class TaskState:
    """One task of a run, read now: ``run.task("clean")``.

    ``progress`` (0 to 1) and ``message`` are what the task last reported through
    `ifn.progress` / `ifn.track`. ``error`` is the last line of the last failed attempt's
    error (``"ValueError: bad row"``), ``traceback`` that error in full; both None when no
    attempt failed. ``elapsed`` is seconds from the last attempt's start to its end, or to now
    while it runs (None before it starts). ``source_run`` names the run whose stored result
    this task reused, when it did not run here.
    """

    name: str
    job_id: str
    queue: str
    status: JobStatus
    progress: float = 0.0
    message: str | None = None
    attempts: int = 0
    stalls: int = 0
    max_attempts: int = 1
    worker: str | None = None
    created: datetime | None = None
    started: datetime | None = None
    finished: datetime | None = None
    elapsed: float | None = None
    error: str | None = None
    traceback: str | None = None
    source_run: str | None = None

    @classmethod
    def from_fields(cls, name: str, job_id: str, values: Sequence[bytes | None],
                    now_ms: float | None = None, run_created: int | None = None) -> TaskState:
        """Build from an HMGET reply of `TASK_FIELDS` (``now_ms``: the time an active task's
        elapsed runs to; the local clock by default). ``run_created`` is the run's
        ``created`` (ms), the task's own when its hash has none: submit_run.lua leaves it
        out (`queue.submitted`); without it, such a task reads its ``finished``, as a cache
        hit's is the same time."""
        raw = dict(zip(TASK_FIELDS, (None if v is None else v.decode() for v in values),
                       strict=True))
        started, finished = _ms(raw["started"]), _ms(raw["finished"])
        status = JobStatus(raw["status"] or JobStatus.WAITING.value)
        end = finished if finished is not None else (
            (time.time() * 1000 if now_ms is None else now_ms)
            if status is JobStatus.ACTIVE else None)
        elapsed = None if started is None or end is None else max(0.0, (end - started) / 1000)
        full = raw["error"]
        return cls(
            name=name, job_id=job_id, queue=raw["queue"] or "", status=status,
            progress=progress_of(raw["progress"], status), message=raw["message"],
            attempts=int(raw["attempts"] or 0), stalls=int(raw["stalls"] or 0),
            max_attempts=int(raw["max_attempts"] or 1), worker=raw["worker"] or None,
            created=_time(_ms(raw["created"]) or run_created or finished),
            started=_time(started),
            finished=_time(finished), elapsed=elapsed,
            error=last_line(full) if full else None, traceback=full or None,
            source_run=origin(raw["source_run"], raw["source_job"]),
        )


def last_line(text: str) -> str:
    """The last non-blank line of an error text: the exception itself, under its traceback."""
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1].strip() if lines else ""


def task_state(config: RedisConfig, name: str, job_id: str) -> TaskState | None:
    """The state of one task (None if its job hash is gone)."""
    pipe = config.client().pipeline(transaction=False)
    pipe.hmget(config.keys.job(job_id), *TASK_FIELDS)
    pipe.hget(config.keys.run(run_of(job_id)).meta, "created")
    values, created = pipe.execute()
    if values[0] is None:
        return None
    return TaskState.from_fields(name, job_id, values, run_created=_ms(created))


def read_task_states(config: RedisConfig, pairs: Sequence[tuple[str, str]]) -> list[TaskState]:
    """States of ``(task, job id)`` pairs, in order, one pipelined round trip per 1000 (tasks
    whose job hash is gone are left out)."""
    return [state for state in read_states(config, pairs) if state is not None]


def read_states(config: RedisConfig,
                pairs: Sequence[tuple[str, str]]) -> list[TaskState | None]:
    """`read_task_states`, with None in the place of a task whose job hash is gone."""
    client = config.client()
    out: list[TaskState | None] = []
    now_ms = time.time() * 1000
    created: dict[str, int | None] = {}  # run -> its created (ms): the tasks' own (see above)
    for start in range(0, len(pairs), _CHUNK):
        chunk = pairs[start:start + _CHUNK]
        pipe = client.pipeline(transaction=False)
        for _, jid in chunk:
            pipe.hmget(config.keys.job(jid), *TASK_FIELDS)
        runs = list(dict.fromkeys(run for _, jid in chunk if (run := run_of(jid)) not in created))
        for run in runs:
            pipe.hget(config.keys.run(run).meta, "created")
        replies: list[Any] = pipe.execute()
        created.update(zip(runs, map(_ms, replies[len(chunk):]), strict=True))
        out.extend(None if values[0] is None else
                   TaskState.from_fields(task, jid, values, now_ms, created[run_of(jid)])
                   for (task, jid), values in zip(chunk, replies[:len(chunk)], strict=True))
    return out


def run_of(job_id: str) -> str:
    """The run of a run's job (its id is ``<run>.<position>``)."""
    return job_id.rsplit(".", 1)[0]


def _ms(raw: str | None) -> int | None:
    return None if not raw else int(raw)


def _time(ms: int | None) -> datetime | None:
    return None if ms is None else datetime.fromtimestamp(ms / 1000, tz=UTC)
