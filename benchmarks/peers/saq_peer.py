"""SAQ peer: one asyncio ``Worker`` with ``concurrency=10`` in this process.

SAQ has no bulk enqueue API: "bulk" is ``Queue.enqueue`` calls kept 20 in flight with asyncio
(the method of SAQ's own benchmark harness). The worker blocks on ``BLMOVE`` when idle.
"""

from __future__ import annotations

import asyncio
from typing import Any

import _common as c
import saq
from saq import Queue, Worker

REC = c.REC
IN_FLIGHT = 20


async def noop(ctx: dict[str, Any], *, sent_at: float | None = None) -> None:
    """The job body: record that it ran (and when it was sent, for pickup latency)."""
    REC.hit(sent_at)


async def bulk(queue: Queue, n: int) -> None:
    """Enqueue n jobs with at most IN_FLIGHT requests outstanding."""
    sem = asyncio.Semaphore(IN_FLIGHT)

    async def one() -> None:
        async with sem:
            await queue.enqueue("noop")

    await asyncio.gather(*(one() for _ in range(n)))


async def amain() -> dict[str, Any]:
    args = c.parse_args(__doc__ or "")
    c.RoundTrips.install()
    stats, n = c.Stats(args.url), args.jobs
    queue = Queue.from_url(args.url, name="bench")
    await queue.connect()
    out: dict[str, Any] = {"system": "saq", "version": saq.__version__}

    with c.timed() as t:
        for _ in range(n):
            await queue.enqueue("noop")
    out["single_enqueue"] = {"jobs_per_s": c.rate(n, t[0]), "method": "Queue.enqueue, awaited"}
    stats.flush()

    with c.timed() as t:
        await bulk(queue, n)
    out["bulk_enqueue"] = {
        "jobs_per_s": c.rate(n, t[0]), "method": f"Queue.enqueue x{IN_FLIGHT} in flight"}

    REC.arm(n)
    REC.async_reached = asyncio.Event()
    before = stats.snapshot()
    worker = Worker(queue, functions=[noop], concurrency=10)
    with c.timed() as t:
        task = asyncio.create_task(worker.start())
        await REC.async_reached.wait()
    out["processing"] = {
        "jobs_per_s": round(REC.rate(), 1), "drain_s": round(t[0], 3),
        "method": "Worker(concurrency=10), 1 process",
        **c.delta(before, stats.snapshot(), n),
    }
    await worker.stop()
    await asyncio.gather(task, return_exceptions=True)
    stats.flush()

    out["pickup"] = await pickup(queue, args.pickup_samples)
    await queue.disconnect()
    return out


async def pickup(queue: Queue, samples: int) -> dict[str, Any]:
    """Enqueue one job at a time to an idle worker; latency = enqueue -> body starts."""
    worker = Worker(queue, functions=[noop], concurrency=10)
    task = asyncio.create_task(worker.start())
    await c.feed_pickups_async(lambda sent: queue.enqueue("noop", sent_at=sent), samples)
    await worker.stop()
    await asyncio.gather(task, return_exceptions=True)
    return c.latency_summary(REC.pickups)


if __name__ == "__main__":
    c.run_guarded(lambda: asyncio.run(amain()))
