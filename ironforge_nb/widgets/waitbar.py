"""`Run.wait`'s progress bar, drawn by the waiting call itself.

In a Jupyter kernel: a widget (a bar and a line of counts) whose text form is fixed (``waiting
for run '<id>'``), so checked notebook outputs never change; in a terminal: one text line on
stderr, redrawn in place; elsewhere (stderr is not a terminal: logs, CI, captured output):
nothing.
"""

from __future__ import annotations

import functools
import sys
from html import escape
from typing import IO, Any

from ironforge_nb.render.palette import STATUS_COLORS
from ironforge_nb.widgets.text import bar_text, in_kernel, run_line

__all__ = ["TextBar", "WidgetBar", "wait_bar"]

_END_COLORS = {"succeeded": STATUS_COLORS["completed"], "failed": STATUS_COLORS["failed"],
               "cancelled": STATUS_COLORS["cancelled"]}


def wait_bar(run_id: str, info: dict[str, Any]) -> WidgetBar | TextBar | None:
    """The bar that suits where the code runs (see the module docstring), already drawn."""
    if in_kernel():
        return WidgetBar(run_id, info)
    stream = sys.stderr
    if stream is not None and stream.isatty():
        return TextBar(run_id, info, stream)
    return None


def _fraction(info: dict[str, Any]) -> float:
    total = int(info.get("total", 0))
    return int(info.get("done", 0)) / total if total else 1.0


class WidgetBar:
    """A FloatProgress and a line of counts, displayed once and updated in place."""

    def __init__(self, run_id: str, info: dict[str, Any]) -> None:
        import ipywidgets as w
        from IPython.display import display

        self.bar = w.FloatProgress(min=0.0, max=1.0, layout=w.Layout(width="40%"))
        self.label = w.HTML()
        self.box = _fixed_repr_box()([self.bar, self.label])
        self.box.fixed_repr = f"waiting for run {run_id!r}"
        self.box.add_class("ironforge-wait")
        self.update(info)
        display(self.box)  # type: ignore[no-untyped-call]

    def update(self, info: dict[str, Any]) -> None:
        self.bar.value = _fraction(info)
        status = str(info.get("status"))
        self.bar.style.bar_color = _END_COLORS.get(status) or (
            STATUS_COLORS["failed"] if info.get("failed") else STATUS_COLORS["completed"])
        self.label.value = f"<b>{escape(status)}</b> · {escape(run_line(info))}"

    def close(self, info: dict[str, Any]) -> None:
        self.update(info)


class TextBar:
    """``run <id>: [#####---------------] 5/20 tasks · ...`` redrawn in place on a terminal."""

    def __init__(self, run_id: str, info: dict[str, Any], stream: IO[str]) -> None:
        self.run_id = run_id
        self.stream = stream
        self.update(info)

    def update(self, info: dict[str, Any]) -> None:
        line = (f"run {self.run_id}: {bar_text(_fraction(info))} {info.get('status')} · "
                f"{run_line(info)}")
        self.stream.write("\r" + line + "\x1b[K")
        self.stream.flush()

    def close(self, info: dict[str, Any]) -> None:
        self.update(info)
        self.stream.write("\n")
        self.stream.flush()


@functools.cache
def _fixed_repr_box() -> Any:
    import ipywidgets as w

    class FixedRepr(w.HBox):  # type: ignore[misc]
        """An HBox whose text form (``text/plain`` in notebooks) is fixed, not its state."""

        fixed_repr = ""

        def __repr__(self) -> str:
            return self.fixed_repr

    return FixedRepr
