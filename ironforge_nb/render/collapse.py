"""What a drawing shows: one box per task, or tasks collapsed by group or by level.

This is the pure half of rendering (no Graphviz): it turns a `DAG` plus statuses into a small
`View` of boxes and aggregated edges, in O(V + E). Layout time with ``dot`` grows much faster
than linearly (1k nodes take seconds, 5k minutes), so a large graph is first collapsed by
group (each map or ``group=`` becomes one box), then, if that is still too many boxes, by level,
bucketing consecutive levels so that there are never more than ``max_nodes`` boxes.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ironforge_nb.dag.graph import DAG
from ironforge_nb.errors import InvalidOptionError
from ironforge_nb.render.palette import PENDING, STATUS_ORDER, normalize_status, summary_status

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
    """Boxes, edges between box indexes with the number of task edges each one stands for."""

    mode: str  # "tasks", "group" or "level"
    boxes: list[Box]
    edges: dict[tuple[int, int], int]
    task_count: int


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
    if collapse is None or (collapse == "auto" and len(dag) <= max_nodes):
        return _task_view(dag, status)
    if collapse in ("group", "auto"):
        assign, boxes = _by_group(dag, status)
        if collapse == "group" or len(boxes) <= max_nodes:
            return _aggregate(dag, "group", assign, boxes, status)
    assign, boxes = _by_level(dag, max_nodes)
    return _aggregate(dag, "level", assign, boxes, status)


def _status_list(dag: DAG[Any], statuses: Mapping[Any, object] | None) -> list[str]:
    """The palette key of every task, in node order; tasks absent from ``statuses`` are pending."""
    if not statuses:
        return [PENDING] * len(dag)
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
    return View("tasks", boxes, edges, len(dag))


def _by_group(dag: DAG[Any], status: Sequence[str]) -> tuple[list[int], list[Box]]:
    """A box per group of two or more tasks; other tasks keep a box of their own."""
    groups = [_group_of(dag.data(node)) for node in dag.nodes]
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
    dag: DAG[Any], mode: str, assign: Sequence[int], boxes: list[Box], status: Sequence[str]
) -> View:
    """Fill the boxes' counts and merge task edges into box edges (inner edges dropped)."""
    for b, s in zip(assign, status, strict=True):
        box = boxes[b]
        box.size += 1
        box.counts[s] = box.counts.get(s, 0) + 1
    index = {node: i for i, node in enumerate(dag.nodes)}
    edges: dict[tuple[int, int], int] = {}
    for u, v in dag.edges():
        key = (assign[index[u]], assign[index[v]])
        if key[0] != key[1]:
            edges[key] = edges.get(key, 0) + 1
    return View(mode, boxes, edges, len(dag))
