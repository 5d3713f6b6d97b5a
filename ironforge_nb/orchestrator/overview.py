"""A namespace at a glance: its queues, live workers, recent runs and dead letters, as plain data.

The data half of ``ifn.dashboard()`` and of ``ironforge status`` / ``runs`` / ``dead-letters``
(the drawing halves are ``widgets/dashboard.py`` and ``widgets/board_text.py``). One snapshot
costs six round trips whatever the size of the namespace: queue sizes are ZCARDs, throughput
is a ZCOUNT of each queue's completed ZSET (scored by completion time) over the last minute,
what workers run is read from the queues' active ZSETs (at most `ACTIVE_SHOWN` jobs), the dead
letters are the newest entries of the dead ZSETs. Everything is a dict, a list or a number, so
a test (or another front end) reads it without widgets.

Actions on the dead-letter queue (`requeue`, `requeue_all`, `purge`) are the queue's own
transitions. A task of a pipeline run cannot be requeued alone (its run skipped its
descendants): for one, `requeue` retries its run's failed tasks (``Run.retry_failed``).
"""

from __future__ import annotations

from typing import Any

from ironforge_nb.orchestrator.frames import recent_runs
from ironforge_nb.queue import Queue, RedisConfig
from ironforge_nb.queue.options import validate_count
from ironforge_nb.worker.registry import STALE_AFTER, WorkerInfo

__all__ = ["ACTIVE_SHOWN", "QUEUE_STATUSES", "RATE_WINDOW", "overview", "purge", "requeue",
           "requeue_all"]

RATE_WINDOW = 60_000  # ms of completions a queue's throughput is measured over
ACTIVE_SHOWN = 200  # active jobs read per queue to say what workers run
QUEUE_STATUSES = ("queued", "scheduled", "active", "completed", "failed", "cancelled")
_ZSETS = ("wait", "scheduled", "active", "completed", "dead", "cancelled")  # same order
_ACTIVE_FIELDS = ("worker", "task", "run", "started", "progress", "message", "attempts")
_DEAD_FIELDS = ("task", "run", "error", "attempts", "finished")


def overview(config: RedisConfig, *, runs: int = 10, dead: int = 20) -> dict[str, Any]:
    """A snapshot of ``config``'s namespace (see the module docstring)::

        {"namespace", "url" (password masked), "time" (Redis ms),
         "queues": [{"name", "counts": {status: n}, "rate": completed per second}],
         "workers": [{"name", "host", "pid", "queues", "concurrency", "running",
                      "jobs_done", "started", "last_seen", "jobs": [running job]}],
         "runs": [run record, newest first (`frames.recent_runs`)],
         "dead": [{"job", "queue", "task", "run", "error", "attempts", "failed"}],
         "dead_total": n}

    A running job is ``{"job", "queue", "task", "run", "started", "progress", "message",
    "attempt"}``; ``task`` and ``run`` are None for a plain job. ``runs`` and ``dead`` bound
    the recent runs and dead letters listed.
    """
    validate_count("runs", runs)
    validate_count("dead", dead)
    client = config.client()
    keys = config.keys
    seconds, micros = client.time()  # alone: cluster pipelines refuse TIME
    pipe = client.pipeline(transaction=False)
    pipe.smembers(keys.queues)
    pipe.hgetall(keys.workers)
    names, registry = pipe.execute()
    now = int(seconds) * 1000 + int(micros) // 1000
    queues = sorted(n.decode() for n in names)
    sizes, active, dead_ids = _queue_reads(client, config, queues, now, dead)
    jobs = _job_reads(client, config, active, dead_ids)
    workers = _workers(registry, now / 1000, jobs)
    dead_rows = sorted((row for row in jobs.values() if row.get("failed") is not None),
                       key=lambda row: -row["failed"])[:dead]
    return {"namespace": config.namespace, "url": config.masked_url, "time": now,
            "queues": sizes, "workers": workers, "runs": recent_runs(config, runs),
            "dead": dead_rows,
            "dead_total": sum(q["counts"]["failed"] for q in sizes)}


def _queue_reads(client: Any, config: RedisConfig, queues: list[str], now: int, dead: int
                 ) -> tuple[list[dict[str, Any]], list[tuple[str, str]],
                            list[tuple[str, str, int]]]:
    """Sizes and throughput of each queue, its active job ids and newest dead ones."""
    pipe = client.pipeline(transaction=False)
    for name in queues:
        qk = config.keys.queue(name)
        for attr in _ZSETS:
            pipe.zcard(getattr(qk, attr))
        pipe.zcount(qk.completed, now - RATE_WINDOW, "+inf")
        pipe.zrange(qk.completed, 0, 0, withscores=True)
        pipe.zrange(qk.active, 0, ACTIVE_SHOWN - 1)
        pipe.zrevrange(qk.dead, 0, dead - 1, withscores=True)
    replies = pipe.execute() if queues else []
    step = len(_ZSETS) + 4
    sizes, active, dead_ids = [], [], []
    for i, name in enumerate(queues):
        *cards, recent, oldest, running, failed = replies[i * step:(i + 1) * step]
        counts = dict(zip(QUEUE_STATUSES, map(int, cards), strict=True))
        span = RATE_WINDOW  # retention may keep less than a minute: then measure what it kept
        if oldest and recent >= counts["completed"]:
            span = max(now - int(oldest[0][1]), 1000)
        sizes.append({"name": name, "counts": counts, "rate": recent * 1000 / span})
        active += [(name, jid.decode()) for jid in running]
        dead_ids += [(name, jid.decode(), int(ms)) for jid, ms in failed]
    return sizes, active, dead_ids


def _job_reads(client: Any, config: RedisConfig, active: list[tuple[str, str]],
               dead_ids: list[tuple[str, str, int]]) -> dict[tuple[str, str], dict[str, Any]]:
    """The rows of the running and dead jobs, by (kind, job id)."""
    pipe = client.pipeline(transaction=False)
    for _, jid in active:
        pipe.hmget(config.keys.job(jid), *_ACTIVE_FIELDS)
    for _, jid, _ms in dead_ids:
        pipe.hmget(config.keys.job(jid), *_DEAD_FIELDS)
    replies = pipe.execute() if active or dead_ids else []
    rows: dict[tuple[str, str], dict[str, Any]] = {}
    for (queue, jid), values in zip(active, replies, strict=False):
        worker, task, run, started, progress, message, attempts = (_text(v) for v in values)
        rows[("active", jid)] = {"job": jid, "queue": queue, "worker": worker, "task": task,
                                 "run": run, "started": _int(started),
                                 "progress": float(progress or 0), "message": message,
                                 "attempt": int(attempts or 0) + 1}
    for (queue, jid, ms), values in zip(dead_ids, replies[len(active):], strict=True):
        task, run, error, attempts, _finished = (_text(v) for v in values)
        rows[("dead", jid)] = {"job": jid, "queue": queue, "task": task, "run": run,
                               "error": _last_line(error), "attempts": int(attempts or 0),
                               "failed": ms}
    return rows


def _workers(registry: dict[bytes, bytes], now: float,
             jobs: dict[tuple[str, str], dict[str, Any]]) -> list[dict[str, Any]]:
    """The live workers (seen in the last `STALE_AFTER` s), by name, with their jobs."""
    out = []
    for field, value in registry.items():
        info = WorkerInfo.from_json(field.decode(), value)
        if now - info.last_seen > STALE_AFTER:
            continue
        running = [row for (kind, _), row in jobs.items()
                   if kind == "active" and row["worker"] == info.name]
        out.append({"name": info.name, "host": info.host, "pid": info.pid,
                    "queues": list(info.queues), "concurrency": info.concurrency,
                    "running": info.running, "jobs_done": info.jobs_done,
                    "started": info.started, "last_seen": info.last_seen,
                    "jobs": sorted(running, key=lambda r: r["started"] or 0)})
    return sorted(out, key=lambda w: w["name"])


def requeue(config: RedisConfig, queue: str, job_id: str) -> str:
    """Put dead-lettered ``job_id`` of ``queue`` back to work; returns what was done.

    A plain job is queued again (`Queue.requeue`); a task of a pipeline run cannot be alone,
    so its run's failed (and skipped) tasks are retried (``Run.retry_failed``).
    """
    q = Queue(queue, config)
    info = q.info(job_id)
    if info.run is None:
        q.requeue(job_id)
        return f"requeued job {job_id}"
    from ironforge_nb.orchestrator.run import Run

    count = Run(info.run, config).retry_failed()
    return f"retried run {info.run}: {count:,} tasks will run again"


def requeue_all(config: RedisConfig) -> list[str]:
    """`requeue` every dead letter of the namespace (each run's tasks by one retry of the
    run); returns what was done, one line per job or run, refusals included."""
    from ironforge_nb.errors import IronForgeError

    client = config.client()
    done, runs_seen = [], set()
    for name in _queue_names(config):
        ids = [i.decode() for i in client.zrange(config.keys.queue(name).dead, 0, -1)]
        pipe = client.pipeline(transaction=False)
        for jid in ids:
            pipe.hget(config.keys.job(jid), "run")
        for jid, run in zip(ids, pipe.execute() if ids else [], strict=True):
            if run is not None and run in runs_seen:
                continue
            runs_seen.add(run)
            try:
                done.append(requeue(config, name, jid))
            except IronForgeError as exc:  # e.g. its run is running again: say so, go on
                done.append(f"could not requeue job {jid}: {exc}")
    return done


def purge(config: RedisConfig, queue: str | None = None) -> int:
    """Empty the dead-letter queue of ``queue`` (every queue of the namespace when None);
    returns how many jobs left it (`Queue.purge_dead`)."""
    names = [queue] if queue is not None else _queue_names(config)
    return sum(Queue(name, config).purge_dead() for name in names)


def _queue_names(config: RedisConfig) -> list[str]:
    return sorted(n.decode() for n in config.client().smembers(config.keys.queues))


def _text(raw: bytes | None) -> str | None:
    return None if raw is None else raw.decode()


def _int(raw: str | None) -> int | None:
    return None if raw is None else int(raw)


def _last_line(text: str | None) -> str | None:
    if not text:
        return text
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else text
