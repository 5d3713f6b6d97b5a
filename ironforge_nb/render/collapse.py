"""What a drawing shows: one box per task, or tasks collapsed by group or by level.

This is the pure half of rendering (no Graphviz): it turns a `DAG` plus statuses into a small
`View` of boxes and aggregated edges, in O(V + E). Layout time with ``dot`` grows much faster
than linearly (1k nodes take seconds, 5k minutes), so a large graph is first collapsed by
group (each map or ``group=`` becomes one box), then, if that is still too many boxes, by level,
bucketing consecutive levels so that there are never more than ``max_nodes`` boxes.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ironforge_nb.dag.graph import DAG
from ironforge_nb.errors import InvalidOptionError
from ironforge_nb.render.palette import NO_STATUS, STATUS_ORDER, normalize_status, summary_status

__all__ = ["COLLAPSE_MODES", "Box", "View", "build_view"]

COLLAPSE_MODES = ("auto", "group", "level", None)


@dataclass
class Box:
    """One drawn node: a single task (``task`` set) or a collapsed set of ``size`` tasks."""

    title: str
    size: int = 0
    counts: dict[str, int] = field(default_factory=dict)
    task: Hashable | None = None
    cluster: str | None = None  # group drawn around a single task

    @property
    def status(self) -> str:
        """The status the box is colored with."""
        return summary_status(self.counts)

    def count_line(self, with_statuses: bool) -> str:
        """``"120 tasks: 80 completed, 40 queued"`` (without the statuses if there are none)."""
        head = f"{self.size:,} task{'s' * (self.size != 1)}"
        if not with_statuses:
            return head
        parts = [f"{self.counts[s]:,} {s}" for s in STATUS_ORDER if self.counts.get(s)]
        return f"{head}: {', '.join(parts)}"


@dataclass
class View:
    """Boxes, edges between box indexes with the number of task edges each one stands for.

    ``assign[i]`` is the box of the DAG's i-th node: a live view recolors a drawing by moving
    counts between boxes (`Box.counts`) instead of collapsing the DAG again.
    """

    mode: str  # "tasks", "group" or "level"
    boxes: list[Box]
    edges: dict[tuple[int, int], int]
    task_count: int
    assign: Sequence[int] = ()


def build_view(
    dag: DAG[Any],
    statuses: Mapping[Any, object] | None,
    collapse: str | None = "auto",
    max_nodes: int = 300,
) -> View:
    """Decide how to draw ``dag`` and build that view (collapsed only when needed or asked)."""
    if collapse not in COLLAPSE_MODES:
        raise InvalidOptionError("collapse", collapse, "'auto', 'group', 'level' or None")
    if isinstance(max_nodes, bool) or not isinstance(max_nodes, int) or max_nodes < 1:
        raise InvalidOptionError("max_nodes", max_nodes, "an int >= 1")
    status = _status_list(dag, statuses)
    if collapse is None or (collapse == "auto" and _fits(len(dag), dag.edge_count, max_nodes)):
        return _task_view(dag, status)
    groups = [_group_of(dag.data(node)) for node in dag.nodes]
    if collapse == "group" or (collapse == "auto" and any(g is not None for g in groups)):
        assign, boxes = _by_group(dag, groups)
        if collapse == "auto" and len(boxes) > max_nodes:
            assign, boxes = _by_level(dag, max_nodes)
            return _aggregate(dag, "level", assign, boxes, status, chain=True)
        view = _aggregate(dag, "group", assign, boxes, status)
        if not _fits(len(boxes), len(view.edges), max_nodes):
            view.edges = _reduce(len(boxes), view.edges)
        if collapse == "group" or _fits(len(boxes), len(view.edges), max_nodes):
            return view
    assign, boxes = _by_level(dag, max_nodes)
    return _aggregate(dag, "level", assign, boxes, status, chain=True)


def _fits(boxes: int, edges: int, max_nodes: int) -> bool:
    """Whether ``dot`` lays this out in about a second: few boxes and not too many edges.

    Measured with dot 2.43: 300 boxes with 600 edges take 0.3 s whatever their span, while
    300 boxes with 900 long edges (or 100 with 600) take 3 to 15 s.
    """
    return boxes <= max_nodes and edges <= min(2 * max_nodes, 3 * max(boxes, 1))


def _status_list(dag: DAG[Any], statuses: Mapping[Any, object] | None) -> list[str]:
    """The palette key of every task, in node order; tasks absent from ``statuses`` have none."""
    if not statuses:
        return [NO_STATUS] * len(dag)
    cache: dict[object, str] = {}
    out = []
    for node in dag.nodes:
        raw = statuses.get(node)
        key = cache.get(raw)
        if key is None:
            key = cache[raw] = normalize_status(raw)
        out.append(key)
    return out


def _group_of(data: object) -> str | None:
    group = getattr(data, "group", None)
    return group if isinstance(group, str) else None


def _task_view(dag: DAG[Any], status: Sequence[str]) -> View:
    """One box per task; tasks with a group are drawn inside that group's cluster."""
    boxes = [
        Box(str(node), 1, {status[i]: 1}, node, _group_of(dag.data(node)))
        for i, node in enumerate(dag.nodes)
    ]
    index = {node: i for i, node in enumerate(dag.nodes)}
    edges = {(index[u], index[v]): 1 for u, v in dag.edges()}
    return View("tasks", boxes, edges, len(dag), range(len(boxes)))


def _by_group(dag: DAG[Any], groups: Sequence[str | None]) -> tuple[list[int], list[Box]]:
    """A box per group of two or more tasks; other tasks keep a box of their own."""
    sizes: dict[str, int] = {}
    for group in groups:
        if group is not None:
            sizes[group] = sizes.get(group, 0) + 1
    slot: dict[str, int] = {}
    boxes: list[Box] = []
    assign: list[int] = []
    for node, group in zip(dag.nodes, groups, strict=True):
        if group is None or sizes[group] < 2:
            assign.append(len(boxes))
            boxes.append(Box(str(node), task=node, cluster=group))
            continue
        if group not in slot:
            slot[group] = len(boxes)
            boxes.append(Box(_group_title(dag, node, group)))
        assign.append(slot[group])
    return assign, boxes


def _group_title(dag: DAG[Any], node: Any, group: str) -> str:
    """``score[*]`` for the group a map gets by default, else the group name."""
    item = getattr(dag.data(node), "map", None)
    return f"{group}[*]" if getattr(item, "name", None) == group else group


def _by_level(dag: DAG[Any], max_nodes: int) -> tuple[list[int], list[Box]]:
    """A box per level, or per run of consecutive levels when there are more than max_nodes."""
    levels = dag.levels()
    depth = max(levels.values(), default=-1) + 1
    width = max(1, -(-depth // max_nodes))  # ceil: levels per box
    count = -(-depth // width)
    boxes = []
    for b in range(count):
        low, high = b * width, min(depth, (b + 1) * width) - 1
        boxes.append(Box(f"level {low}" if low == high else f"levels {low}-{high}"))
    assign = [levels[node] // width for node in dag.nodes]
    return assign, boxes


def _aggregate(
    dag: DAG[Any], mode: str, assign: Sequence[int], boxes: list[Box], status: Sequence[str],
    chain: bool = False,
) -> View:
    """Fill the boxes' counts and merge task edges into box edges (inner edges dropped).

    With ``chain`` (level boxes) only edges between consecutive boxes are kept: every task
    has a parent on the level just before its own, so those edges always exist and the
    skipped ones add nothing but layout time.
    """
    for b, s in zip(assign, status, strict=True):
        box = boxes[b]
        box.size += 1
        box.counts[s] = box.counts.get(s, 0) + 1
    box_of = dict(zip(dag.nodes, assign, strict=True))
    pairs = Counter((box_of[u], box_of[v]) for u, v in dag.edges())
    edges = {
        (a, b): n for (a, b), n in pairs.items() if a != b and (not chain or b == a + 1)
    }
    return View(mode, boxes, edges, len(dag), assign)


def _reduce(n: int, edges: dict[tuple[int, int], int]) -> dict[tuple[int, int], int]:
    """Transitive reduction of the box graph: drop ``a -> b`` when b is reachable otherwise.

    Bitsets over at most a few hundred boxes; a box graph with a cycle (groups that feed
    each other) is returned unchanged.
    """
    children: list[list[int]] = [[] for _ in range(n)]
    indeg = [0] * n
    for a, b in edges:
        children[a].append(b)
        indeg[b] += 1
    order = [i for i in range(n) if indeg[i] == 0]
    for i in order:  # Kahn: the list grows while it is walked
        for c in children[i]:
            indeg[c] -= 1
            if indeg[c] == 0:
                order.append(c)
    if len(order) < n:
        return edges
    reach = [0] * n  # bit c set in reach[i]: c is reachable from i by a path of length >= 1
    for i in reversed(order):
        for c in children[i]:
            reach[i] |= reach[c] | (1 << c)
    kept = {}
    for (a, b), count in edges.items():
        if not any(c != b and reach[c] >> b & 1 for c in children[a]):
            kept[a, b] = count
    return kept
