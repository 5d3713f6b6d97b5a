"""The immutable task graph: `DAG`.

A `DAG` is built once, validated once (self-edges, unknown tasks, duplicates, cycles) and never
changes afterwards, so every answer it gives (order, levels, roots...) can be cached. Nodes are
any hashable ids (the builder uses task-name strings, the benchmark uses ints); they are interned
to their insertion position and the algorithms of `ironforge_nb.dag._core` run on those ints.

Standard library only: this module is imported by code that never touches Redis or Graphviz.
"""

from __future__ import annotations

import difflib
import itertools
import math
from collections.abc import Hashable, Iterable, Iterator, Mapping, Sequence
from itertools import chain, compress
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
    Orders are deterministic: tasks come level by level (a task's level is its longest distance
    from a root), and in insertion order within a level.
    """

    __slots__ = (
        "_bounds",
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
    _order: list[int]  # topological order (positions), level by level
    _bounds: list[int]  # _order[_bounds[k]:_bounds[k + 1]] is level k
    _levels: list[int] | None
    _data: tuple[object, ...] | None
    _edges: int | None  # None until repeated edges have been dropped (see _distinct)

    # ------------------------------------------------------------------ construction

    @classmethod
    def from_edges(cls, edges: Iterable[tuple[N, N]], nodes: Iterable[N] | None = None) -> DAG[N]:
        """Build from ``(parent, child)`` pairs; repeated edges count once.

        ``nodes`` fixes the node order and may add isolated nodes; when it is given, an edge
        naming any other node raises `UnknownTaskError`. Without it, nodes come in order of first
        appearance in ``edges``.
        """
        with _core.paused_gc():
            edge_list = edges if isinstance(edges, (list, tuple)) else list(edges)
            given = None if nodes is None else tuple(nodes)
            index = {} if given is None else _intern(given)
            try:
                if given is None:
                    order = tuple(dict.fromkeys(chain.from_iterable(edge_list)))
                    index = dict(zip(order, range(len(order)), strict=True))
                else:
                    order = given
                children, indeg = _core.group_edges(order, index, edge_list)
            except (KeyError, TypeError, ValueError):
                _explain_bad_edges(edge_list, given)
                raise  # not an edge problem after all: let the original error through
            return cls._assemble(order, index, children, indeg, None)

    @classmethod
    def from_parents(
        cls, parents: Mapping[N, Sequence[N]], data: Mapping[N, object] | None = None
    ) -> DAG[N]:
        """Build from ``{task: its parents}``; the mapping's order is the task order.

        ``data`` attaches one object per task (the builder's task specs), returned by `data`.
        A plain string as a parent list means that one parent.
        """
        with _core.paused_gc():
            order = tuple(parents)
            n = len(order)
            index = dict(zip(order, range(n), strict=True))
            children: _core.IntLists = [[] for _ in range(n)]
            indeg = [0] * n
            for v, (child, ups) in enumerate(parents.items()):
                for up in cast("Sequence[N]", (ups,) if isinstance(ups, str) else ups):
                    u = index.get(up)
                    if u is None:
                        raise UnknownTaskError(cast(str, child), cast(str, up), _suggest(up, order))
                    children[u].append(v)
                    indeg[v] += 1
            attached = None
            if data is not None:
                if data.keys() != parents.keys():  # the builder's case: the same keys (C loop)
                    for key in data:
                        if key not in index:
                            raise UnknownTaskError(None, cast(str, key), _suggest(key, order))
                attached = tuple(map(data.get, order))
            return cls._assemble(order, index, children, indeg, attached)

    @classmethod
    def _assemble(
        cls,
        nodes: tuple[N, ...],
        index: dict[N, int],
        children: _core.IntLists,
        indeg: list[int],
        data: tuple[object, ...] | None,
    ) -> DAG[N]:
        """Order interned edges (which validates them: self-loops, cycles) and build the graph."""
        order, bounds = _core.kahn(children, indeg)
        if len(order) < len(nodes):
            looped = _core.self_loop(children)
            if looped is not None:
                raise SelfDependencyError(cast(str, nodes[looped]))
            cycle = _core.find_cycle(len(nodes), _core.invert(len(nodes), children), order)
            raise CycleError([nodes[i] for i in cycle])
        self = cls.__new__(cls)
        self._nodes, self._index, self._children = nodes, index, children
        self._parents, self._order, self._bounds, self._levels = None, order, bounds, None
        self._data, self._edges = data, None
        return self

    # ------------------------------------------------------------------ basic queries

    @property
    def nodes(self) -> tuple[N, ...]:
        """Every task, in insertion order."""
        return self._nodes

    @property
    def edge_count(self) -> int:
        """Number of distinct edges."""
        return self._distinct()[1]

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

    def attached(self) -> tuple[object, ...]:
        """The object attached to each task by `from_parents`, in `nodes` order (None for
        each when nothing was attached): `data` for every task at once."""
        return self._data if self._data is not None else (None,) * len(self._nodes)

    def parents(self, node: N) -> tuple[N, ...]:
        """Direct parents of ``node``, in insertion order."""
        return self._names(self._parent_lists()[self._position(node)])

    def children(self, node: N) -> tuple[N, ...]:
        """Direct children of ``node``, in insertion order."""
        return self._names(sorted(self._distinct()[0][self._position(node)]))

    def edges(self) -> Iterator[tuple[N, N]]:
        """Every ``(parent, child)`` edge, by parent then child insertion order."""
        nodes = self._nodes
        for u, kids in enumerate(self._distinct()[0]):
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
        """Every task after all its parents: level by level, insertion order within a level.

        The same graph always gives the same order, and it is `generations` flattened.
        """
        return list(map(self._nodes.__getitem__, self._order))

    def levels(self) -> dict[N, int]:
        """Each task's longest distance in edges from a root (roots are at level 0)."""
        return dict(zip(self._nodes, self._level_list(), strict=True))

    def generations(self) -> list[list[N]]:
        """Tasks grouped by level (index = level), insertion order inside each group."""
        order, bounds, nodes = self._order, self._bounds, self._nodes
        return [
            list(map(nodes.__getitem__, order[start:end]))
            for start, end in itertools.pairwise(bounds)
        ]

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
        n, e = len(self), self.edge_count
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
        """Same tasks in the same order and the same edges (attached data is not compared)."""
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

    def _distinct(self) -> tuple[_core.IntLists, int]:
        """Children lists without repeated edges, and the edge count (deduplicated lazily)."""
        if self._edges is None:
            self._children, self._edges = _core.deduplicate(self._children)
        return self._children, self._edges

    def _parent_lists(self) -> _core.IntLists:
        if self._parents is None:
            with _core.paused_gc():
                self._parents = _core.invert(len(self._nodes), self._distinct()[0])
        return self._parents

    def _level_list(self) -> list[int]:
        if self._levels is None:
            self._levels = _core.levels_from_bounds(self._order, self._bounds)
        return self._levels

    def _induced(self, keep: Sequence[int]) -> DAG[N]:
        """Sub-DAG on the positions ``keep`` (ascending), re-validated cheaply and re-ordered."""
        new = [-1] * len(self._nodes)
        for j, i in enumerate(keep):
            new[i] = j
        children: _core.IntLists = [[] for _ in keep]
        indeg = [0] * len(keep)
        for j, i in enumerate(keep):
            kids = children[j]
            for v in self._children[i]:
                w = new[v]
                if w >= 0:
                    kids.append(w)
                    indeg[w] += 1
        nodes = tuple(map(self._nodes.__getitem__, keep))
        data = None if self._data is None else tuple(map(self._data.__getitem__, keep))
        index = dict(zip(nodes, range(len(nodes)), strict=True))
        return type(self)._assemble(nodes, index, children, indeg, data)


# ---------------------------------------------------------------------- helpers


def _suggest(missing: object, nodes: Sequence[object]) -> list[str]:
    """Up to three existing task names close to ``missing`` (for 'did you mean' hints)."""
    return difflib.get_close_matches(str(missing), list(map(str, nodes)), n=3)


def _intern(order: tuple[N, ...]) -> dict[N, int]:
    """Map each node to its position; a node listed twice raises `DuplicateTaskError`."""
    try:
        index = dict(zip(order, range(len(order)), strict=True))
    except TypeError:
        bad = next(node for node in order if not isinstance(node, Hashable))
        raise InvalidOptionError("node", bad, "a hashable task id") from None
    if len(index) != len(order):
        seen: set[N] = set()
        for node in order:
            if node in seen:
                raise DuplicateTaskError(cast(str, node))
            seen.add(node)
    return index


def _explain_bad_edges(edges: Sequence[object], nodes: tuple[N, ...] | None) -> None:
    """Raise the precise error for the first malformed edge or unknown node, if there is one."""
    known = None if nodes is None else set(nodes)
    for edge in edges:
        if not isinstance(edge, (tuple, list)) or len(edge) != 2:
            raise InvalidOptionError("edge", edge, "a (parent, child) pair")
        for end in edge:
            if not isinstance(end, Hashable):
                raise InvalidOptionError("node", end, "a hashable task id")
        parent, child = edge
        if known is not None and parent not in known:
            raise UnknownTaskError(cast(str, child), parent, _suggest(parent, nodes or ()))
        if known is not None and child not in known:
            raise UnknownTaskError(None, child, _suggest(child, nodes or ()))
