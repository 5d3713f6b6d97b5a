"""Celery peer: Redis broker, no result backend, one worker with the ``solo`` pool (this process).

The worker runs with ``--without-gossip --without-mingle --without-heartbeat`` (the usual
settings for throughput; the events they drive are not part of a no-op job). Celery has no
bulk enqueue call: "bulk" is ``group(...).apply_async()``, which publishes every task through
one producer. The worker runs in the main thread (Celery installs signal handlers there) and a
driver thread measures, then stops it with SIGTERM (Celery's warm shutdown).
"""

from __future__ import annotations

import os
import signal
import threading
from typing import Any

import _common as c
import celery
from celery import Celery, group

REC = c.REC
CHUNK = 1000


def make_app(url: str) -> Celery:
    """The Celery app: broker on the benchmark's Redis, results ignored."""
    app = Celery("bench", broker=url)
    app.conf.update(task_ignore_result=True, worker_hijack_root_logger=False,
                    broker_connection_retry_on_startup=True, task_default_queue="bench",
                    worker_redirect_stdouts=False)
    app.task(name="bench.noop", ignore_result=True)(c.noop)
    return app


def main() -> dict[str, Any]:
    args = c.parse_args(__doc__ or "")
    c.RoundTrips.install()
    stats, n = c.Stats(args.url), args.jobs
    app = make_app(args.url)
    task = app.tasks["bench.noop"]
    out: dict[str, Any] = {"system": "celery", "version": celery.__version__}

    with c.timed() as t:
        for _ in range(n):
            task.delay()
    out["single_enqueue"] = {"jobs_per_s": c.rate(n, t[0]), "method": "task.delay()"}
    stats.flush()

    with c.timed() as t:
        for start in range(0, n, CHUNK):
            group(task.s() for _ in range(min(CHUNK, n - start))).apply_async()
    out["bulk_enqueue"] = {
        "jobs_per_s": c.rate(n, t[0]), "method": f"group(...).apply_async(), {CHUNK} per group"}

    REC.arm(n)
    before = stats.snapshot()
    driver = threading.Thread(target=drive, args=(task, stats, before, n, args, out), daemon=True)
    driver.start()
    app.Worker(pool_cls="solo", concurrency=1, loglevel="WARNING", quiet=True, queues=["bench"],
               without_gossip=True, without_mingle=True, without_heartbeat=True).start()
    driver.join()
    return out


def drive(task: Any, stats: c.Stats, before: dict[str, int], n: int, args: Any,
          out: dict[str, Any]) -> None:
    """Wait for the pre-enqueued jobs, then take pickup samples, then stop the worker."""
    try:
        if not REC.reached.wait(600):
            raise TimeoutError("the Celery worker did not finish the jobs within 600 s")
        out["processing"] = {
            "jobs_per_s": round(REC.rate(), 1),
            "method": "worker, solo pool, 1 process (prefetch multiplier 4)",
            **c.delta(before, stats.snapshot(), n),
        }
        c.feed_pickups(lambda sent: task.delay(sent), args.pickup_samples)
        out["pickup"] = c.latency_summary(REC.pickups)
    finally:
        os.kill(os.getpid(), signal.SIGTERM)


if __name__ == "__main__":
    c.run_guarded(main)
