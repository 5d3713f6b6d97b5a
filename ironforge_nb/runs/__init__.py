"""Runs: a DAG submitted as jobs on the queue engine, tracked, and read back as results.

`submit` turns a pipeline into one atomic Redis script call; `Run` follows it (status, wait,
results, DataFrame views, cancel, retry); `execute_task` is what a worker calls for each job.
Pandas is imported only by the views that return DataFrames.
"""

from __future__ import annotations
