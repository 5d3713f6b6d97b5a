"""Shared harness of the peer benchmarks: arguments, Redis counters, latencies, JSON output.

Each peer module runs in its own virtualenv (see ``benchmarks/setup_envs.sh``) and imports only
the standard library, redis-py and its own queue library, so this file must stay free of
``ironforge_nb`` imports. A peer prints exactly one JSON object on its last stdout line.

Counting method, the same for every system:

- server side, ``INFO commandstats`` deltas: every command Redis executed, including the ones a
  Lua script runs inside ``EVAL``/``EVALSHA`` (Redis counts those too);
- client side, round trips: calls to redis-py's ``send_packed_command`` (sync and asyncio),
  i.e. one per request written to a socket; a pipeline or a script call counts once.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import Any

import redis


def parse_args(description: str) -> argparse.Namespace:
    """Arguments every peer accepts (passed by bench_queue.py)."""
    ap = argparse.ArgumentParser(description=description)
    ap.add_argument("--url", required=True, help="redis:// URL of the benchmark's redis-server")
    ap.add_argument("--jobs", type=int, default=10_000, help="jobs per throughput phase")
    ap.add_argument("--pickup-samples", type=int, default=500, help="jobs for pickup latency")
    return ap.parse_args()


class RoundTrips:
    """Counts requests written to Redis by redis-py in this process (all clients, all threads).

    It wraps ``send_packed_command`` of the sync and asyncio connection classes once; the cost
    is one integer increment per request, far below a loopback round trip.
    """

    count = 0
    _installed = False

    @classmethod
    def install(cls) -> None:
        """Wrap redis-py's connection classes (idempotent)."""
        if cls._installed:
            return
        cls._installed = True
        import redis.asyncio.connection as aconn
        import redis.connection as sconn

        sync_send = sconn.AbstractConnection.send_packed_command
        async_send = aconn.AbstractConnection.send_packed_command

        def send(self: Any, *args: Any, **kwargs: Any) -> Any:
            cls.count += 1
            return sync_send(self, *args, **kwargs)

        async def asend(self: Any, *args: Any, **kwargs: Any) -> Any:
            cls.count += 1
            return await async_send(self, *args, **kwargs)

        sconn.AbstractConnection.send_packed_command = send  # type: ignore[method-assign]
        aconn.AbstractConnection.send_packed_command = asend  # type: ignore[method-assign]


class Stats:
    """INFO commandstats snapshots on a private connection (its own INFO calls are removed)."""

    def __init__(self, url: str) -> None:
        self.client = redis.Redis.from_url(url)

    def snapshot(self) -> dict[str, int]:
        """Calls per command name, plus the client-side round-trip count under ``"_rt"``."""
        rt = RoundTrips.count
        raw = self.client.info("commandstats")
        calls = {name.removeprefix("cmdstat_"): int(v["calls"]) for name, v in raw.items()}
        calls["_rt"] = rt
        return calls

    def flush(self) -> None:
        """Empty the benchmark's private server between phases."""
        self.client.flushall()


def delta(before: dict[str, int], after: dict[str, int], jobs: int) -> dict[str, Any]:
    """Per-job command figures between two snapshots.

    ``info`` is dropped (our own snapshots). The result holds ``commands`` (all executed,
    script-inner included), ``scripts`` (EVAL/EVALSHA/FCALL), ``round_trips`` (client side)
    and the top commands by count.
    """
    diff = {k: after.get(k, 0) - before.get(k, 0) for k in after if k not in ("info", "_rt")}
    diff = {k: v for k, v in diff.items() if v > 0}
    total = sum(diff.values())
    scripts = sum(v for k, v in diff.items() if k.startswith(("eval", "fcall")))
    rt = after["_rt"] - before["_rt"] - (1 if RoundTrips._installed else 0)  # our INFO
    top = sorted(diff.items(), key=lambda kv: -kv[1])[:8]
    return {
        "commands_per_job": round(total / jobs, 2),
        "scripts_per_job": round(scripts / jobs, 2),
        "round_trips_per_job": round(rt / jobs, 2),
        "top_commands_per_job": {k: round(v / jobs, 2) for k, v in top},
    }


def percentile(values: list[float], q: float) -> float:
    """The q-quantile (0..1) by nearest rank, of a non-empty list."""
    ordered = sorted(values)
    idx = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[idx]


def latency_summary(samples_s: list[float]) -> dict[str, float]:
    """p50/p99/max in milliseconds."""
    return {
        "p50_ms": round(percentile(samples_s, 0.50) * 1e3, 3),
        "p99_ms": round(percentile(samples_s, 0.99) * 1e3, 3),
        "max_ms": round(max(samples_s) * 1e3, 3),
        "samples": len(samples_s),
    }


class Recorder:
    """What the no-op job bodies write: execution times and pickup latencies (thread-safe)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.done = 0
        self.first = 0.0
        self.last = 0.0
        self.target = 0
        self.reached = threading.Event()
        self.pickups: list[float] = []
        self.async_reached: asyncio.Event | None = None  # set too, for asyncio peers

    def arm(self, target: int) -> None:
        """Expect ``target`` more job executions before `reached` is set."""
        with self.lock:
            self.done, self.target, self.first, self.last = 0, target, 0.0, 0.0
            self.reached.clear()
            if self.async_reached is not None:
                self.async_reached.clear()

    def hit(self, sent_at: float | None = None) -> None:
        """Called at the start of every job body; ``sent_at`` is the enqueue wall time."""
        now = time.time()
        with self.lock:
            if sent_at is not None:
                self.pickups.append(now - sent_at)
            if self.done == 0:
                self.first = now
            self.done += 1
            self.last = now
            if self.done >= self.target:
                self.reached.set()
                if self.async_reached is not None:
                    self.async_reached.set()

    def rate(self) -> float:
        """Jobs per second between the first and the last execution."""
        span = self.last - self.first
        return (self.done - 1) / span if span > 0 else float("nan")


@contextmanager
def timed() -> Iterator[list[float]]:
    """``with timed() as t: ...`` leaves the elapsed seconds in ``t[0]``."""
    out = [0.0]
    start = time.perf_counter()
    try:
        yield out
    finally:
        out[0] = time.perf_counter() - start


def rate(jobs: int, seconds: float) -> float:
    """Jobs per second, rounded for the table."""
    return round(jobs / seconds, 1) if seconds > 0 else float("nan")


def emit(result: dict[str, Any]) -> None:
    """Print the result as the last stdout line (bench_queue.py parses it)."""
    sys.stdout.flush()
    print(json.dumps(result), flush=True)


def run_guarded(main: Callable[[], dict[str, Any]]) -> None:
    """Run a peer's main and emit its result, or an error object the parent can report."""
    try:
        emit(main())
    except Exception as exc:  # reported, not hidden: the parent prints it in the table
        emit({"error": f"{type(exc).__name__}: {exc}"})
        raise
    finally:
        sys.stdout.flush()


REC = Recorder()
IDLE_GAP = 0.01  # seconds between pickup samples, so that the worker is idle (blocked) again
SETTLE = 0.3  # seconds a freshly started worker gets to connect and block before sampling


def feed_pickups(send: Callable[[float], Any], samples: int) -> None:
    """Send one job at a time (``send(time.time())``) and wait for each to start (threads)."""
    REC.pickups.clear()
    time.sleep(SETTLE)
    for _ in range(samples):
        REC.arm(1)
        send(time.time())
        if not REC.reached.wait(30):
            raise TimeoutError("a pickup job did not start within 30 s")
        time.sleep(IDLE_GAP)


async def feed_pickups_async(send: Callable[[float], Awaitable[Any]], samples: int) -> None:
    """`feed_pickups` for asyncio peers whose job bodies run on this event loop."""
    REC.pickups.clear()
    REC.async_reached = asyncio.Event()
    await asyncio.sleep(SETTLE)
    for _ in range(samples):
        REC.arm(1)
        await send(time.time())
        await asyncio.wait_for(REC.async_reached.wait(), 30)
        await asyncio.sleep(IDLE_GAP)


def noop(sent_at: float | None = None) -> None:
    """The no-op job body shared by the sync peers (importable by path, e.g. ``_common.noop``).

    It only records that it ran, and for pickup samples the enqueue wall time it was given.
    """
    REC.hit(sent_at)
