"""Pipeline runs: a DAG submitted as jobs on the queue engine, tracked, and read back as results.

`submit` turns a pipeline into one atomic Redis script call; `Run` follows it (status, wait,
results, DataFrame views, cancel, retry); `runs` lists recent runs; `execute_task` (in
``ironforge_nb.orchestrator.execute``) is what a worker calls for each job. Pandas is imported
only by the views that return DataFrames. (The package is not called ``runs``: importing it
would then rebind ``ifn.runs``, the function, to the package.)
"""

from __future__ import annotations

from ironforge_nb.orchestrator.frames import runs
from ironforge_nb.orchestrator.run import Run
from ironforge_nb.orchestrator.submit import submit

__all__ = ["Run", "runs", "submit"]
