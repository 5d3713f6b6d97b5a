"""arq peer: one asyncio worker (``max_jobs=100``, ``poll_delay=1 ms``) in this process.

arq has no bulk enqueue API: "bulk" is ``enqueue_job`` calls kept 20 in flight with asyncio.
arq polls Redis instead of blocking, so its pickup latency and idle cost depend on
``poll_delay``; 1 ms is the low setting the brief asks for (the default is 500 ms).
"""

from __future__ import annotations

import asyncio
from typing import Any

import _common as c
import arq
from arq.connections import ArqRedis, RedisSettings, create_pool
from arq.worker import Worker

REC = c.REC
IN_FLIGHT = 20  # what SAQ's own benchmark harness uses
POLL_DELAY = 0.001


async def noop(ctx: dict[str, Any], sent_at: float | None = None) -> None:
    """The job body: record that it ran (and when it was sent, for pickup latency)."""
    REC.hit(sent_at)


def worker(pool: ArqRedis, burst: bool) -> Worker:
    """A worker as configured for every phase."""
    return Worker(
        functions=[noop], redis_pool=pool, burst=burst, handle_signals=False,
        max_jobs=100, poll_delay=POLL_DELAY,
    )


async def bulk(pool: ArqRedis, n: int) -> None:
    """Enqueue n jobs with at most IN_FLIGHT requests outstanding."""
    sem = asyncio.Semaphore(IN_FLIGHT)

    async def one() -> None:
        async with sem:
            await pool.enqueue_job("noop")

    await asyncio.gather(*(one() for _ in range(n)))


async def amain() -> dict[str, Any]:
    args = c.parse_args(__doc__ or "")
    c.RoundTrips.install()
    stats, n = c.Stats(args.url), args.jobs
    pool = await create_pool(RedisSettings.from_dsn(args.url))
    out: dict[str, Any] = {"system": "arq", "version": arq.VERSION}

    with c.timed() as t:
        for _ in range(n):
            await pool.enqueue_job("noop")
    out["single_enqueue"] = {"jobs_per_s": c.rate(n, t[0]), "method": "enqueue_job, awaited"}
    stats.flush()

    with c.timed() as t:
        await bulk(pool, n)
    out["bulk_enqueue"] = {
        "jobs_per_s": c.rate(n, t[0]), "method": f"enqueue_job x{IN_FLIGHT} in flight"}

    REC.arm(n)
    before = stats.snapshot()
    w = worker(pool, burst=True)
    with c.timed() as t:
        await w.main()
    out["processing"] = {
        "jobs_per_s": round(REC.rate(), 1), "drain_s": round(t[0], 3),
        "method": "Worker(max_jobs=100, poll_delay=1ms, burst), 1 process",
        **c.delta(before, stats.snapshot(), n),
    }
    await w.close()
    stats.flush()
    out["pickup"] = await pickup(pool, args.pickup_samples)
    await pool.aclose()
    return out


async def pickup(pool: ArqRedis, samples: int) -> dict[str, Any]:
    """Enqueue one job at a time to an idle worker; latency = enqueue -> body starts."""
    w = worker(pool, burst=False)
    task = asyncio.create_task(w.main())
    await c.feed_pickups_async(lambda sent: pool.enqueue_job("noop", sent), samples)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    await w.close()
    return c.latency_summary(REC.pickups)


if __name__ == "__main__":
    c.run_guarded(lambda: asyncio.run(amain()))
