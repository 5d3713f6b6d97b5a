"""The graph shapes and the CPU meter shared by bench_runs.py and its peers (no ``ironforge_nb``:
the peers run in their own virtualenvs; psutil is imported only when the meter is read)."""

from __future__ import annotations

import random


def layered_parents(layers: int, width: int, seed: int = 7) -> list[list[tuple[int, int]]]:
    """For each task (layer by layer), the (layer, index) of its 2 parents; none in layer 0."""
    rng = random.Random(seed)
    out: list[list[tuple[int, int]]] = []
    for layer in range(layers):
        for _ in range(width):
            out.append([] if layer == 0 else
                       [(layer - 1, j) for j in rng.sample(range(width), 2)])
    return out


def cpu_seconds() -> float:
    """CPU time (user + system) of this process and all its descendants alive now: the
    redis-server, workers and executors (or Dask's scheduler, nannies and workers, Ray's
    raylet and workers). Less sensitive than wall time to what else the shared machine runs."""
    import psutil

    me = psutil.Process()
    total = 0.0
    for proc in [me, *me.children(recursive=True)]:
        try:
            times = proc.cpu_times()
        except psutil.Error:
            continue
        total += times.user + times.system
    return total
