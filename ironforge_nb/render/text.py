"""Plain-text views of a graph: what a console (or Jupyter without ``dot``) shows.

Standard library only, so a pipeline prints itself even where Graphviz is not installed.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ironforge_nb.dag.graph import DAG
from ironforge_nb.render.palette import NO_STATUS, STATUS_ORDER, normalize_status

__all__ = ["text_view"]


def text_view(
    dag: DAG[Any],
    statuses: Mapping[Any, object] | None = None,
    *,
    title: str | None = None,
    width: int = 8,
    max_levels: int = 40,
) -> str:
    """The tasks level by level; with statuses, each task's status and a count per status.

    At most ``width`` tasks are named per level and ``max_levels`` levels listed, so a
    100k-task graph still prints in a few lines.
    """
    generations = dag.generations()
    n = len(dag)
    head = title or "DAG"
    lines = [f"{head}: {n:,} task{'s' * (n != 1)} on {len(generations):,} "
             f"level{'s' * (len(generations) != 1)}"]
    if statuses:
        lines[0] += f" ({_status_counts(dag, statuses)})"
    for level, group in enumerate(generations[:max_levels]):
        names = [_name(node, statuses) for node in group[:width]]
        more = f", ... and {len(group) - width:,} more" if len(group) > width else ""
        lines.append(f"  level {level}: {', '.join(names)}{more}")
    if len(generations) > max_levels:
        lines.append(f"  ... and {len(generations) - max_levels:,} more levels")
    return "\n".join(lines)


def _name(node: Any, statuses: Mapping[Any, object] | None) -> str:
    if not statuses:
        return str(node)
    return f"{node} ({normalize_status(statuses.get(node))})"


def _status_counts(dag: DAG[Any], statuses: Mapping[Any, object]) -> str:
    counts: dict[str, int] = {}
    for node in dag.nodes:
        key = normalize_status(statuses.get(node)) if node in statuses else NO_STATUS
        counts[key] = counts.get(key, 0) + 1
    return ", ".join(f"{counts[s]:,} {'without status' if s == NO_STATUS else s}"
                     for s in STATUS_ORDER if s in counts)
