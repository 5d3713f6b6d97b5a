"""RQ peer: ``enqueue_many`` bulk enqueue, a ``SimpleWorker`` in this process (no fork per job).

Processing runs ``work(burst=True)``, the in-process equivalent of ``rq worker --burst``.
Pickup latency runs a non-burst worker in the main thread (RQ installs signal handlers there)
while a second thread enqueues one job at a time and waits for it to start.
"""

from __future__ import annotations

import threading
from typing import Any

import _common as c
import rq
from redis import Redis
from rq import Queue, SimpleWorker

REC = c.REC
noop = c.noop  # RQ refuses functions of __main__: the body lives in an importable module


def main() -> dict[str, Any]:
    args = c.parse_args(__doc__ or "")
    c.RoundTrips.install()
    stats, conn = c.Stats(args.url), Redis.from_url(args.url)
    q = Queue("bench", connection=conn)
    n = args.jobs
    out: dict[str, Any] = {"system": "rq", "version": rq.__version__}

    with c.timed() as t:
        for _ in range(n):
            q.enqueue(noop)
    out["single_enqueue"] = {"jobs_per_s": c.rate(n, t[0]), "method": "Queue.enqueue"}
    stats.flush()

    with c.timed() as t:
        q.enqueue_many([Queue.prepare_data(noop) for _ in range(n)])
    out["bulk_enqueue"] = {"jobs_per_s": c.rate(n, t[0]), "method": "Queue.enqueue_many"}

    REC.arm(n)
    before = stats.snapshot()
    with c.timed() as t:
        SimpleWorker([q], connection=conn).work(burst=True, logging_level="WARNING")
    out["processing"] = {
        "jobs_per_s": round(REC.rate(), 1), "drain_s": round(t[0], 3),
        "method": "SimpleWorker.work(burst=True), 1 process",
        **c.delta(before, stats.snapshot(), n),
    }
    stats.flush()
    out["pickup"] = pickup(q, conn, args.pickup_samples)
    return out


def pickup(q: Queue, conn: Redis, samples: int) -> dict[str, Any]:
    """Enqueue one job at a time to an idle SimpleWorker; latency = enqueue -> body starts."""
    feeder = threading.Thread(
        target=c.feed_pickups, args=(lambda sent: q.enqueue(noop, sent), samples), daemon=True)
    feeder.start()
    SimpleWorker([q], connection=conn).work(max_jobs=samples, logging_level="WARNING")
    feeder.join()
    return c.latency_summary(REC.pickups)


if __name__ == "__main__":
    c.run_guarded(main)
