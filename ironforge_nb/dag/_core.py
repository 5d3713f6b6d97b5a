"""Graph algorithms on dense integer ids: the engine under `DAG`.

`DAG` interns its nodes once (node -> position in insertion order) and runs everything below on
those positions: lists indexed by int are much cheaper than dicts keyed by arbitrary objects, and
an order on ints is the insertion order for free. Every function is iterative (no recursion
limit) and O(V + E), except Kahn's ready queue, a heap of ints (see `kahn`).

Adjacency is a list of int lists (``children[u]`` lists ``v`` for every edge ``u -> v``). The lists
are in edge order, not sorted; callers that show them sort on the way out.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Sequence
from itertools import compress, count, repeat
from operator import lt

__all__ = [
    "ancestors_of",
    "build_children",
    "find_cycle",
    "invert",
    "kahn",
    "longest_levels",
    "neighbourhood_of",
    "weighted_longest_path",
]

IntLists = list[list[int]]


def build_children(n: int, src: Sequence[int], dst: Sequence[int]) -> tuple[IntLists, int]:
    """Group the edges ``src[i] -> dst[i]`` by source, dropping repeated edges.

    Returns the children lists and the number of distinct edges. Duplicates are rare, so they
    are looked for first in one cheap pass (distinct edge keys) and removed only when present.
    """
    children: IntLists = [[] for _ in repeat(None, n)]
    for u, v in zip(src, dst, strict=True):
        children[u].append(v)
    count = len(src)
    if count and len(set(map(_edge_key, src, dst, repeat(n)))) != count:
        children = [list(dict.fromkeys(kids)) if len(kids) > 1 else kids for kids in children]
        count = sum(map(len, children))
    return children, count


def _edge_key(u: int, v: int, n: int) -> int:
    return u * n + v


def invert(n: int, children: IntLists) -> IntLists:
    """Return the parents lists of a children adjacency, each sorted by parent position."""
    parents: IntLists = [[] for _ in repeat(None, n)]
    for u, kids in enumerate(children):
        for v in kids:
            parents[v].append(u)
    return parents


def in_degrees(n: int, children: IntLists) -> list[int]:
    """Count each node's parents."""
    indeg = [0] * n
    for kids in children:
        for v in kids:
            indeg[v] += 1
    return indeg


def is_forward(src: Sequence[int], dst: Sequence[int]) -> bool:
    """True when every edge goes from an earlier to a later node: insertion order is topological."""
    return all(map(lt, src, dst))


def kahn(n: int, children: IntLists, indeg: list[int]) -> list[int]:
    """Kahn's algorithm; ties go to the node inserted first (a heap of ready positions).

    The result is the smallest topological order in insertion order, so a graph whose tasks were
    added parents-first comes back in exactly the order it was written. ``indeg`` is consumed.
    The returned list is shorter than ``n`` when the graph has a cycle.
    """
    ready = [u for u, d in enumerate(indeg) if not d]  # ascending, hence already a heap
    order: list[int] = []
    append, pop, push = order.append, heapq.heappop, heapq.heappush
    while ready:
        u = pop(ready)
        append(u)
        for v in children[u]:
            d = indeg[v] - 1
            indeg[v] = d
            if not d:
                push(ready, v)
    return order


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


def longest_levels(order: Sequence[int], children: IntLists) -> list[int]:
    """Each node's longest distance (in edges) from a root, given a topological order."""
    level = [0] * len(order)
    for u in order:
        below = level[u] + 1
        for v in children[u]:
            if level[v] < below:
                level[v] = below
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


def first_true(flags: Iterable[bool]) -> int:
    """Position of the first true flag (there must be one)."""
    return next(compress(count(), flags))
