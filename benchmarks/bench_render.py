"""Benchmark: drawing large graphs (DOT generation, collapsing, and the ``dot`` layout itself).

``dot``'s layout time grows far faster than linearly (about 1.6 s for 1k nodes and minutes for
5k), so IronForge collapses large graphs before layout. This prints, for each case:

* ``digraph s``: `to_digraph` + DOT text (pure Python: view building, collapsing, formatting);
* ``dot s``: the ``dot -Tsvg`` layout of that text (skipped for uncollapsed 10k graphs);
* ``boxes``/``edges``: what is actually drawn.

Cases: a 10k-node random DAG drawn in full (``collapse=None``: DOT generation only), the same
collapsed automatically, a 100k-node random DAG (no groups: collapsed by level), a 100k-task
pipeline of 100 maps (collapsed by group), and a focus view (``depth=2``) inside the 100k DAG.
Random DAGs: nodes ``0..n-1``, ~3 edges per node from a uniformly drawn earlier node (seeded).
Wall time (``time.perf_counter``), best of 3 runs.

Usage::

    python benchmarks/bench_render.py
    python benchmarks/bench_render.py --sizes 10000,100000
"""

from __future__ import annotations

import argparse
import random
import re
import sys
import time
from collections.abc import Callable
from typing import Any

from ironforge_nb.dag import DAG, Pipeline
from ironforge_nb.render import to_digraph
from ironforge_nb.render.output import pipe

SEED = 20261128
EDGES_PER_NODE = 3
REPEAT = 3


def random_dag(n: int, seed: int = SEED) -> DAG[int]:
    """``n`` nodes, each with 0 to 6 parents (3 on average) drawn among earlier nodes."""
    rng = random.Random(seed)
    edges = [
        (rng.randrange(v), v)
        for v in range(1, n)
        for _ in range(rng.randint(0, 2 * EDGES_PER_NODE))
    ]
    return DAG.from_edges(edges, nodes=range(n))


def mapped_pipeline(n: int, maps: int = 100) -> DAG[str]:
    """``load`` -> ``maps`` fan-outs of ``n / maps`` tasks, each gathered by a ``sum_<k>`` task."""
    p = Pipeline("bench").task("load", _noop)
    per_map = max(1, n // maps)
    for k in range(maps):
        p.map(f"m{k}", _item, over=range(per_map), after="load")
        p.task(f"sum_{k}", _noop, after=f"m{k}")
    return p.build()


def _noop() -> None:
    return None


def _item(item: int) -> int:
    return item


def best(fn: Callable[[], Any]) -> tuple[float, Any]:
    """Best wall time over `REPEAT` runs, and the last result."""
    times, result = [], None
    for _ in range(REPEAT):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return min(times), result


def measure(label: str, dag: DAG[Any], layout: bool, **opts: Any) -> None:
    """Time DOT generation (and the layout when ``layout``) of one case and print a row."""
    gen_s, source = best(lambda: to_digraph(dag, **opts).source)
    boxes = len(re.findall(r"^\s*[tb]\d+ \[", source, flags=re.M))
    edges = len(re.findall(r"^\s*[tb]\d+ -> ", source, flags=re.M))
    dot_s = "-"
    if layout:
        seconds, _ = best(lambda: pipe(source, "svg", timeout=120))
        dot_s = f"{seconds:.2f}"
    total = f"{gen_s + float(dot_s):.2f}" if layout else "-"
    print(f"| {label:<44} | {len(dag):>7,} | {gen_s:>9.3f} | {dot_s:>6} | {total:>7} "
          f"| {boxes:>6,} | {edges:>6,} |", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000,100000",
                        help="comma-separated graph sizes (default: 10000,100000)")
    sizes = [int(s) for s in parser.parse_args(argv).sizes.split(",")]
    print(f"python {sys.version.split()[0]}; best of {REPEAT}; seconds\n")
    print("| case                                         |   tasks | digraph s |  dot s | total s "
          "|  boxes |  edges |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for n in sizes:
        dag = random_dag(n)
        if n <= 10_000:
            measure("random DAG, full DOT (collapse=None)", dag, layout=False, collapse=None)
        measure("random DAG, auto collapse (by level)", dag, layout=True)
        focus = dag.nodes[n // 2]
        measure(f"random DAG, focus={focus} depth=2", dag, layout=True, focus=focus, depth=2)
        measure("pipeline of 100 maps, auto collapse (group)", mapped_pipeline(n), layout=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
