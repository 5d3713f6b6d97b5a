"""The immutable task graph: `DAG`.

A `DAG` is built once, validated once (self-edges, unknown tasks, duplicates, cycles) and never
changes afterwards, so every answer it gives (order, levels, roots...) can be cached. Nodes are
any hashable ids (the builder uses task-name strings, the benchmark uses ints); they are interned
to their insertion position and the algorithms of `ironforge_nb.dag._core` run on those ints.

Standard library only: this module is imported by code that never touches Redis or Graphviz.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Hashable, Iterable, Iterator, Mapping, Sequence, Sized
from itertools import chain, compress
from operator import eq, itemgetter
from typing import Any, Generic, TypeVar, cast

from ironforge_nb.dag import _core
from ironforge_nb.errors import (
    CycleError,
    DuplicateTaskError,
    InvalidOptionError,
    SelfDependencyError,
    UnknownTaskError,
)

__all__ = ["DAG"]

N = TypeVar("N", bound=Hashable)

_DESCRIBE_WIDTH = 12  # tasks shown per level by describe() before "... and k more"


class DAG(Generic[N]):
    """An immutable, validated directed acyclic graph of tasks.

    Build it with `DAG.from_edges` or `DAG.from_parents` (what ``Pipeline.build()`` calls).
    Orders are deterministic: whenever several tasks could come next, the one inserted first wins.
    """

    __slots__ = (
        "_children",
        "_data",
        "_edges",
        "_index",
        "_levels",
        "_nodes",
        "_order",
        "_parents",
    )

    _nodes: tuple[N, ...]
    _index: dict[N, int]
    _children: _core.IntLists
    _parents: _core.IntLists | None
    _order: Sequence[int]
    _levels: list[int] | None
    _data: tuple[object, ...] | None
    _edges: int

    # ------------------------------------------------------------------ construction

    @classmethod
    def from_edges(cls, edges: Iterable[tuple[N, N]], nodes: Iterable[N] | None = None) -> DAG[N]:
        """Build from ``(parent, child)`` pairs; repeated edges count once.

        ``nodes`` fixes the node order and may add isolated nodes; when it is given, an edge
        naming any other node raises `UnknownTaskError`. Without it, nodes come in order of first
        appearance in ``edges``.
        """
        edge_list = edges if isinstance(edges, (list, tuple)) else list(edges)
        _check_pairs(edge_list)
        if nodes is None:
            order = tuple(dict.fromkeys(chain.from_iterable(edge_list)))
            index = dict(zip(order, range(len(order)), strict=True))
        else:
            order = tuple(nodes)
            index = _intern(order)
        src = _lookup(index, list(map(itemgetter(0), edge_list)), edge_list, 0)
        dst = _lookup(index, list(map(itemgetter(1), edge_list)), edge_list, 1)
        return cls._from_ints(order, index, src, dst, None)

    @classmethod
    def from_parents(
        cls, parents: Mapping[N, Sequence[N]], data: Mapping[N, object] | None = None
    ) -> DAG[N]:
        """Build from ``{task: its parents}``; the mapping's order is the task order.

        ``data`` attaches one object per task (the builder's task specs), returned by `data`.
        A plain string as a parent list means that one parent.
        """
        order = tuple(parents)
        index = dict(zip(order, range(len(order)), strict=True))
        src: list[int] = []
        dst: list[int] = []
        for v, (child, ups) in enumerate(parents.items()):
            for up in cast("Sequence[N]", (ups,) if isinstance(ups, str) else ups):
                u = index.get(up)
                if u is None:
                    raise UnknownTaskError(cast(str, child), cast(str, up), _suggest(up, order))
                src.append(u)
                dst.append(v)
        attached = None
        if data is not None:
            for key in data:
                if key not in index:
                    raise UnknownTaskError(None, cast(str, key), _suggest(key, order))
            attached = tuple(map(data.get, order))
        return cls._from_ints(order, index, src, dst, attached)

    @classmethod
    def _from_ints(
        cls,
        nodes: tuple[N, ...],
        index: dict[N, int],
        src: list[int],
        dst: list[int],
        data: tuple[object, ...] | None,
    ) -> DAG[N]:
        """Validate interned edges (self-edges, cycles) and assemble the graph."""
        if any(map(eq, src, dst)):
            raise SelfDependencyError(cast(str, nodes[src[_core.first_true(map(eq, src, dst))]]))
        n = len(nodes)
        children, count = _core.build_children(n, src, dst)
        if _core.is_forward(src, dst):
            order: Sequence[int] = range(n)
        else:
            order = _core.kahn(n, children, _core.in_degrees(n, children))
            if len(order) < n:
                parents = _core.invert(n, children)
                cycle = _core.find_cycle(n, parents, order)
                raise CycleError([nodes[i] for i in cycle])
        self = cls.__new__(cls)
        self._nodes, self._index, self._children = nodes, index, children
        self._parents, self._order, self._levels = None, order, None
        self._data, self._edges = data, count
        return self

    # ------------------------------------------------------------------ basic queries

    @property
    def nodes(self) -> tuple[N, ...]:
        """Every task, in insertion order."""
        return self._nodes

    @property
    def edge_count(self) -> int:
        """Number of distinct edges."""
        return self._edges

    def __len__(self) -> int:
        return len(self._nodes)

    def __contains__(self, node: object) -> bool:
        return node in self._index

    def __iter__(self) -> Iterator[N]:
        return iter(self._nodes)

    def data(self, node: N) -> object | None:
        """The object attached to ``node`` by `from_parents` (None when nothing was attached)."""
        i = self._position(node)
        return None if self._data is None else self._data[i]

    def parents(self, node: N) -> tuple[N, ...]:
        """Direct parents of ``node``, in insertion order."""
        return self._names(self._parent_lists()[self._position(node)])

    def children(self, node: N) -> tuple[N, ...]:
        """Direct children of ``node``, in insertion order."""
        return self._names(sorted(self._children[self._position(node)]))

    def edges(self) -> Iterator[tuple[N, N]]:
        """Every ``(parent, child)`` edge, by parent then child insertion order."""
        nodes = self._nodes
        for u, kids in enumerate(self._children):
            parent = nodes[u]
            for v in sorted(kids):
                yield parent, nodes[v]

    def roots(self) -> tuple[N, ...]:
        """Tasks without parents, in insertion order."""
        return self._names(i for i, ups in enumerate(self._parent_lists()) if not ups)

    def leaves(self) -> tuple[N, ...]:
        """Tasks without children, in insertion order."""
        return self._names(i for i, kids in enumerate(self._children) if not kids)

    # ------------------------------------------------------------------ orders and levels

    def topological_order(self) -> list[N]:
        """Every task after all its parents; among ready tasks, the one inserted first."""
        return list(map(self._nodes.__getitem__, self._order))

    def levels(self) -> dict[N, int]:
        """Each task's longest distance in edges from a root (roots are at level 0)."""
        return dict(zip(self._nodes, self._level_list(), strict=True))

    def generations(self) -> list[list[N]]:
        """Tasks grouped by level (index = level), insertion order inside each group."""
        levels = self._level_list()
        groups: list[list[N]] = [[] for _ in range(max(levels, default=-1) + 1)]
        for node, level in zip(self._nodes, levels, strict=True):
            groups[level].append(node)
        return groups

    # ------------------------------------------------------------------ reachability and views

    def ancestors(self, node: N) -> set[N]:
        """Every task ``node`` depends on, directly or not (``node`` excluded)."""
        marks = _core.ancestors_of([self._position(node)], self._parent_lists(), len(self))
        return set(compress(self._nodes, marks))

    def descendants(self, node: N) -> set[N]:
        """Every task that depends on ``node``, directly or not (``node`` excluded)."""
        marks = _core.ancestors_of([self._position(node)], self._children, len(self))
        return set(compress(self._nodes, marks))

    def upstream(self, *nodes: N) -> DAG[N]:
        """The sub-DAG of ``nodes`` and everything they depend on (attached data kept)."""
        starts = [self._position(node) for node in nodes]
        marks = _core.ancestors_of(starts, self._parent_lists(), len(self))
        for i in starts:
            marks[i] = True
        return self._induced(_core.select(marks))

    def downstream(self, *nodes: N) -> DAG[N]:
        """The sub-DAG of ``nodes`` and everything depending on them (attached data kept)."""
        starts = [self._position(node) for node in nodes]
        marks = _core.ancestors_of(starts, self._children, len(self))
        for i in starts:
            marks[i] = True
        return self._induced(_core.select(marks))

    def subgraph(self, nodes: Iterable[N]) -> DAG[N]:
        """The sub-DAG induced by ``nodes``: those tasks and the edges between them."""
        return self._induced(sorted({self._position(node) for node in nodes}))

    def neighbourhood(self, node: N, depth: int) -> DAG[N]:
        """The sub-DAG of tasks within ``depth`` edges of ``node``, following edges either way."""
        if isinstance(depth, bool) or not isinstance(depth, int) or depth < 0:
            raise InvalidOptionError("depth", depth, "an int >= 0")
        start = self._position(node)
        keep = _core.neighbourhood_of(start, depth, self._children, self._parent_lists())
        return self._induced(keep)

    def critical_path(self, durations: Mapping[N, float]) -> tuple[list[N], float]:
        """The chain of dependent tasks with the largest total duration, and that total.

        Tasks missing from ``durations`` take no time. Among equally long paths, the one ending
        at the task inserted first wins.
        """
        weight = [0.0] * len(self)
        for node, seconds in durations.items():
            value = float(seconds)
            if not math.isfinite(value) or value < 0:
                raise InvalidOptionError(f"durations[{node!r}]", seconds, "a finite number >= 0")
            weight[self._position(node)] = value
        path, total = _core.weighted_longest_path(self._order, self._parent_lists(), weight)
        return [self._nodes[i] for i in path], total

    # ------------------------------------------------------------------ display

    def __repr__(self) -> str:
        n, e = len(self), self._edges
        return f"DAG({n} task{'s' * (n != 1)}, {e} edge{'s' * (e != 1)})"

    def __str__(self) -> str:
        return self.describe()

    def describe(self, width: int = _DESCRIBE_WIDTH) -> str:
        """Plain-text summary: one line per level listing its tasks (at most ``width`` each)."""
        lines = [repr(self)]
        for level, group in enumerate(self.generations()):
            shown = ", ".join(map(str, group[:width]))
            more = f", ... and {len(group) - width} more" if len(group) > width else ""
            lines.append(f"  level {level}: {shown}{more}")
        return "\n".join(lines)

    def _repr_mimebundle_(
        self, include: Iterable[str] | None = None, exclude: Iterable[str] | None = None
    ) -> dict[str, Any]:
        """Jupyter display: an SVG drawing plus the text summary (rendering is imported lazily)."""
        from ironforge_nb.render import mimebundle  # a leaf layer; never imported at module load

        bundle: dict[str, Any] = mimebundle(self)
        if include is not None:
            wanted = set(include)
            bundle = {k: v for k, v in bundle.items() if k in wanted}
        if exclude is not None:
            unwanted = set(exclude)
            bundle = {k: v for k, v in bundle.items() if k not in unwanted}
        return bundle

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, DAG):
            return NotImplemented
        return self._nodes == other._nodes and set(self.edges()) == set(other.edges())

    __hash__ = None  # type: ignore[assignment]

    # ------------------------------------------------------------------ internals

    def _position(self, node: N) -> int:
        try:
            return self._index[node]
        except (KeyError, TypeError):
            raise UnknownTaskError(None, cast(str, node), _suggest(node, self._nodes)) from None

    def _names(self, positions: Iterable[int]) -> tuple[N, ...]:
        return tuple(map(self._nodes.__getitem__, positions))

    def _parent_lists(self) -> _core.IntLists:
        if self._parents is None:
            self._parents = _core.invert(len(self._nodes), self._children)
        return self._parents

    def _level_list(self) -> list[int]:
        if self._levels is None:
            self._levels = _core.longest_levels(self._order, self._children)
        return self._levels

    def _induced(self, keep: Sequence[int]) -> DAG[N]:
        """Sub-DAG on the positions ``keep`` (ascending), re-validated cheaply and re-ordered."""
        new = [-1] * len(self._nodes)
        for j, i in enumerate(keep):
            new[i] = j
        src: list[int] = []
        dst: list[int] = []
        for i in keep:
            for v in self._children[i]:
                if new[v] >= 0:
                    src.append(new[i])
                    dst.append(new[v])
        nodes = tuple(map(self._nodes.__getitem__, keep))
        data = None if self._data is None else tuple(map(self._data.__getitem__, keep))
        return type(self)._from_ints(
            nodes, dict(zip(nodes, range(len(nodes)), strict=True)), src, dst, data
        )


# ---------------------------------------------------------------------- helpers


def _suggest(missing: object, nodes: Sequence[object]) -> list[str]:
    """Up to three existing task names close to ``missing`` (for 'did you mean' hints)."""
    return difflib.get_close_matches(str(missing), list(map(str, nodes)), n=3)


def _intern(order: tuple[N, ...]) -> dict[N, int]:
    """Map each node to its position; a node listed twice raises `DuplicateTaskError`."""
    index = dict(zip(order, range(len(order)), strict=True))
    if len(index) != len(order):
        seen: set[N] = set()
        for node in order:
            if node in seen:
                raise DuplicateTaskError(cast(str, node))
            seen.add(node)
    return index


def _check_pairs(edges: Sequence[object]) -> None:
    """Every edge must be a ``(parent, child)`` pair (a str of length 2 is not one)."""
    if not edges:
        return
    # C-level checks first: per-edge Python calls would cost more than the whole sort
    sized = cast("Sequence[Sized]", edges)
    if set(map(type, edges)) <= {tuple, list} and set(map(len, sized)) == {2}:
        return
    bad = next((e for e in edges if _pair_length(e) != 2), None)
    if bad is not None:
        raise InvalidOptionError("edge", bad, "a (parent, child) pair")


def _pair_length(edge: object) -> int:
    return len(edge) if isinstance(edge, (tuple, list)) else -1  # tuple subclasses count


def _lookup(
    index: Mapping[N, int], ends: list[N], edges: Sequence[tuple[N, N]], side: int
) -> list[int]:
    """Positions of one end of every edge; an unknown node raises `UnknownTaskError`."""
    try:
        return list(map(index.__getitem__, ends))
    except KeyError:
        pass
    order = tuple(index)
    for parent, child in edges:
        missing = (parent, child)[side]
        if missing not in index:
            task = None if side == 1 else child
            raise UnknownTaskError(
                cast(str, task), cast(str, missing), _suggest(missing, order)
            ) from None
    raise AssertionError("unreachable: a lookup failed but every node is known")
