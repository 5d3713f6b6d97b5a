"""The times a submit leaves out of its jobs' hashes read as they did when it wrote them.

submit_run.lua no longer writes ``created`` on a run's jobs nor ``enqueued`` on the roots it
queues (both were the run's ``created``: `ironforge_nb.queue.submitted`). Every reader fills
them in: here each one is checked against what the old script's fields gave, for a task
submitted and not claimed yet, and after claims, completions, releases, cancels and skips:
`Queue.info` / `Queue.jobs` (`JobInfo`), `Run.task` / `Run.tasks` (`TaskState`), the
monitor's rows, `Run.to_dataframe` (``queued``), a lease's ``meta`` and a webhook's
``created``. The last test writes the old script's fields into the hashes and reads again.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pandas as pd
import pytest

import ironforge_nb as ifn
from ironforge_nb.dag import Pipeline
from ironforge_nb.orchestrator import Run, submit
from ironforge_nb.queue import Queue, RedisConfig
from ironforge_nb.status import JobStatus
from ironforge_nb.widgets.tracker import RunTracker
from tests import tasks
from tests.helpers import claim
from tests.runloop import run_one

pytestmark = pytest.mark.usefixtures("signing_secret")


def shape() -> Pipeline:
    """Roots a and c; b and e after a; d after c."""
    return (Pipeline("times").task("a", tasks.one).task("c", tasks.one)
            .task("b", tasks.double, after="a").task("e", tasks.double, after="a")
            .task("d", tasks.double, after="c"))


def created_ms(run: Run) -> int:
    raw = run.config.client().hget(run.config.keys.run(run.id).meta, "created")
    assert raw is not None
    return int(raw)


def at(ms: int | None) -> datetime | None:
    return None if ms is None else datetime.fromtimestamp(ms / 1000, tz=UTC)


def job_of(run: Run, task: str) -> str:
    return dict(run.job_ids())[task]


def info(run: Run, task: str) -> Any:
    return Queue("default", run.config).info(job_of(run, task))


def check(run: Run, enqueued: dict[str, int | None]) -> None:
    """Every reader gives each task the run's created, and ``enqueued`` as given."""
    created = at(created_ms(run))
    states = {s.name: s for s in run.tasks()}
    frame = run.to_dataframe().set_index("task")
    tracker = RunTracker(run)
    tracker.load()
    for task, when in enqueued.items():
        job = info(run, task)
        assert (job.created, job.enqueued) == (created, at(when)), task
        assert run.task(task).created == created, task
        assert states[task].created == created, task
        queued: Any = frame.loc[task, "queued"]
        assert (None if pd.isna(queued) else queued.to_pydatetime()) == at(when), task
        state = tracker.tasks[task].state
        assert state is not None and state.created == created, task
    for job in Queue("default", run.config).jobs(JobStatus.CANCELLED):
        assert job.created == created


def test_submitted_claimed_completed_cancelled_and_skipped(config: RedisConfig) -> None:
    """Before any claim: created is the run's for all, enqueued the run's for the roots and
    None for the waiting tasks; a claim's lease carries the run's created; a release writes
    the child's own enqueued; a root cancelled once queued keeps the run's, a task cancelled
    while waiting and one skipped have none; a completed root keeps the run's."""
    run = submit(shape(), config=config)
    t0 = created_ms(run)
    assert config.client().hget(config.keys.job(job_of(run, "a")), "created") is None
    check(run, {"a": t0, "c": t0, "b": None, "e": None, "d": None})
    queue = Queue("default", config)
    queue.cancel(job_of(run, "e"))  # waiting: never queued
    lease = claim(queue)
    assert lease.job_id == job_of(run, "a") and lease.meta["created"] == str(t0)
    check(run, {"a": t0, "c": t0, "b": None, "e": None, "d": None})
    run_one(queue, lease)  # b is released: queued now, with its own enqueued
    released = config.client().hget(config.keys.job(job_of(run, "b")), "enqueued")
    assert released is not None and int(released) >= t0
    queue.cancel(job_of(run, "c"))  # a queued root; d is skipped
    check(run, {"a": t0, "c": t0, "b": int(released), "e": None, "d": None})
    assert run.task("d").status is JobStatus.SKIPPED
    assert run.task("c").status is JobStatus.CANCELLED
    lease = claim(queue)
    assert lease.job_id == job_of(run, "b") and lease.meta["created"] == str(t0)


def test_webhook_created_is_the_runs(config: RedisConfig) -> None:
    """job.completed of a run's task carries the run's created."""
    ifn.webhooks.register("http://127.0.0.1:9/hook", ["job.completed"], allow_private=True,
                          config=config)
    run = submit(shape(), config=config)
    queue = Queue("default", config)
    run_one(queue, claim(queue))
    client = config.client()
    found = [json.loads(client.hget(key, "data"))
             for key in client.scan_iter(match=config.keys.prefix + "webhooks:delivery:*")]
    assert [d["created"] for d in found] == [created_ms(run)]
    assert found[0]["task"] == "a"


def test_reads_match_the_fields_the_old_submit_wrote(config: RedisConfig) -> None:
    """Write what the old submit_run.lua wrote (created on every job, enqueued on the roots,
    at the run's created) into a second run right after its submit, drive both runs through
    the same transitions, and read: every reader gives the same times, relative to each run's
    created, from the thin hashes as from the full ones."""
    thin = submit(shape(), config=config, queue="thin")
    full = submit(shape(), config=config, queue="full")
    client = config.client()
    t_full = created_ms(full)
    for task, jid in full.job_ids():
        client.hset(config.keys.job(jid), "created", t_full)
        if task in ("a", "c"):
            client.hset(config.keys.job(jid), "enqueued", t_full)

    def readings(run: Run, queue: str) -> list[Any]:
        t = created_ms(run)
        q = Queue(queue, config)

        def rel(when: Any) -> float | None:
            return None if when is None or pd.isna(when) else when.timestamp() * 1000 - t
        out: list[Any] = []
        for task, jid in run.job_ids():
            job = q.info(jid)
            out.append((task, job.status, rel(job.created), rel(job.enqueued) if task in (
                "a", "c") or job.enqueued is None else "released"))
            out.append(rel(run.task(task).created))
        queued: Any = run.to_dataframe().set_index("task")["queued"]
        out.append([rel(queued[t_]) if t_ in ("a", "c", "e", "d") else pd.isna(queued[t_])
                    for t_ in "abcde"])
        return out

    results = []
    for run, name in ((thin, "thin"), (full, "full")):
        q = Queue(name, config)
        before = readings(run, name)
        q.cancel(job_of(run, "e"))
        lease = claim(q)
        meta_created = int(lease.meta["created"]) - created_ms(run)
        run_one(q, lease)
        q.cancel(job_of(run, "c"))
        results.append((before, meta_created, readings(run, name)))
    assert results[0] == results[1]
