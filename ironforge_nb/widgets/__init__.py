"""Live views of runs in Jupyter: `RunMonitor` (``run.monitor()``) and `Run.wait`'s bar.

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
``ironforge-monitor-error``        a failed task's last error line, full traceback on click
``ironforge-monitor-details``      the selected (or first failed) task's details and logs
``ironforge-monitor-cancel``       the "cancel run" button
``ironforge-monitor-retry``        the "retry failed" button
=================================  ===========================================================
"""

from __future__ import annotations

from ironforge_nb.widgets.monitor import RunMonitor

__all__ = ["RunMonitor"]
