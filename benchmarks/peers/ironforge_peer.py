"""IronForge peer: the queue engine driven by a minimal benchmark worker loop.

``ironforge_nb.worker`` (the real worker: heartbeats, timeouts, retries, signals) is not used
here: the loops below do only what a worker does per job at steady state. The headline loop
claims a batch (``dequeue_many``), runs a no-op body per job, then ``complete_many(leases,
fetch_next=BATCH)``, which completes the batch and claims the next one in the same round trip.
A second figure runs jobs one at a time with ``complete(lease, fetch_next=1)``. A third,
`work_marked`, is the batched loop under the guarantee the real worker keeps (a job's code
runs only once Redis recorded it started: one mark, one round trip, per held job). All three
are labelled "benchmark loop" in the table for that reason. A fourth drains the same jobs with one
real ``ironforge worker`` process (its executor child runs a no-op executor, `noop_executor`):
what a deployment of the product's worker gets, heartbeats, pipes and all.

Extra figures: progress-update latency with a 10 MB payload vs a 1 KB payload, and the split
between EVALSHA calls (round trips) and the commands the scripts run inside Redis.
"""

from __future__ import annotations

import contextlib
import os
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import _common as c

import ironforge_nb
from ironforge_nb.queue import Lease, Queue, RedisConfig
from ironforge_nb.status import JobStatus

REC = c.REC
WORKER = "bench-worker"
BATCH = 50  # jobs claimed and completed per round trip (BullMQ-py runs 50 at once here)
LEASE = 30.0
CHUNK = 1000
PROGRESS_CALLS = 300
STAMP = struct.Struct("<d")


def run_noop(lease: Lease) -> None:
    """The job body: record that it ran (and, for pickup samples, when it was enqueued)."""
    payload = lease.payload
    REC.hit(STAMP.unpack(payload)[0] if len(payload) == STAMP.size else None)


def work_batched(q: Queue, stop: threading.Event | None = None,
                 idle_timeout: float = 0.05) -> None:
    """Claim up to BATCH jobs, run them, complete them all and claim the next batch at once.

    Without ``stop`` it drains the queue (returns when a claim comes back empty); with ``stop``
    it blocks on the queue until ``stop`` is set.
    """
    while stop is None or not stop.is_set():
        leases = q.dequeue_many(WORKER, BATCH, lease=LEASE, timeout=idle_timeout)
        if not leases and stop is None:
            return
        while leases:
            for lease in leases:
                run_noop(lease)
            leases, refused = q.complete_many(leases, fetch_next=BATCH)
            if refused:
                raise RuntimeError(f"completions refused: {refused}")


def work_marked(q: Queue) -> None:
    """`work_batched` under the guarantee the shipped worker keeps: no job's code runs before
    Redis recorded it started. The claim starts the first job of a batch (``started=1``) and
    holds the others; each of those is marked (`Queue.start`, one round trip) right before it
    runs. The engine's own limit for a worker that marks starts; drains the queue."""
    leases = q.dequeue_many(WORKER, BATCH, lease=LEASE, timeout=0.05, started=1)
    while leases:
        run_noop(leases[0])
        for lease in leases[1:]:
            if q.start([lease]) != 1:
                raise RuntimeError(f"start mark refused: {lease.job_id}")
            run_noop(lease)
        leases, refused = q.complete_many(leases, fetch_next=BATCH, started=1)
        if refused:
            raise RuntimeError(f"completions refused: {refused}")


def noop_executor(config: RedisConfig, lease: Lease) -> None:
    """The executor of the real worker's row: runs nothing, returns no result."""


def processing_worker(url: str, n: int) -> dict[str, Any]:
    """n queued jobs drained by one ``ironforge worker`` process (1 executor, default
    prefetch), in a namespace of their own; jobs/s between the first and the last completion
    seen by polling the queue's counts every 2 ms (the worker's start-up is not counted)."""
    q = Queue("bench", RedisConfig(url, namespace="bench-worker"))
    q.enqueue_batch([b""] * n, chunk_size=CHUNK)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(Path(__file__).resolve().parent), *sys.path])}
    proc = subprocess.Popen(
        [sys.executable, "-m", "ironforge_nb.worker", "--url", url, "--namespace",
         "bench-worker", "--queues", "bench", "--executor", "ironforge_peer:noop_executor",
         "--log-level", "WARNING"], env=env)
    first: tuple[float, int] | None = None
    try:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            counts = q.counts()
            left = counts[JobStatus.QUEUED] + counts[JobStatus.ACTIVE]
            now = time.perf_counter()
            if first is None and left < n:
                first = (now, n - left)
            if left == 0:
                break
            time.sleep(0.002)
        else:
            raise RuntimeError("the worker did not drain the queue within 300 s")
        cpu = _cpu_of_tree(proc.pid)  # worker + executor (+ webhook dispatcher), start-up too
    finally:
        proc.terminate()
        proc.wait(30)
    assert first is not None
    return {"jobs_per_s": c.rate(n - first[1], now - first[0]),
            "cpu_us_per_job": cpu / n * 1e6,
            "method": "ironforge worker: 1 process + 1 executor process, default prefetch"}


def _cpu_of_tree(pid: int) -> float:
    """CPU seconds (user + system) of process ``pid`` and its descendants."""
    import psutil

    total = 0.0
    try:
        root = psutil.Process(pid)
        for p in [root, *root.children(recursive=True)]:
            with contextlib.suppress(psutil.Error):
                t = p.cpu_times()
                total += t.user + t.system
    except psutil.Error:
        pass
    return total


def work_single(q: Queue) -> None:
    """Drain the queue one job at a time: ``complete(lease, fetch_next=1)`` per job."""
    leases = q.dequeue_many(WORKER, 1, lease=LEASE, timeout=0.05)
    while leases:
        run_noop(leases[0])
        leases = q.complete(leases[0], fetch_next=1) or q.dequeue_many(
            WORKER, 1, lease=LEASE, timeout=0.05)


def main() -> dict[str, Any]:
    args = c.parse_args(__doc__ or "")
    c.RoundTrips.install()
    stats, n = c.Stats(args.url), args.jobs
    q = Queue("bench", RedisConfig(args.url, namespace="bench"))
    out: dict[str, Any] = {"system": "ironforge", "version": ironforge_nb.__version__}

    with c.timed() as t:
        for _ in range(n):
            q.enqueue(b"")
    out["single_enqueue"] = {"jobs_per_s": c.rate(n, t[0]), "method": "Queue.enqueue"}
    stats.flush()

    with c.timed() as t:
        q.enqueue_batch([b""] * n, chunk_size=CHUNK)
    out["bulk_enqueue"] = {
        "jobs_per_s": c.rate(n, t[0]), "method": f"Queue.enqueue_batch(chunk_size={CHUNK})"}

    out["processing"] = {
        **processing(q, stats, n, work_batched),
        "method": f"benchmark loop: dequeue_many({BATCH}), no-op each,"
                  f" complete_many(fetch_next={BATCH}); 1 process, 1 thread"
                  " (the engine alone; the real worker has a row of its own)"}
    stats.flush()
    q.enqueue_batch([b""] * n, chunk_size=CHUNK)
    out["processing_single"] = {
        **processing(q, stats, n, work_single),
        "method": "benchmark loop: one job at a time, complete(fetch_next=1); 1 thread"}
    stats.flush()
    q.enqueue_batch([b""] * n, chunk_size=CHUNK)
    out["processing_marked"] = {
        **processing(q, stats, n, work_marked),
        "method": f"benchmark loop with start marks: dequeue_many({BATCH}, started=1), each"
                  " held job marked started (one round trip) before its body,"
                  f" complete_many(fetch_next={BATCH}, started=1); 1 thread"}
    stats.flush()
    out["processing_worker"] = processing_worker(args.url, n)
    stats.flush()
    out["pickup"] = pickup(q, args.pickup_samples)
    stats.flush()
    out["progress"] = progress(q)
    return out


def processing(q: Queue, stats: c.Stats, n: int, loop: Any) -> dict[str, Any]:
    """Drain n queued jobs with ``loop``; jobs/s between the first and last body, costs."""
    REC.arm(n)
    before = stats.snapshot()
    with c.timed() as t:
        loop(q)
    return {"jobs_per_s": round(REC.rate(), 1), "drain_s": round(t[0], 3),
            **c.delta(before, stats.snapshot(), n)}


def pickup(q: Queue, samples: int) -> dict[str, Any]:
    """One job at a time to the loop blocked on an empty queue; latency = enqueue -> body."""
    stop = threading.Event()
    worker = threading.Thread(target=work_batched, args=(q, stop, 1.0), daemon=True)
    worker.start()
    try:
        c.feed_pickups(lambda sent: q.enqueue(STAMP.pack(sent)), samples)
    finally:
        stop.set()
        worker.join()
    return c.latency_summary(REC.pickups)


def progress(q: Queue) -> dict[str, Any]:
    """Progress-update latency on a job with a 1 KB and one with a 10 MB payload.

    Both jobs are claimed first, then the calls alternate between them, so that load changes
    on this shared machine hit both series alike. The ratio compares the p50s.
    """
    sizes = {"payload_1KB": 1024, "payload_10MB": 10 * 1024 * 1024}
    leases = {}
    for name, size in sizes.items():
        q.enqueue(b"\0" * size)
        lease = q.dequeue(WORKER, lease=LEASE, timeout=1.0)
        if lease is None or len(lease.payload) != size:
            raise RuntimeError(f"the {name} job was not claimed")
        leases[name] = lease
    times: dict[str, list[float]] = {name: [] for name in sizes}
    for i in range(PROGRESS_CALLS):
        for name, lease in leases.items():
            start = time.perf_counter()
            q.progress(lease, i / PROGRESS_CALLS, "working")
            times[name].append(time.perf_counter() - start)
    for lease in leases.values():
        q.complete(lease)
    out: dict[str, Any] = {name: c.latency_summary(t) for name, t in times.items()}
    out["ratio_p50"] = round(out["payload_10MB"]["p50_ms"] / out["payload_1KB"]["p50_ms"], 3)
    return out


if __name__ == "__main__":
    c.run_guarded(main)
