"""The monitor's graph: the run's DAG drawn by `ironforge_nb.render`, colored by live status.

The DAG is collapsed once, as ``ifn.render.draw`` collapses it (every task up to 300, then by
map, then by level), except that a map of more than `MAP_BOX` members is always one box with
its counts by status (drawn left to right, its members would make a column taller than the
screen; the rows under the graph show them one by one). A redraw only recounts the boxes'
statuses (O(tasks), no graph work) and lays the boxes out with ``dot``. Layout takes tens of
milliseconds, so it runs on a thread of the painter's own (``dot`` is a child process: the
thread mostly waits, holding no lock), at most once per `GRAPH_EVERY` seconds and only when a
status changed; the picture of an ended run is drawn at once. Without ``dot`` the graph says
why, in text.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from html import escape
from typing import TYPE_CHECKING

from ironforge_nb.errors import RenderError
from ironforge_nb.render.collapse import build_view
from ironforge_nb.render.palette import NO_STATUS, STATUS_COLORS

if TYPE_CHECKING:
    from ironforge_nb.dag.graph import DAG

__all__ = ["GRAPH_EVERY", "MAP_BOX", "GraphPainter"]

GRAPH_EVERY = 1.0  # seconds between two redraws of the graph, at least
MAP_BOX = 8  # maps of more members are drawn as one box, with their counts by status
_LAYOUT_TIMEOUT = 10.0
_TASK_BOXES = 300  # build_view's own limit of one box per task


class GraphPainter:
    """Turns live statuses into the graph's HTML (an inline SVG), throttled, off the caller's
    thread except for the final picture."""

    def __init__(self, dag: DAG[str], statuses: dict[str, str]) -> None:
        sizes = Counter(g for g in (getattr(dag.data(n), "group", None) for n in dag.nodes)
                        if isinstance(g, str))
        # a map of more than MAP_BOX members is one box with its counts (left to right, its
        # members would be a column taller than the screen; its rows are below the graph);
        # bigger runs collapse by themselves ("auto")
        small = len(dag) <= _TASK_BOXES
        collapse = "group" if small and any(n > MAP_BOX for n in sizes.values()) else "auto"
        self.view = build_view(dag, statuses, collapse=collapse)
        self._box_of = dict(zip(dag.nodes, self.view.assign, strict=True))
        self.html = ""
        self.draws = 0  # pictures finished so far
        self._version = -1  # the tracker version of the last picture started
        self._at = float("-inf")
        self._pending: Future[str] | None = None
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ironforge-graph")

    def update(self, statuses: Callable[[], dict[str, str]], version: int,
               final: bool) -> None:
        """Start a redraw if one is due: something changed since the last one, and a second
        has passed; ``final`` (the run has ended) draws now, on this thread."""
        self.collect()
        if version == self._version:
            return
        if final:
            if self._pending is not None:
                self._pending.result()
                self.collect()
            self._version = version
            self._finish(self._paint(statuses()))
            return
        if self._pending is None and time.monotonic() - self._at >= GRAPH_EVERY:
            self._version, self._at = version, time.monotonic()
            self._pending = self._pool.submit(self._paint, statuses())

    def collect(self) -> None:
        """Take a finished background picture, if there is one."""
        pending = self._pending
        if pending is not None and pending.done():
            self._pending = None
            self._finish(pending.result())

    def close(self) -> None:
        """Stop the painter's thread (a layout under way is dropped)."""
        self._pool.shutdown(wait=False, cancel_futures=True)

    def _finish(self, html: str) -> None:
        self.html = html
        self.draws += 1

    def _paint(self, statuses: dict[str, str]) -> str:
        from ironforge_nb.render.dot import view_digraph
        from ironforge_nb.render.output import pipe

        counts = [Counter[str]() for _ in self.view.boxes]
        for task, status in statuses.items():
            # a status this version does not know (a newer worker's) is drawn as none
            counts[self._box_of[task]][status if status in STATUS_COLORS else NO_STATUS] += 1
        for box, box_counts in zip(self.view.boxes, counts, strict=True):
            box.counts = dict(box_counts)
        digraph = view_digraph(self.view, with_statuses=True, legend=True)
        try:
            svg = pipe(digraph.source, "svg", _LAYOUT_TIMEOUT, digraph.engine).decode()
        except RenderError as exc:  # no dot, too slow, dot failed: the view goes on
            return f"<pre>(no drawing: {escape(str(exc))})</pre>"
        return svg[svg.find("<svg"):]
