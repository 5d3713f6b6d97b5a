"""The monitor's graph: the run's DAG drawn by `ironforge_nb.render`, colored by live status.

Laying out a graph runs ``dot`` (tens of milliseconds, more for big runs), so a redraw happens
at most once per `GRAPH_EVERY` seconds and only when a status changed; the final picture of
an ended run is always drawn. Big runs are collapsed exactly as ``ifn.render.draw`` collapses
them (by map, then by level). Without ``dot`` the graph is the text view, with the reason.
"""

from __future__ import annotations

import time
from html import escape
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ironforge_nb.dag.graph import DAG

__all__ = ["GRAPH_EVERY", "GraphPainter"]

GRAPH_EVERY = 1.0  # seconds between two redraws of the graph, at least


class GraphPainter:
    """Turns (DAG, statuses) into the graph's HTML, throttled."""

    def __init__(self) -> None:
        self.html = ""
        self.draws = 0
        self._version = -1
        self._at = float("-inf")

    def due(self, version: int, final: bool) -> bool:
        """Whether a redraw is needed now: something changed since the last one, and a second
        has passed (or the run has ended: its last picture is never held back)."""
        if version == self._version:
            return False
        return final or time.monotonic() - self._at >= GRAPH_EVERY

    def paint(self, dag: DAG[str], statuses: dict[str, str], version: int) -> str:
        """Draw now; returns the HTML (an inline SVG, or the text view in a ``<pre>``)."""
        from ironforge_nb.render import mimebundle

        bundle = mimebundle(dag, statuses, legend=True)
        svg = bundle.get("image/svg+xml")
        self.html = (svg[svg.find("<svg"):] if svg
                     else f"<pre>{escape(bundle['text/plain'])}</pre>")
        self._version = version
        self._at = time.monotonic()
        self.draws += 1
        return self.html
