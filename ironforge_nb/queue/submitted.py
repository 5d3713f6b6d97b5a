"""The times a submit leaves out of its jobs' hashes, and how every reader fills them in.

submit_run.lua writes neither ``created`` on a run's jobs nor ``enqueued`` on the roots it
queues: both are the run's ``created`` (the script's one ``now``), and two fields of 100,000 job
hashes are about 9% of a WIDE submit's Redis time. So a reader of a run's job takes:

- for a missing ``created``: the run's ``created`` (a cache hit's ``finished`` is that time too);
- for a missing ``enqueued``, on a job not served from the cache: the run's ``created`` when the
  job is in a status only a queued job reaches (queued, active, scheduled, completed, failed),
  since every later queuing writes ``enqueued`` (a release, a retry, a stall, a backoff, a
  requeue): such a job is a root its submit queued. A cancelled job without ``enqueued`` was
  either such a root or cancelled while waiting (never queued): the roots are the tasks that
  are not in the run's ``remaining`` HASH, which lists every task that had parents and every
  task a retry reset (walk_helpers.lua: the reset deletes ``enqueued``). Waiting and skipped
  jobs were never queued: nothing to fill in.

The Python readers (`JobInfo` through `Queue.info` / `Queue.jobs`, `TaskState`, the monitor's
rows, `Run.to_dataframe`) go through `fill_in`; the Lua ones do the same (claim_helpers.lua
for a lease's ``meta``, outbox_helpers.lua for a webhook's ``created``). A job whose run is
being deleted (its meta hash goes first, delete_runs.lua) has no run ``created`` left to read.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ironforge_nb.queue.keys import Keys
from ironforge_nb.status import JobStatus

__all__ = ["QUEUED_ONCE", "Absent", "fill_in"]

# the statuses a job reaches only once queued (cancelled: see the module doc)
QUEUED_ONCE = frozenset({JobStatus.QUEUED.value, JobStatus.ACTIVE.value,
                         JobStatus.SCHEDULED.value, JobStatus.COMPLETED.value,
                         JobStatus.FAILED.value})


@dataclass(frozen=True)
class Absent:
    """What a reader found of one run's job: its run and task, its status, whether it is
    served from the cache (``source_job`` or ``source_run``), and which of the two fields
    its hash lacks."""

    run: str
    task: str
    status: str
    cached: bool
    created: bool  # True: the hash has no `created`
    enqueued: bool  # True: the hash has no `enqueued` (or the reader does not read it: False)


def fill_in(client: Any, keys: Keys, jobs: Sequence[Absent | None],
            created: dict[str, bytes | None] | None = None
            ) -> list[tuple[bytes | None, bytes | None]]:
    """For each job (None: nothing is missing, or not a run's job), the ``created`` and
    ``enqueued`` its hash leaves to the reader, as the hash would hold them (None: the job
    has none). ``created`` maps runs to their meta's ``created`` already read (filled in
    here with the ones read now). At most one pipelined round trip, none when nothing is
    missing."""
    created = {} if created is None else created
    roots: dict[int, bool] = {}
    need_runs: set[str] = set()
    for i, job in enumerate(jobs):
        if job is None:
            continue
        if job.created or _maybe_enqueued(job):
            need_runs.add(job.run)
        if job.enqueued and not job.cached and job.status == JobStatus.CANCELLED.value:
            roots[i] = False
    runs = [run for run in need_runs if run not in created]
    if runs or roots:
        pipe = client.pipeline(transaction=False)
        for run in runs:
            pipe.hget(keys.run(run).meta, "created")
        for i in roots:
            job = jobs[i]
            assert job is not None
            pipe.hexists(keys.run(job.run).remaining, job.task)
        replies = pipe.execute()
        created.update(zip(runs, replies[:len(runs)], strict=True))
        for i, listed in zip(roots, replies[len(runs):], strict=True):
            roots[i] = not listed
    out: list[tuple[bytes | None, bytes | None]] = []
    for i, job in enumerate(jobs):
        if job is None:
            out.append((None, None))
            continue
        when = created.get(job.run)
        queued = job.enqueued and not job.cached and (
            job.status in QUEUED_ONCE or roots.get(i, False))
        out.append((when if job.created else None, when if queued else None))
    return out


def _maybe_enqueued(job: Absent) -> bool:
    return job.enqueued and not job.cached and (
        job.status in QUEUED_ONCE or job.status == JobStatus.CANCELLED.value)
