"""Run Graphviz on a description: SVG/PNG bytes, files, and Jupyter display bundles.

``dot`` runs as a child process with a time limit: a layout that runs too long is killed and
raises `LayoutTimeoutError`; a missing binary raises `GraphvizNotFoundError` naming the install
commands. Both carry the DOT source, which stays usable (e.g. in an online viewer).
"""

from __future__ import annotations

import math
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass, field
from os import PathLike
from pathlib import Path
from typing import Any

from ironforge_nb.dag.graph import DAG
from ironforge_nb.errors import (
    GraphvizNotFoundError,
    InvalidOptionError,
    LayoutTimeoutError,
    RenderError,
)
from ironforge_nb.render.dot import as_dag, to_digraph
from ironforge_nb.render.text import text_view

__all__ = ["Rendering", "draw", "mimebundle", "pipe", "to_png", "to_svg", "write"]

DEFAULT_TIMEOUT = 10.0
FORMATS = ("svg", "png", "pdf", "dot", "gv")


def _source(graph: Any, opts: Mapping[str, Any]) -> tuple[str, str]:
    """DOT text and layout engine of a Digraph, or of a DAG/Pipeline drawn with ``opts``."""
    if hasattr(graph, "source") and hasattr(graph, "engine"):
        if opts:
            raise InvalidOptionError("options", sorted(opts), "no drawing options for a Digraph")
        return str(graph.source), str(graph.engine)
    digraph = to_digraph(graph, **opts)
    return str(digraph.source), str(digraph.engine)


def pipe(source: str, format: str = "svg", timeout: float = DEFAULT_TIMEOUT,
         engine: str = "dot") -> bytes:
    """Lay out DOT ``source`` with ``engine`` and return the ``format`` output bytes."""
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not (
        math.isfinite(timeout) and timeout > 0
    ):
        raise InvalidOptionError("timeout", timeout, "a number of seconds > 0")
    try:
        proc = subprocess.run(
            [engine, f"-T{format}"], input=source.encode(), capture_output=True,
            timeout=timeout, check=False,
        )
    except FileNotFoundError:
        raise GraphvizNotFoundError(source) from None
    except subprocess.TimeoutExpired:  # run() has killed and reaped the child already
        raise LayoutTimeoutError(timeout, source) from None
    if proc.returncode != 0:
        err = proc.stderr.decode(errors="replace").strip()
        raise RenderError(f"{engine} failed with exit code {proc.returncode}: {err}")
    return proc.stdout


def to_svg(graph: Any, timeout: float = DEFAULT_TIMEOUT, **opts: Any) -> str:
    """SVG text of a Digraph, or of a DAG/Pipeline drawn with ``to_digraph`` options."""
    source, engine = _source(graph, opts)
    return pipe(source, "svg", timeout, engine).decode()


def to_png(graph: Any, timeout: float = DEFAULT_TIMEOUT, **opts: Any) -> bytes:
    """PNG bytes of a Digraph, or of a DAG/Pipeline drawn with ``to_digraph`` options."""
    source, engine = _source(graph, opts)
    return pipe(source, "png", timeout, engine)


def write(
    graph: Any,
    path: str | PathLike[str],
    format: str | None = None,
    timeout: float = DEFAULT_TIMEOUT,
    **opts: Any,
) -> Path:
    """Write a drawing to ``path`` (format from the suffix unless given); return the path.

    ``dot``/``gv`` write the DOT source itself and need no Graphviz binary.
    """
    target = Path(path)
    fmt = (format or target.suffix.lstrip(".")).lower()
    if fmt not in FORMATS:
        raise InvalidOptionError("format", fmt, f"one of {', '.join(FORMATS)}")
    source, engine = _source(graph, opts)
    data = source.encode() if fmt in ("dot", "gv") else pipe(source, fmt, timeout, engine)
    target.write_bytes(data)
    return target


def mimebundle(
    dag: Any,
    statuses: Mapping[Any, object] | None = None,
    *,
    title: str | None = None,
    timeout: float = DEFAULT_TIMEOUT,
    **opts: Any,
) -> dict[str, str]:
    """Jupyter's display bundle: SVG plus a text listing; text only (with the reason) if
    ``dot`` is missing or too slow, so a notebook cell never fails just to show a graph."""
    graph = as_dag(dag)
    digraph = to_digraph(graph, statuses, title=title, **opts)
    text = _text(graph, statuses, title, opts)
    try:
        svg = pipe(digraph.source, "svg", timeout, digraph.engine).decode()
    except (GraphvizNotFoundError, LayoutTimeoutError) as exc:
        return {"text/plain": f"{text}\n\n(no drawing: {exc})"}
    return {"image/svg+xml": svg, "text/plain": text}


def _text(graph: DAG[Any], statuses: Mapping[Any, object] | None, title: str | None,
          opts: Mapping[str, Any]) -> str:
    """The text view of what is drawn (the focus neighbourhood when there is one)."""
    focus = opts.get("focus")
    shown = graph if focus is None else graph.neighbourhood(focus, opts.get("depth", 1))
    return text_view(shown, statuses, title=title)


@dataclass(frozen=True)
class Rendering:
    """A drawing to show in Jupyter (``_repr_mimebundle_``), save, or inspect as DOT."""

    dag: Any
    statuses: Mapping[Any, object] | None = None
    options: Mapping[str, Any] = field(default_factory=dict)
    timeout: float = DEFAULT_TIMEOUT

    @property
    def source(self) -> str:
        """The DOT text (available without Graphviz installed)."""
        return str(to_digraph(self.dag, self.statuses, **self.options).source)

    def svg(self) -> str:
        """The SVG text."""
        return to_svg(self.dag, self.timeout, statuses=self.statuses, **self.options)

    def save(self, path: str | PathLike[str], format: str | None = None) -> Path:
        """Write the drawing to ``path`` (see `write`)."""
        return write(self.dag, path, format, self.timeout, statuses=self.statuses, **self.options)

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, str]:
        return mimebundle(self.dag, self.statuses, timeout=self.timeout, **self.options)

    def __repr__(self) -> str:
        opts = dict(self.options)
        return _text(as_dag(self.dag), self.statuses, opts.pop("title", None), opts)


def draw(
    graph: Any,
    statuses: Mapping[Any, object] | None = None,
    *,
    timeout: float = DEFAULT_TIMEOUT,
    **opts: Any,
) -> Rendering:
    """A displayable drawing of a DAG or Pipeline: ``ifn.render.draw(p, focus="clean", depth=2)``.

    ``opts`` are `to_digraph`'s: collapse, focus, depth, max_nodes, rankdir, legend, title.
    """
    name = getattr(graph, "name", None)
    if not isinstance(graph, DAG) and isinstance(name, str):
        opts.setdefault("title", f"pipeline {name}")
    to_digraph(graph, statuses, **opts)  # check the options now, not at display time
    return Rendering(as_dag(graph), statuses, dict(opts), timeout)
