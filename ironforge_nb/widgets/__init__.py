"""Live views in Jupyter: `RunMonitor` (``run.monitor()``), `Run.wait`'s bar, and the
namespace's `Dashboard` (``ifn.dashboard()``: queues, workers, runs, dead letters).

A leaf of the package: nothing imports it except `Run.monitor` and `Run.wait`, lazily, so
``import ironforge_nb`` never loads ipywidgets. The data loop (`tracker`: plain data read from
the run's event stream) is separate from the drawing (`view`: ipywidgets), as in dask's
progress bars; widget tests drive `RunMonitor.refresh` and assert on widget values.

Stable CSS classes on the monitor's widgets (for browser tests and custom styling):

=================================  ===========================================================
``ironforge-monitor``              the root box
``ironforge-monitor-status``       the run's status (its text is the status, e.g. succeeded)
``ironforge-monitor-counts``       tasks by status: "5 completed, 2 active"
``ironforge-monitor-overall``      the overall progress bar (ended tasks / all tasks)
``ironforge-monitor-notice``       "connection lost, retrying", a button's outcome
``ironforge-monitor-graph``        the pipeline graph (an inline SVG) colored by status
``ironforge-monitor-group``        one aggregated row per map (or levels) of a big run
``ironforge-monitor-task``         one row per task (big runs: failed, active, retrying ones)
``ironforge-chip``                 a row's status, in the row's colors
``ironforge-monitor-bar``          a row's bar (HTML), its value in ``data-value``
``ironforge-monitor-bar-fill``     the bar's filled part (its width is the value)
``ironforge-monitor-error``        a failed task's last error line, full traceback on click
``ironforge-monitor-pick``         the dropdown choosing the task whose details are shown
``ironforge-monitor-details``      the selected (or first failed) task's details and logs
``ironforge-monitor-cancel``       the "cancel run" button
``ironforge-monitor-retry``        the "retry failed" button
``ironforge-dashboard``            the dashboard's root box
``ironforge-dashboard-queues``     its queues table (counts by status, done/s)
``ironforge-dashboard-workers``    its live workers and what they run
``ironforge-dashboard-run``        one recent run (status, a bar of ended tasks)
``ironforge-dashboard-dead``       one dead letter, with its ``requeue`` button
``ironforge-dashboard-notice``     "connection lost, retrying", a button's outcome
=================================  ===========================================================
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__all__ = ["Dashboard", "RunMonitor"]

if TYPE_CHECKING:  # pragma: no cover
    from ironforge_nb.widgets.dashboard import Dashboard
    from ironforge_nb.widgets.monitor import RunMonitor

_EXPORTS = {"RunMonitor": "ironforge_nb.widgets.monitor",
            "Dashboard": "ironforge_nb.widgets.dashboard"}


def __getattr__(name: str) -> Any:
    """Import a view on first use: the text modules (``ironforge status``) load no ipywidgets."""
    import importlib

    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'ironforge_nb.widgets' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
