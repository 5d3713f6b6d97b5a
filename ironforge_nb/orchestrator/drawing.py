"""How a run is drawn: its tasks as a `DAG` (for the graph) and its HTML view in Jupyter.

Shared by `Run`'s own display and the live monitor, which both color the same DAG by status.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ironforge_nb.dag.graph import DAG

__all__ = ["run_dag", "run_html"]


def run_dag(pairs: list[tuple[str, str]], children: dict[bytes, bytes],
            maps: dict[str, Any]) -> DAG[str]:
    """A run's tasks as a `DAG`: ``pairs`` (task, job id) in task order, edges from the run's
    children hash (raw HGETALL), each map's members grouped so that big maps collapse into
    one box when drawn."""
    from types import SimpleNamespace

    from ironforge_nb.dag.graph import DAG

    parents: dict[str, list[str]] = {task: [] for task, _ in pairs}
    for parent, kids in children.items():
        for child in filter(None, kids.decode().split(",")):
            parents[child].append(parent.decode())
    # the drawing reads a task's ``group`` and its ``map.name`` (titles "name[*]" boxes);
    # one shared object per map, not one per member (100k-member maps)
    data = {member: shown
            for name, (members, _keys) in maps.items()
            for shown in [SimpleNamespace(group=name, map=SimpleNamespace(name=name))]
            for member in members}
    return DAG.from_parents(parents, data=data)


def run_html(run_id: str, info: dict[str, Any], statuses: dict[str, str],
              drawing: dict[str, str]) -> str:
    """A run's HTML view: a heading, one table row per status present (count and the first
    task names, colored like the graph), then the inline SVG (or the text view)."""
    from html import escape

    from ironforge_nb.render.palette import STATUS_ORDER, status_style

    by_status: dict[str, list[str]] = {}
    for task, status in statuses.items():
        by_status.setdefault(status, []).append(task)
    rows = []
    for status in STATUS_ORDER:
        tasks = by_status.get(status)
        if not tasks:
            continue
        style = status_style(status)
        names = ", ".join(tasks[:3]) + (f", ... ({len(tasks) - 3:,} more)" if len(tasks) > 3
                                        else "")
        rows.append(f'<tr><td style="background:{style["fillcolor"]};color:'
                    f'{style.get("fontcolor", "black")}">{status}</td>'
                    f'<td style="text-align:right">{len(tasks):,}</td>'
                    f"<td style=\"text-align:left\">{escape(names)}</td></tr>")
    svg = drawing.get("image/svg+xml")
    graph = (svg[svg.find("<svg"):] if svg
             else f"<pre>{escape(drawing['text/plain'])}</pre>")
    head = (f"<p>run <code>{escape(run_id)}</code> of pipeline "
            f"<b>{escape(str(info.get('name')))}</b>: <b>{escape(str(info.get('status')))}</b>"
            f" ({info.get('total', 0):,} tasks)</p>")
    table = ("<table><tr><th>status</th><th>tasks</th><th style=\"text-align:left\">"
             f"which</th></tr>{''.join(rows)}</table>")
    return f'<div class="ironforge-run">{head}{table}{graph}</div>'
