"""Ray's side of ``benchmarks/bench_runs.py``: WIDE, CHAIN and LAYERED with ``@ray.remote``.

Runs in its own virtualenv (``benchmarks/setup_envs.sh ray`` creates ``.venv-bench-ray`` with
Ray 2.60), so it imports only the standard library, Ray and psutil, never ``ironforge_nb``;
``bench_runs.py`` starts it as a subprocess and reads the one JSON object printed on its last
stdout line (progress goes to stderr).

Method: ``ray.init(num_cpus=2, include_dashboard=False)`` starts a local Ray (GCS, raylet and
its worker processes, 2 CPU slots: the same 2 worker processes as IronForge's and Dask's runs).
A warm-up of 300 no-op tasks starts the worker processes first. Each shape is the same graph as
the other systems' (``peers/_shapes.py`` gives LAYERED's random parents, same seed):

* WIDE: ``noop.remote(i)`` for i < n, then ``gather.remote(*refs)`` (Ray resolves the refs:
  the gather receives every result);
* CHAIN: ``first.remote()`` then n - 1 ``step.remote(ref)``, each receiving its parent's result;
* LAYERED: layer 0 ``first.remote()``, then ``join.remote(ref_a, ref_b)`` for the 2 parents of
  each task, and one final ``done_all.remote(*refs)`` after every task without a child.

Ray has no build step apart from submission (``.remote()`` submits at once), so the clock runs
from the first ``.remote()`` of a shape to ``ray.get`` of its final ref returning; "build" is
reported as 0. CPU time: user + system of this process and all its descendants (GCS, raylet,
Ray's workers), sampled before and after, as bench_runs does for the other systems. Each shape
runs ``--repeat`` times and the median run is reported.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _shapes import cpu_seconds, layered_parents


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--wide", type=int, default=10_000)
    ap.add_argument("--chain", type=int, default=1000)
    ap.add_argument("--layers", type=int, default=100)
    ap.add_argument("--width", type=int, default=100)
    ap.add_argument("--shapes", default="wide,chain,layered")
    ap.add_argument("--repeat", type=int, default=1)
    args = ap.parse_args()
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    import ray

    @ray.remote
    def noop(item: Any = None) -> None:
        return None

    @ray.remote
    def gather(*t: Any) -> int:
        return len(t)

    @ray.remote
    def first() -> int:
        return 0

    @ray.remote
    def step(x: Any) -> Any:
        return x

    @ray.remote
    def join(a: Any, b: Any) -> None:
        return None

    @ray.remote
    def done_all(*_: Any) -> None:
        return None

    def wide() -> tuple[Any, int]:
        refs = [noop.remote(i) for i in range(args.wide)]
        return gather.remote(*refs), args.wide + 1

    def chain() -> tuple[Any, int]:
        x = first.remote()
        for _ in range(1, args.chain):
            x = step.remote(x)
        return x, args.chain

    parents = layered_parents(args.layers, args.width)
    has_child = {a * args.width + b for pair in parents for a, b in pair}

    def layered() -> tuple[Any, int]:
        width, nodes = args.width, []
        for pair in parents:
            if pair:
                (a, b), (c, d) = pair
                nodes.append(join.remote(nodes[a * width + b], nodes[c * width + d]))
            else:
                nodes.append(first.remote())
        ends = [node for i, node in enumerate(nodes) if i not in has_child]
        return done_all.remote(*ends), len(nodes) + 1

    ray.init(num_cpus=2, include_dashboard=False, logging_level="ERROR",
             log_to_driver=False, object_store_memory=256 * 2**20)
    out: dict[str, Any] = {"ray_version": ray.__version__, "shapes": {}}
    try:
        ray.get([noop.remote(i) for i in range(300)])  # warm-up: worker processes start
        shapes = {"wide": wide, "chain": chain, "layered": layered}
        for shape in [s for s in args.shapes.split(",") if s]:
            rows = []
            for _ in range(args.repeat):
                cpu = cpu_seconds()
                start = time.perf_counter()
                final, n = shapes[shape]()
                ray.get(final)
                took = time.perf_counter() - start
                cpu = cpu_seconds() - cpu
                rows.append({"tasks": n, "build_s": 0.0, "run_s": took, "tasks_per_s": n / took,
                             "ms_per_task": took / n * 1000, "cpu_ms_per_task": cpu / n * 1000})
                log(f"  ray       {shape:<8} {n:>6,} tasks: run {took:.3f} s "
                    f"({n / took:,.0f} tasks/s, {took / n * 1000:.3f} ms/task, "
                    f"cpu {cpu / n * 1000:.3f} ms/task)")
            rows.sort(key=lambda row: row["run_s"])
            median = dict(rows[len(rows) // 2])
            median["samples_run_s"] = [row["run_s"] for row in rows]
            out["shapes"][shape] = median
    finally:
        ray.shutdown()
    print(json.dumps(out), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
