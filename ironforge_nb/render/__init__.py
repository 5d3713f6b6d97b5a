"""Drawing pipelines: DAG (+ statuses) -> DOT -> SVG/PNG, with collapsing for large graphs.

`to_digraph` is pure (it builds a `graphviz.Digraph`, testable without the ``dot`` binary);
`to_svg`, `to_png` and `write` run ``dot`` with a time limit; `mimebundle` and `draw` (a
displayable drawing with options: statuses, focus, collapse...) serve Jupyter. The package is
``ifn.render``: ``ifn.render.draw(p, focus="clean")``, ``ifn.render.write(p, "p.svg")``.
`STATUS_COLORS` is the one palette every view uses; `legend` draws it. The ``graphviz`` package
is imported only when a Digraph is built.
"""

from __future__ import annotations

from ironforge_nb.render.dot import legend, to_digraph
from ironforge_nb.render.output import Rendering, draw, mimebundle, to_png, to_svg, write
from ironforge_nb.render.palette import STATUS_COLORS, legend_items, status_style
from ironforge_nb.render.text import text_view

__all__ = [
    "STATUS_COLORS",
    "Rendering",
    "draw",
    "legend",
    "legend_items",
    "mimebundle",
    "status_style",
    "text_view",
    "to_digraph",
    "to_png",
    "to_svg",
    "write",
]
