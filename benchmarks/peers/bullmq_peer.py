"""BullMQ's Python port: ``addBulk`` bulk enqueue, one ``Worker`` with ``concurrency=50``.

BullMQ runs the same Lua scripts as the Node library (one script per transition); its worker
blocks on ``BZPOPMIN`` of a marker key when idle. ``addBulk`` is called with chunks of 1,000
jobs, the chunk size IronForge's ``enqueue_batch`` uses.
"""

from __future__ import annotations

import asyncio
from typing import Any

import _common as c
import bullmq
from bullmq import Queue, Worker

REC = c.REC
CHUNK = 1000


async def process(job: Any, token: str) -> None:
    """The job body: record that it ran (and when it was sent, for pickup latency)."""
    REC.hit((job.data or {}).get("sent_at"))


async def amain() -> dict[str, Any]:
    args = c.parse_args(__doc__ or "")
    c.RoundTrips.install()
    stats, n = c.Stats(args.url), args.jobs
    opts: dict[str, Any] = {"connection": args.url}
    queue = Queue("bench", opts)
    out: dict[str, Any] = {"system": "bullmq", "version": bullmq.__version__}

    with c.timed() as t:
        for _ in range(n):
            await queue.add("noop", {})
    out["single_enqueue"] = {"jobs_per_s": c.rate(n, t[0]), "method": "Queue.add, awaited"}
    stats.flush()

    with c.timed() as t:
        for start in range(0, n, CHUNK):
            await queue.addBulk(
                [{"name": "noop", "data": {}} for _ in range(min(CHUNK, n - start))])
    out["bulk_enqueue"] = {
        "jobs_per_s": c.rate(n, t[0]), "method": f"Queue.addBulk, chunks of {CHUNK}"}

    REC.arm(n)
    REC.async_reached = asyncio.Event()
    before = stats.snapshot()
    with c.timed() as t:
        worker = Worker("bench", process, {**opts, "concurrency": 50})
        await REC.async_reached.wait()
    out["processing"] = {
        "jobs_per_s": round(REC.rate(), 1), "drain_s": round(t[0], 3),
        "method": "Worker(concurrency=50), 1 process",
        **c.delta(before, stats.snapshot(), n),
    }
    await worker.close()
    stats.flush()

    out["pickup"] = await pickup(queue, opts, args.pickup_samples)
    await queue.close()
    return out


async def pickup(queue: Queue, opts: dict[str, Any], samples: int) -> dict[str, Any]:
    """Add one job at a time for an idle worker; latency = add -> processor starts."""
    worker = Worker("bench", process, {**opts, "concurrency": 50})
    await c.feed_pickups_async(lambda sent: queue.add("noop", {"sent_at": sent}), samples)
    await worker.close()
    return c.latency_summary(REC.pickups)


if __name__ == "__main__":
    c.run_guarded(lambda: asyncio.run(amain()))
