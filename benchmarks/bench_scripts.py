"""The longest single Lua script of a cancel, a retry_failed and a root failure on a 100k-task
run (target: under 10 ms each, so that no other client waits longer than that on Redis).

Starts its own redis-server through `ironforge_nb.local`. Each run is a root task followed by a
map of N tasks (default 100,000) and a gather of them all, submitted as one run; the root is
claimed and completed (cancel, retry) or failed for good (root failure) by this process, so N
tasks are queued (cancel) or waiting to be skipped (failure). Then Redis' SLOWLOG (threshold
0: every command is logged with its duration in µs) and LATENCY monitor (threshold 1 ms) are
reset, the operation runs as a notebook would run it (``Run.cancel()``; ``Run.retry_failed()``
of the cancelled run; ``Queue.fail`` of the root followed by ``Run.wait()``, which finishes the
skip of its descendants), and the longest EVALSHA/EVAL in the SLOWLOG is reported with the
number of script calls, their total time and the wall time. ``--before`` measures the atomic
scripts this project had before its walks were bounded (``tests/reference_lua/``) on
identical runs, for comparison.

Usage: ``python benchmarks/bench_scripts.py [--tasks 100000] [--before]``; figures go to stdout
and to ``benchmarks/results/scripts.json``. Figures, never assertions.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ironforge_nb.dag import Pipeline
from ironforge_nb.local import RedisServer
from ironforge_nb.orchestrator import Run, codec, submit
from ironforge_nb.orchestrator.run_transitions import RunTransitions
from ironforge_nb.queue import Lease, Queue, RedisConfig
from ironforge_nb.queue.keys import JOB_LOGS_SUFFIX, JOB_PAYLOAD_SUFFIX, JOB_RESULT_SUFFIX
from ironforge_nb.queue.walks import Walks
from ironforge_nb.status import RunStatus

ROOT = Path(__file__).resolve().parents[1]
REFERENCE = ROOT / "tests" / "reference_lua"
RESULTS = ROOT / "benchmarks" / "results" / "scripts.json"
_SCRIPTS = (b"EVALSHA", b"EVAL", b"evalsha", b"eval")


def noop(item: Any = None, **_: Any) -> None:
    """Every task of the benchmark run."""


def boom(**_: Any) -> None:
    """The root that fails."""
    raise RuntimeError("boom")


def build(config: RedisConfig, n: int, fails: bool) -> tuple[Run, Lease]:
    """Submit root -> map of ``n`` -> gather and claim the root; complete it unless ``fails``
    (then its lease is for the measured failure)."""
    p = Pipeline("bench")
    p.task("root", boom if fails else noop)
    p.map("sq", noop, over=range(n), after="root")
    p.task("gather", noop, after="sq")
    run = submit(p, config=config)
    queue = Queue("default", config)
    lease = queue.dequeue("bench", timeout=0)
    assert lease is not None and lease.job_id == f"{run.id}.0"
    if not fails:
        queue.complete(lease, None)
    return run, lease


class Meter:
    """Times script calls two ways: the server's own SLOWLOG (wall time inside Redis, which a
    loaded machine inflates when it preempts redis-server mid-script) and the CPU time of
    redis-server's main thread around each call (``/proc/<pid>/schedstat``, Linux: what the
    script costs when it has a core; the client sends nothing else meanwhile)."""

    def __init__(self, client: Any, pid: int) -> None:
        self.client, self.pid = client, pid
        self.cpu: list[int] = []  # ns per call

    def _cpu_ns(self) -> int:
        with open(f"/proc/{self.pid}/schedstat") as fh:
            return int(fh.read().split()[0])

    def call(self, fn: Callable[[], Any]) -> Any:
        """``fn()``, its server CPU time recorded."""
        before = self._cpu_ns()
        out = fn()
        self.cpu.append(self._cpu_ns() - before)
        return out

    def measure(self, action: Callable[[Meter], Any]) -> dict[str, Any]:
        """Run ``action`` (which makes its calls through `call`) with a fresh SLOWLOG."""
        self.client.slowlog_reset()
        self.cpu = []
        started = time.perf_counter()
        action(self)
        wall = time.perf_counter() - started
        durations = sorted(int(e["duration"]) for e in self.client.slowlog_get(1_000_000)
                           if e["command"].split(b" ")[0] in _SCRIPTS)
        cpu = sorted(self.cpu)
        return {"scripts": len(durations),
                "longest_cpu_ms": round(cpu[-1] / 1e6, 2) if cpu else 0,
                "p50_cpu_ms": round(cpu[len(cpu) // 2] / 1e6, 2) if cpu else 0,
                "longest_wall_ms": round(durations[-1] / 1000, 2) if durations else 0,
                "p99_wall_ms": round(durations[int(len(durations) * 0.99)] / 1000, 2)
                if durations else 0,
                "total_wall_ms": round(sum(durations) / 1000, 1), "elapsed_s": round(wall, 2)}


def walk(meter: Meter, walks: Walks, run_id: str, first: Callable[[], Any]) -> None:
    """``first`` (the script that begins the work), then walk_run steps until none is left:
    what Run.cancel / Run.retry_failed / Run.wait do, one call at a time."""
    meter.call(first)
    while meter.call(lambda: walks.step(run_id))[1]:
        pass


def old_script(config: RedisConfig, name: str, keys: list[str], args: list[Any]) -> Any:
    """Run ``name`` as it was before the bounded walks (tests/reference_lua), as one EVAL."""
    source = (REFERENCE / "run_helpers.lua").read_text() + "\n" + (
        REFERENCE / f"{name}.lua").read_text()
    return config.client().eval(source, len(keys), *keys, *args)


def old_scenarios(config: RedisConfig, meter: Meter, n: int) -> dict[str, dict[str, Any]]:
    """The same operations with the atomic scripts of before: cancel_run and retry_run, and
    the skip of the root's descendants (cancel_job's script: the run_skip fail_job used)."""
    k, qk = config.keys, config.keys.queue("default")
    run, _ = build(config, n, fails=False)
    rk = k.run(run.id)
    head = [k.job_prefix, k.run_prefix, k.queue_prefix, config.events_maxlen, run.id]
    out = {"cancel (atomic, before)": meter.measure(lambda m: m.call(lambda: old_script(
        config, "cancel_run", [rk.meta, rk.tasks], head)))}
    out["retry_failed (atomic, before)"] = meter.measure(lambda m: m.call(lambda: old_script(
        config, "retry_run", [rk.meta, rk.tasks, rk.remaining, rk.children], head)))
    run.cancel()  # not measured: empties the queue for the next run
    failing, _ = build(config, n, fails=True)  # the root is active, its descendants waiting
    jid = f"{failing.id}.0"
    keys = [k.job(jid), qk.wait, qk.scheduled, qk.active, qk.cancelled, qk.events]
    args = [k.job_prefix, JOB_PAYLOAD_SUFFIX, JOB_RESULT_SUFFIX, "default",
            config.events_maxlen, jid, config.completed_retention, k.run_prefix, k.queue_prefix,
            JOB_LOGS_SUFFIX, ""]
    out["root failure's skip (atomic, before)"] = meter.measure(
        lambda m: m.call(lambda: old_script(config, "cancel_job", keys, args)))
    return out


def scenarios(config: RedisConfig, meter: Meter, n: int) -> dict[str, dict[str, Any]]:
    """Each operation on a fresh run (one run for cancel, then retry), driven as the public
    calls drive it (`walk`)."""
    scripts, walks, k = RunTransitions(config), Walks(config), config.keys
    run, _ = build(config, n, fails=False)
    head = [k.job_prefix, k.run_prefix, k.queue_prefix, config.events_maxlen, run.id]
    out = {"cancel": meter.measure(lambda m: walk(m, walks, run.id, lambda: scripts._cancel(
        [k.run(run.id).meta, k.queues], head)))}
    out["retry_failed"] = meter.measure(lambda m: walk(m, walks, run.id, lambda: scripts._retry(
        [k.run(run.id).meta], head)))
    run.cancel()  # not measured: empties the queue for the next run
    failing, lease = build(config, n, fails=True)
    queue = Queue("default", config)
    out["root failure"] = meter.measure(lambda m: walk(
        m, walks, failing.id, lambda: queue.fail(lease, "boom", retry=False)))
    assert failing.status is RunStatus.FAILED
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", type=int, default=100_000, help="map size (default 100000)")
    parser.add_argument("--before", action="store_true",
                        help="also measure the atomic scripts of before (tests/reference_lua)")
    args = parser.parse_args()
    codec.set_default_secret(b"bench-secret")
    load = os.getloadavg()[0]
    with RedisServer() as server:
        config = RedisConfig(server.url, namespace="bench", socket_timeout=600)
        client = config.client()
        client.config_set("slowlog-log-slower-than", 0)
        client.config_set("slowlog-max-len", 1_000_000)
        meter = Meter(client, int(server.pid or 0))
        figures = scenarios(config, meter, args.tasks)
        if args.before:
            figures |= old_scenarios(config, meter, args.tasks)
        version = server.version
    show(args.tasks, version, load, figures)


def show(tasks: int, version: str, load: float, figures: dict[str, dict[str, Any]]) -> None:
    """Print the table and save it to `RESULTS`."""
    print(f"{tasks:,}-task map (+ root and gather), redis-server {version}, "
          f"load average {load:.1f} on {os.cpu_count()} cores")
    cols = ("scripts", "longest_cpu_ms", "p50_cpu_ms", "longest_wall_ms", "p99_wall_ms",
            "total_wall_ms", "elapsed_s")
    print(f"{'operation':<38}" + "".join(f"{c:>16}" for c in cols))
    for name, f in figures.items():
        print(f"{name:<38}" + "".join(f"{f[c]:>16}" for c in cols))
    record = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
              "machine": platform.machine(), "cores": os.cpu_count(), "load_average": load,
              "tasks": tasks, "redis": version, "figures": figures}
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(record, indent=2) + "\n")
    print(f"saved to {RESULTS.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
