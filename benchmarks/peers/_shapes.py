"""The graph shapes shared by bench_runs.py and its peers (standard library only: the peers run
in their own virtualenvs without ``ironforge_nb``)."""

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
