"""DAG (+ optional statuses) -> `graphviz.Digraph`: a pure function, no ``dot`` binary needed.

`to_digraph` only builds the DOT description; `ironforge_nb.render.output` runs ``dot`` on it.
Nodes are named ``t<i>`` (single task) or ``b<i>`` (collapsed box) and labelled with the task
id, so any node id (ints from ``DAG.from_edges``, ``score[eu]``...) is safe in DOT.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ironforge_nb.dag.graph import DAG
from ironforge_nb.errors import InvalidOptionError
from ironforge_nb.render.collapse import View, build_view
from ironforge_nb.render.palette import legend_items, status_label, status_style

if TYPE_CHECKING:
    import graphviz

__all__ = ["as_dag", "legend", "to_digraph", "view_digraph"]

RANKDIRS = ("LR", "TB", "RL", "BT")
_FONT = "Helvetica"
_GRAPH_ATTR = {"fontname": _FONT, "fontsize": "10", "nodesep": "0.25", "ranksep": "0.35"}
_NODE_ATTR = {"shape": "box", "style": "rounded,filled", "fontname": _FONT, "fontsize": "10",
              "height": "0.3", "margin": "0.08,0.04"}
_EDGE_ATTR = {"color": "#666666", "arrowsize": "0.6"}


def as_dag(obj: Any) -> DAG[Any]:
    """Accept a `DAG` or anything with a ``build()`` returning one (a `Pipeline`)."""
    if isinstance(obj, DAG):
        return obj
    build = getattr(obj, "build", None)
    if callable(build):
        dag = build()
        if isinstance(dag, DAG):
            return dag
    raise InvalidOptionError("graph", type(obj).__name__, "a DAG or a Pipeline")


def to_digraph(
    dag: Any,
    statuses: Mapping[Any, object] | None = None,
    *,
    collapse: str | None = "auto",
    focus: Any = None,
    depth: int = 1,
    max_nodes: int = 300,
    rankdir: str = "LR",
    legend: bool = True,
    title: str | None = None,
) -> graphviz.Digraph:
    """Describe ``dag`` as a Digraph, colored by ``statuses`` (task -> `JobStatus` or str).

    ``collapse="auto"`` draws every task up to ``max_nodes`` tasks and collapses beyond that
    (by group, then by level); ``"group"``/``"level"`` force a mode; None never collapses.
    ``focus=task`` draws only the tasks within ``depth`` edges of it. A legend of the statuses
    present is added when statuses are given and ``legend`` is true.
    """

    if rankdir not in RANKDIRS:
        raise InvalidOptionError("rankdir", rankdir, f"one of {', '.join(RANKDIRS)}")
    graph = as_dag(dag)
    if focus is not None:
        graph = graph.neighbourhood(focus, depth)
    view = build_view(graph, statuses, collapse, max_nodes)
    return view_digraph(view, with_statuses=bool(statuses), focus=focus, rankdir=rankdir,
                        legend=legend, title=title)


def view_digraph(view: View, *, with_statuses: bool = True, focus: Any = None,
                 rankdir: str = "LR", legend: bool = True,
                 title: str | None = None) -> graphviz.Digraph:
    """The Digraph of a `View` already built (`to_digraph` builds one from a DAG): a live
    view keeps its View and only updates its boxes' counts between two drawings."""
    import graphviz

    attrs = {**_GRAPH_ATTR, "rankdir": rankdir}
    if title:
        attrs.update(label=graphviz.escape(title), labelloc="t")
    g = graphviz.Digraph("pipeline", graph_attr=attrs, node_attr=_NODE_ATTR, edge_attr=_EDGE_ATTR)
    _draw_boxes(g, view, with_statuses=with_statuses, focus=focus)
    _draw_edges(g, view)
    if with_statuses and legend:
        present: dict[str, int] = {}
        for box in view.boxes:
            for status, n in box.counts.items():
                present[status] = present.get(status, 0) + n
        g.subgraph(_legend(present))
    return g


def _node_name(view: View, i: int) -> str:
    return f"t{i}" if view.mode == "tasks" else f"b{i}"


def _draw_boxes(g: graphviz.Digraph, view: View, with_statuses: bool, focus: Any) -> None:
    """Add every box, single tasks inside their group's cluster.

    Node lines are written directly (names are plain ``t<i>``/``b<i>``, attribute strings
    cached per status): per-node ``Digraph.node`` calls cost 10x more on 10k-task graphs.
    """
    import graphviz

    clusters: dict[str, list[str]] = {}
    styles: dict[tuple[str, bool], str] = {}
    for i, box in enumerate(view.boxes):
        single = box.task is not None
        key = (box.status, single)
        style = styles.get(key)
        if style is None:
            style = styles[key] = _attr_text(_box_style(box.status, single))
        if single:
            label = graphviz.escape(box.title)
        else:
            label = graphviz.escape(box.title) + "\\n" + graphviz.escape(
                box.count_line(with_statuses))
        bold = " penwidth=2.5" if focus is not None and single and box.task == focus else ""
        line = f"\t{_node_name(view, i)} [label={_quote(label)} {style}{bold}]\n"
        if single and box.cluster is not None:
            clusters.setdefault(box.cluster, []).append(line)
        else:
            g.body.append(line)
    for n, (group, lines) in enumerate(clusters.items()):
        with g.subgraph(name=f"cluster_{n}") as sub:
            sub.attr(label=graphviz.escape(group), style="rounded,dashed", color="#9e9e9e",
                     fontcolor="#616161")
            sub.body.extend(lines)


def _box_style(status: str, single: bool) -> dict[str, str]:
    """Colors and shape of a box: rounded for a task, a 3-D box for a collapsed set."""
    attrs = status_style(status)
    if single:
        attrs["style"] = attrs["style"].replace("filled", "rounded,filled")
    else:
        attrs["shape"] = "box3d"
    return attrs


def _quote(text: str) -> str:
    """A DOT double-quoted string (backslash escapes such as ``\\n`` are kept)."""
    return '"' + text.replace('"', '\\"') + '"'


def _attr_text(attrs: dict[str, str]) -> str:
    return " ".join(f"{k}={_quote(v)}" for k, v in attrs.items())


def _draw_edges(g: graphviz.Digraph, view: View) -> None:
    """One edge per box pair; aggregated edges show how many task edges they stand for."""
    if view.mode == "tasks":  # names are plain ids (t<i>): no quoting needed, and 10x faster
        g.body.extend([f"\tt{u} -> t{v}\n" for u, v in view.edges])
        return
    for (u, v), count in view.edges.items():
        a, b = _node_name(view, u), _node_name(view, v)
        if count == 1:
            g.edge(a, b)
        else:
            width = f"{min(4.0, 1.0 + math.log10(count)):.1f}"
            g.edge(a, b, label=f"{count:,}", penwidth=width, fontsize="8", fontname=_FONT)


def _legend(counts: Mapping[str, int] | None, name: str = "cluster_legend") -> graphviz.Digraph:
    """A legend graph: a swatch per status present in ``counts`` (with its count), or all."""
    import graphviz

    sub = graphviz.Digraph(name=name, node_attr=_NODE_ATTR)
    sub.attr(label="status", style="rounded", color="#bdbdbd", fontname=_FONT, fontsize="10")
    previous = None
    for status, _color in legend_items(counts):
        attrs = status_style(status)
        attrs["style"] = attrs["style"].replace("filled", "rounded,filled")
        name = status_label(status)
        label = name if counts is None else f"{name} ({counts[status]:,})"
        sub.node(f"legend_{status}", label=label, **attrs)
        if previous is not None:  # invisible chain: one swatch per rank, a compact strip
            sub.edge(previous, f"legend_{status}", style="invis")
        previous = f"legend_{status}"
    return sub


def legend(statuses: Mapping[str, int] | None = None) -> graphviz.Digraph:
    """A standalone legend: every status, or those in ``statuses`` (status -> task count)."""
    return _legend(statuses, name="legend")
