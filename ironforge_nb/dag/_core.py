"""Graph algorithms on dense integer ids: the engine under `DAG`.

`DAG` interns its nodes once (node -> position in insertion order) and runs everything below on
those positions: lists indexed by int are much cheaper than dicts keyed by arbitrary objects, and
an order on ints is the insertion order for free. Every function is iterative (no recursion
limit) and O(V + E) (plus sorting each level's ints in `kahn`).

Adjacency is a list of int lists (``children[u]`` lists ``v`` for every edge ``u -> v``). The lists
are in edge order, not sorted, and may repeat an edge until `deduplicate` runs: every algorithm
here is indifferent to both, and `DAG` cleans up lazily before showing edges.
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterable, Iterator, Sequence
from itertools import compress, repeat
from operator import not_
from typing import Any

__all__ = [
    "ancestors_of",
    "deduplicate",
    "find_cycle",
    "group_edges",
    "invert",
    "kahn",
    "levels_from_bounds",
    "neighbourhood_of",
    "paused_gc",
    "select",
    "self_loop",
    "weighted_longest_path",
]

IntLists = list[list[int]]
Adjacency = tuple[IntLists, list[int]]  # children lists, parent counts


def group_edges(
    nodes: Sequence[Any], index: dict[Any, int], edges: Iterable[tuple[Any, Any]]
) -> Adjacency:
    """Intern every ``(parent, child)`` edge and group it by parent, counting each child's parents.

    This is the hot loop of graph construction, written for speed: one pass, two dict lookups
    per edge, no intermediate lists. The parent is looked up straight to its children list (a
    second dict sharing the lists), which saves touching the parent's position. Repeated edges
    are kept (see `deduplicate`). Raises ``KeyError`` for an unknown node and ``ValueError`` or
    ``TypeError`` for an edge that is not a pair; the caller turns those into precise errors.
    """
    n = len(nodes)
    children: IntLists = [[] for _ in repeat(None, n)]
    kids_of = dict(zip(nodes, children, strict=True))
    indeg = [0] * n
    for u, v in edges:
        j = index[v]
        kids_of[u].append(j)
        indeg[j] += 1
    return children, indeg


def deduplicate(children: IntLists) -> tuple[IntLists, int]:
    """Drop repeated children (keeping first occurrences) and count the distinct edges."""
    total = sum(map(len, children))
    distinct = sum(map(len, map(set, children)))
    if distinct != total:
        children = [list(dict.fromkeys(kids)) if len(kids) > 1 else kids for kids in children]
    return children, distinct


def self_loop(children: IntLists) -> int | None:
    """A node listed among its own children, if any."""
    for u, kids in enumerate(children):
        if u in kids:
            return u
    return None


def invert(n: int, children: IntLists) -> IntLists:
    """Return the parents lists of a children adjacency, each sorted by parent position."""
    parents: IntLists = [[] for _ in repeat(None, n)]
    for u, kids in enumerate(children):
        for v in kids:
            parents[v].append(u)
    return parents


def kahn(children: IntLists, indeg: list[int]) -> tuple[list[int], list[int]]:
    """Kahn's algorithm, one level at a time; within a level, insertion order.

    Round 0 holds the roots; a node joins the round after the one that held its last parent, so
    its round is its longest distance from a root: the order comes out grouped by level, and the
    levels cost nothing extra. Sorting each round (ints, in C) is much cheaper than a priority
    queue over the whole graph, and just as deterministic.

    Returns the order and the round boundaries (``order[bounds[k]:bounds[k + 1]]`` is level k).
    ``indeg`` is consumed. The order misses some nodes when the graph has a cycle or self-loop.
    """
    frontier = list(compress(range(len(indeg)), map(not_, indeg)))
    order: list[int] = []
    bounds = [0]
    while frontier:
        order += frontier
        bounds.append(len(order))
        ready: list[int] = []
        append = ready.append
        for u in frontier:
            for v in children[u]:
                d = indeg[v] - 1
                indeg[v] = d
                if not d:
                    append(v)
        ready.sort()
        frontier = ready
    return order, bounds


def find_cycle(n: int, parents: IntLists, done: Iterable[int]) -> list[int]:
    """Return a cycle among the nodes Kahn could not order, first node repeated at the end.

    Every node Kahn left behind has a parent that was also left behind, so walking from one of
    them to such a parent, again and again, must revisit a node: the walk from that node's first
    visit on is a cycle (read backwards, since the walk follows edges in reverse).
    """
    stuck = [True] * n
    for u in done:
        stuck[u] = False
    start = stuck.index(True)
    seen_at: dict[int, int] = {}
    walk: list[int] = []
    node = start
    while node not in seen_at:
        seen_at[node] = len(walk)
        walk.append(node)
        node = next(p for p in parents[node] if stuck[p])
    cycle = walk[seen_at[node] :]
    cycle.reverse()
    cycle.append(cycle[0])
    return cycle


def levels_from_bounds(order: Sequence[int], bounds: Sequence[int]) -> list[int]:
    """Each node's level, from the rounds of `kahn`."""
    level = [0] * len(order)
    for k in range(1, len(bounds) - 1):
        for u in order[bounds[k] : bounds[k + 1]]:
            level[u] = k
    return level


def ancestors_of(starts: Iterable[int], parents: IntLists, n: int) -> list[bool]:
    """Mark every node reachable from ``starts`` through ``parents`` (or children) lists.

    Works in either direction: pass the children lists to get descendants. The start nodes
    themselves are marked only if reachable from another start.
    """
    mark = [False] * n
    stack = list(starts)
    while stack:
        u = stack.pop()
        for p in parents[u]:
            if not mark[p]:
                mark[p] = True
                stack.append(p)
    return mark


def neighbourhood_of(start: int, depth: int, children: IntLists, parents: IntLists) -> list[int]:
    """Nodes within ``depth`` edges of ``start``, following edges either way (breadth-first)."""
    seen = {start}
    frontier = [start]
    for _ in range(depth):
        nxt: list[int] = []
        for u in frontier:
            for v in (*children[u], *parents[u]):
                if v not in seen:
                    seen.add(v)
                    nxt.append(v)
        if not nxt:
            break
        frontier = nxt
    return sorted(seen)


def weighted_longest_path(
    order: Sequence[int], parents: IntLists, weight: Sequence[float]
) -> tuple[list[int], float]:
    """The path with the largest sum of node weights, and that sum (ties: earliest nodes)."""
    if not order:
        return [], 0.0
    best = [0.0] * len(order)
    via = [-1] * len(order)
    for v in order:
        top, arg = -1.0, -1  # weights are >= 0, so the first parent always beats this
        for p in parents[v]:
            if best[p] > top:
                top, arg = best[p], p
        best[v] = max(top, 0.0) + weight[v]
        via[v] = arg
    end = max(range(len(order)), key=best.__getitem__)
    path = [end]
    while via[path[-1]] >= 0:
        path.append(via[path[-1]])
    path.reverse()
    return path, best[end]


def select(flags: Sequence[bool]) -> list[int]:
    """Positions whose flag is true, ascending."""
    return list(compress(range(len(flags)), flags))


@contextlib.contextmanager
def paused_gc() -> Iterator[None]:
    """Pause the cyclic garbage collector around a bulk build (a `DAG`, ``Pipeline.build``, submit).

    A bulk build allocates millions of container objects (a list per node, records per task);
    each full collection triggered meanwhile rescans all of them and everything the caller
    holds, such as its edge list: 8 full collections took 0.8 s of a 7 s ``DAG.from_edges`` of
    1M nodes, and about 40% of ``Pipeline.build()`` at 100k tasks. Reference counting still
    frees everything as usual; cycles, if any, are collected once the pause ends. Nesting is
    safe (only the outermost pause re-enables). Across threads the collector is process-wide:
    the first pause to end turns it back on while another thread may still be building, which
    only costs that build its speed.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()
