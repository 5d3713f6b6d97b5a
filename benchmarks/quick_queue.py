"""Quick figures for the IronForge queue alone (no peers), to iterate on the engine.

Starts its own redis-server through `ironforge_nb.local` and prints: single enqueue and
enqueue_batch jobs/s, one worker process's no-op throughput (complete-and-fetch-next), Redis
round trips per processed job (from INFO commandstats), pickup latency p50/p99 (a worker process
blocked in dequeue, the producer in this one) and progress latency with a 1 KB vs a 10 MB
payload. Usage: ``python benchmarks/quick_queue.py [--jobs N]``. Figures, never assertions.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import statistics
import struct
import time
from typing import Any

from ironforge_nb.local import RedisServer
from ironforge_nb.queue import Queue, RedisConfig


def _rate(n: int, seconds: float) -> str:
    return f"{n / seconds:>10,.0f} jobs/s  ({n:,} jobs in {seconds:.3f} s)"


def bench_enqueue(cfg: RedisConfig, n: int) -> None:
    """Single enqueue (one EVALSHA each) and enqueue_batch (one per chunk of 1000)."""
    q = Queue("single", cfg)
    t = time.perf_counter()
    for _ in range(n):
        q.enqueue(b"x")
    print("enqueue (one by one)   ", _rate(n, time.perf_counter() - t))
    q = Queue("batch", cfg)
    payloads = [b"x"] * (10 * n)
    t = time.perf_counter()
    q.enqueue_batch(payloads)
    print("enqueue_batch          ", _rate(len(payloads), time.perf_counter() - t))


def _script_calls(client: Any) -> int:
    stats = client.info("commandstats")
    return sum(stats.get(f"cmdstat_{c}", {}).get("calls", 0)
               for c in ("evalsha", "eval", "blpop", "script|load", "script"))


def _all_calls(client: Any) -> int:
    return sum(v.get("calls", 0) for v in client.info("commandstats").values())


def bench_worker(cfg: RedisConfig, n: int) -> None:
    """One worker process runs n no-op jobs: claim one, then complete with fetch_next=1."""
    q = Queue("work", cfg)
    q.enqueue_batch([b"x"] * n)
    client = cfg.client()
    rt0, all0 = _script_calls(client), _all_calls(client)
    done = 0
    t = time.perf_counter()
    leases = q.dequeue_many("bench", 1, timeout=0)
    while leases:
        lease = leases[0]
        leases = q.complete(lease, None, fetch_next=1)
        done += 1
    dt = time.perf_counter() - t
    rt, allc = _script_calls(client) - rt0 - 2, _all_calls(client) - all0 - 2
    print("worker no-op, 1 proc   ", _rate(done, dt))
    print(f"round trips per job     {rt / done:>10.2f}   (Redis commands run per job, "
          f"inside scripts included: {allc / done:.1f})")


def bench_batched_worker(cfg: RedisConfig, n: int, batch: int = 64) -> None:
    """One worker process runs n no-op jobs in batches: complete_many + fetch the next batch."""
    q = Queue("work-batched", cfg)
    q.enqueue_batch([b"x"] * n)
    client = cfg.client()
    rt0 = _script_calls(client)
    done = 0
    t = time.perf_counter()
    leases = q.dequeue_many("bench", batch, timeout=0)
    while leases:
        done += len(leases)
        leases, _refused = q.complete_many(leases, fetch_next=batch)
    dt = time.perf_counter() - t
    rt = _script_calls(client) - rt0 - 2
    print(f"worker no-op, batch {batch:<3}", _rate(done, dt), f" {rt / done:.3f} round trips/job")


def _latency_worker(url: str, ns: str, n: int, out: Any) -> None:
    q = Queue("latency", RedisConfig(url=url, namespace=ns))
    lat = []
    for _ in range(n):
        lease = q.dequeue("lat", timeout=10)
        now = time.perf_counter()
        assert lease is not None
        lat.append(now - struct.unpack("d", lease.payload)[0])
        q.complete(lease)
    out.send(lat)


def bench_latency(cfg: RedisConfig, n: int) -> None:
    """Pickup latency: enqueue -> a worker process blocked in dequeue holds the lease."""
    recv, send = mp.Pipe(duplex=False)
    proc = mp.get_context("spawn").Process(
        target=_latency_worker, args=(cfg.url, cfg.namespace, n, send))
    proc.start()
    q = Queue("latency", cfg)
    time.sleep(1.0)  # let the worker start and block
    for _ in range(n):
        q.enqueue(struct.pack("d", time.perf_counter()))
        time.sleep(0.003)  # the worker is idle (blocked) again before the next one
    lat = sorted(recv.recv())
    proc.join()
    p50, p99 = lat[len(lat) // 2] * 1000, lat[int(len(lat) * 0.99)] * 1000
    print(f"pickup latency          p50 {p50:.3f} ms   p99 {p99:.3f} ms   ({n} jobs)")


def bench_progress(cfg: RedisConfig, n: int) -> None:
    """Median progress-update latency with a 1 KB and a 10 MB payload."""
    medians = {}
    for label, size in (("1 KB", 1024), ("10 MB", 10 * 1024 * 1024)):
        q = Queue("progress-" + label.replace(" ", ""), cfg)
        q.enqueue(b"p" * size)
        lease = q.dequeue("prog", timeout=0)
        assert lease is not None
        times = []
        for i in range(n):
            t = time.perf_counter()
            q.progress(lease, i / n, "step")
            times.append(time.perf_counter() - t)
        medians[label] = statistics.median(times) * 1e6
        q.complete(lease)
    ratio = medians["10 MB"] / medians["1 KB"]
    print(f"progress latency        1 KB {medians['1 KB']:.0f} us   10 MB {medians['10 MB']:.0f} us"
          f"   ratio {ratio:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--jobs", type=int, default=10_000)
    args = parser.parse_args()
    with RedisServer() as server:
        cfg = RedisConfig(url=server.url, namespace="quick", completed_retention=100_000)
        print(f"redis-server {server.version} at {server.url}")
        ping = cfg.client()
        t = time.perf_counter()
        for _ in range(2000):
            ping.ping()
        print(f"PING round trip (floor) {(time.perf_counter() - t) / 2000 * 1e6:>10.0f} us")
        bench_enqueue(cfg, args.jobs)
        bench_worker(cfg, args.jobs * 2)
        bench_batched_worker(cfg, args.jobs * 5)
        bench_latency(cfg, 1000)
        bench_progress(cfg, 2000)
        cfg.close()


if __name__ == "__main__":
    main()
