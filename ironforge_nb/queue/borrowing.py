"""A task served from the cross-run cache borrows its result: the reads that follow it.

submit_run.lua creates such a task's job `completed` with no result of its own: its
``source_job`` field names the job holding the result (the holder), and readers read that one.
Every reader of results (`Queue.result`, `Run.result`, `Run.results`, an executor's parents)
goes through `read_results`, so the follow is written once (claim_helpers.lua follows
``source_job`` the same way for the results a claim brings along). The run that computed a
borrowed result is the job's ``source_run`` field, or, when it has none (the holder computed
it: the common case, left out of the hash to make a hit cheaper), the run of its
``source_job`` (`origin`). Such a job has no ``progress`` either (`progress_of`: 1, as a
completion writes), nor ``created``, as no job of a run has (readers take the run's
``created``, `submitted.fill_in`; its ``finished`` is the same time).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ironforge_nb.queue.keys import Keys
from ironforge_nb.status import JobStatus

__all__ = ["origin", "progress_of", "read_results"]

_CHUNK = 1000  # jobs read per round trip


def origin(source_run: bytes | str | None, source_job: bytes | str | None) -> str | None:
    """The run whose result a job served from the cache reuses (None: the task ran here),
    from its ``source_run`` and ``source_job`` fields (a run's job ids are
    ``<run>.<position>``)."""
    if source_run:
        return _text(source_run)
    if source_job:
        return _text(source_job).rsplit(".", 1)[0]
    return None


def _text(raw: bytes | str) -> str:
    return raw.decode() if isinstance(raw, bytes) else raw


def progress_of(raw: bytes | str | None, status: str | None) -> float:
    """A job's progress from its ``progress`` field: 1 for a completed job without one (a job
    served from the cache has none: it never ran; a completion writes 1)."""
    if raw:
        return float(raw)
    return 1.0 if status == JobStatus.COMPLETED else 0.0


def read_results(client: Any, keys: Keys, job_ids: Sequence[str], fields: Sequence[str] = ()
                 ) -> list[tuple[list[bytes | None], bytes | None]]:
    """For each job, in order: the values of ``fields`` of its meta hash, and its stored
    result, or for a job served from the cache its holder's (None: no result, not completed
    yet, or expired). One pipelined round trip per 1000 jobs, and one more for those that
    borrow (GETs, not MGET: cluster pipelines refuse MGET)."""
    out: list[tuple[list[bytes | None], bytes | None]] = []
    for start in range(0, len(job_ids), _CHUNK):
        chunk = job_ids[start:start + _CHUNK]
        pipe = client.pipeline(transaction=False)
        for jid in chunk:
            pipe.hmget(keys.job(jid), *fields, "source_job")
            pipe.get(keys.result(jid))
        replies = pipe.execute()
        rows, blobs = replies[::2], replies[1::2]
        borrowed = [i for i, (row, blob) in enumerate(zip(rows, blobs, strict=True))
                    if blob is None and row[-1] is not None]
        if borrowed:
            pipe = client.pipeline(transaction=False)
            for i in borrowed:
                pipe.get(keys.result(rows[i][-1].decode()))
            for i, blob in zip(borrowed, pipe.execute(), strict=True):
                blobs[i] = blob
        out.extend((list(row[:-1]), blob) for row, blob in zip(rows, blobs, strict=True))
    return out
