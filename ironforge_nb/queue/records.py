"""Records the queue hands out: a `Lease` on a claimed job and a `JobInfo` snapshot of a job."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from ironforge_nb.queue.borrowing import progress_of
from ironforge_nb.status import JobStatus

__all__ = ["DEFAULT_MAX_STALLS", "RESERVED_FIELDS", "RUN_FIELDS", "AttemptError", "JobInfo",
           "Lease", "leases_from_reply"]

# Stalls (the worker or executor died while the task ran) a job survives: queued again each
# time, at no attempt's cost; the next one fails it. Two tolerate two unrelated crashes in a row
# (an OOM-killed neighbour, a redeploy, a laptop lid), while a task that kills its worker each
# time (out of memory) is stopped at its third run instead of taking down workers forever.
DEFAULT_MAX_STALLS = 2


# Fields of the job meta hash written by the scripts; `enqueue(meta=...)` may not use them.
RESERVED_FIELDS = frozenset({
    "status", "queue", "priority", "attempts", "max_attempts", "backoff_ms", "token", "worker",
    "lease_ms", "progress", "message", "created", "enqueued", "started", "finished", "error",
    "failures", "inputs", "stalls", "max_stalls", "claims", "stalled", "ended", "receipt",
})
# Fields only `submit_run.lua` writes: a job carrying them gets its run's bookkeeping (counters,
# children released, events, trimming with the run), so a plain job may not claim them.
RUN_FIELDS = frozenset({"run", "task"})
_KNOWN = RESERVED_FIELDS | RUN_FIELDS


@dataclass(frozen=True)
class Lease:
    """A claimed job: the worker must heartbeat before ``deadline_ms`` and then complete or fail.

    ``token`` fences the worker: once the lease expires and the job is handed to another
    attempt, every call made with this lease raises `LeaseLost`. ``attempt`` is the try this
    lease carries, counted from 1: the job's ``attempts`` (tries its own code ended) + 1, so a
    job run again after a stall or a free release runs the same attempt again. ``meta`` holds
    the job's stable fields at claim time: queue, priority, max_attempts, backoff_ms, created,
    run, task and the fields given to ``enqueue(meta=...)``. ``worker`` and ``lease_ms`` are
    the claim's.
    ``inputs`` maps parent job ids to their stored results for a task of a DAG run: the claim
    brings the small ones along (see claim_helpers.lua), so the task needs no read of its own.
    """

    job_id: str
    token: str
    attempt: int
    payload: bytes
    queue: str
    deadline_ms: int
    meta: dict[str, str] = field(default_factory=dict, compare=False)
    worker: str = ""
    lease_ms: int = 30_000
    inputs: Mapping[str, bytes] = field(default_factory=dict, compare=False)

    def __repr__(self) -> str:
        return (f"Lease(job_id={self.job_id!r}, attempt={self.attempt}, queue={self.queue!r}, "
                f"payload={len(self.payload)} bytes)")


def leases_from_reply(reply: list[Any], queue: str, worker: str, lease_ms: int) -> list[Lease]:
    """Leases from a claim reply ``[wait_ms, (id, token, attempt, deadline, payload, meta,
    inputs)*]`` (meta and inputs as flat key/value lists)."""
    out = []
    for i in range(1, len(reply), 7):
        flat = reply[i + 5]
        meta = {flat[j].decode(): flat[j + 1].decode() for j in range(0, len(flat), 2)}
        found = reply[i + 6]
        inputs = {found[j].decode(): found[j + 1] for j in range(0, len(found), 2)}
        out.append(Lease(reply[i].decode(), reply[i + 1].decode(), reply[i + 2],
                         reply[i + 4], queue, reply[i + 3], meta, worker, lease_ms, inputs))
    return out


@dataclass(frozen=True)
class AttemptError:
    """One failed attempt in a job's error history."""

    attempt: int
    at: datetime
    error: str


def _at(ms: str) -> datetime:
    return datetime.fromtimestamp(int(ms) / 1000, tz=UTC)


def _time(ms: str | None) -> datetime | None:
    return None if ms is None else _at(ms)


@dataclass(frozen=True)
class JobInfo:
    """A snapshot of one job's meta hash (times are UTC datetimes, None when not reached)."""

    id: str
    queue: str
    status: JobStatus
    priority: int = 0
    progress: float = 0.0
    message: str | None = None
    attempts: int = 0  # tries ended by the task's own error, timeout or success
    max_attempts: int = 1
    backoff: float = 0.0  # seconds, base of the exponential retry delay
    stalls: int = 0  # times its worker or executor died while it ran (not attempts)
    max_stalls: int = DEFAULT_MAX_STALLS
    claims: int = 0  # times it was handed to a worker (prefetched ones included)
    last_stall: str | None = None  # how the last stall happened, and on which worker
    created: datetime | None = None
    enqueued: datetime | None = None
    started: datetime | None = None
    finished: datetime | None = None
    worker: str | None = None
    error: str | None = None
    errors: tuple[AttemptError, ...] = ()
    run: str | None = None
    task: str | None = None
    meta: dict[str, str] = field(default_factory=dict, compare=False)

    @classmethod
    def from_hash(cls, job_id: str, raw: Mapping[bytes, bytes]) -> JobInfo:
        """Build from the raw HGETALL reply of the job's meta hash."""
        h = {k.decode(): v.decode() for k, v in raw.items()}
        history = []
        for name, value in h.items():
            if name.startswith("error."):
                attempt, ms, text = value.split("|", 2)
                history.append((int(name[6:]), AttemptError(int(attempt), _at(ms), text)))
        history.sort(key=lambda item: item[0])
        return cls(
            id=job_id,
            queue=h.get("queue", ""),
            status=JobStatus(h["status"]),
            priority=int(h.get("priority", 0)),
            progress=progress_of(h.get("progress"), h["status"]),
            message=h.get("message"),
            attempts=int(h.get("attempts", 0)),
            max_attempts=int(h.get("max_attempts", 1)),
            backoff=int(h.get("backoff_ms", 0)) / 1000,
            stalls=int(h.get("stalls", 0)),
            max_stalls=int(h.get("max_stalls", DEFAULT_MAX_STALLS)),
            claims=int(h.get("claims", 0)),
            last_stall=h.get("stalled"),
            created=_time(h.get("created") or h.get("finished")),
            enqueued=_time(h.get("enqueued")),
            started=_time(h.get("started")),
            finished=_time(h.get("finished")),
            worker=h.get("worker"),
            error=h.get("error"),
            errors=tuple(err for _, err in history),
            run=h.get("run"),
            task=h.get("task"),
            meta={k: v for k, v in h.items() if k not in _KNOWN and not k.startswith("error.")},
        )
