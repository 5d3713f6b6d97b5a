"""Worker throughput: ``python benchmarks/bench_worker.py [--jobs N]``, figures only.

Starts an embedded redis-server and 2 local worker processes (1 executor each, as
``ifn.connect()`` does) for each ``--prefetch`` value, and prints:

* raw queue jobs/s: no-op jobs enqueued in one batch (a no-op test executor, no runs layer);
* WIDE tasks/s: a pipeline of N independent no-op tasks (runs layer: signed pickled code);
* CHAIN ms per hop: 300 dependent no-op tasks.

The machine's load matters (2 shared cores here): compare rows of one invocation.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import ironforge_nb as ifn
from ironforge_nb.queue import Queue
from tests.worker_tasks import EXECUTOR, command


def noop(**parents: object) -> None:
    """A task that does nothing (its parents' results are ignored)."""
    return None


def raw_jobs(n: int, prefetch: int) -> float:
    """Jobs/s of ``n`` no-op queue jobs on 2 local workers."""
    conn = ifn.connect(workers=2, worker_args=["--executor", EXECUTOR,
                                               "--prefetch", str(prefetch)])
    try:
        q = Queue()
        start = time.perf_counter()
        q.enqueue_batch([command("echo", value=1)] * n)
        while q.counts()[ifn.JobStatus.COMPLETED] < n:
            time.sleep(0.005)
        return n / (time.perf_counter() - start)
    finally:
        conn.close()


def pipelines(n: int, prefetch: int) -> tuple[float, float]:
    """WIDE tasks/s and CHAIN ms per hop on 2 local workers."""
    conn = ifn.connect(workers=2, worker_args=["--prefetch", str(prefetch)])
    try:
        wide = ifn.Pipeline("wide")
        for i in range(n):
            wide.task(f"t{i}", noop)
        start = time.perf_counter()
        wide.submit().wait()
        wide_rate = n / (time.perf_counter() - start)
        chain = ifn.Pipeline("chain")
        chain.task("c0", noop)
        for i in range(1, 300):
            chain.task(f"c{i}", noop, after=f"c{i - 1}")
        start = time.perf_counter()
        chain.submit().wait()
        return wide_rate, (time.perf_counter() - start) / 300 * 1000
    finally:
        conn.close()


def main() -> int:
    """Print one row per prefetch setting."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=3000, help="jobs / WIDE tasks (3000)")
    parser.add_argument("--prefetch", default="0,4", help="prefetch values to compare (0,4)")
    args = parser.parse_args()
    print(f"{'prefetch':>8} {'raw jobs/s':>11} {'WIDE tasks/s':>13} {'CHAIN ms/hop':>13}")
    for prefetch in (int(p) for p in args.prefetch.split(",")):
        raw = raw_jobs(args.jobs, prefetch)
        wide, chain = pipelines(args.jobs, prefetch)
        print(f"{prefetch:>8} {raw:>11.0f} {wide:>13.0f} {chain:>13.2f}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
