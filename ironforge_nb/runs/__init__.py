"""Runs: a DAG submitted as jobs on the queue engine, tracked, and read back as results.

`submit` turns a pipeline into one atomic Redis script call; `Run` follows it (status, wait,
results, DataFrame views, cancel, retry); `runs` lists recent runs; `execute_task` (in
``ironforge_nb.runs.execute``) is what a worker calls for each job. Pandas is imported only by
the views that return DataFrames.
"""

from __future__ import annotations

import sys
import types
from typing import TYPE_CHECKING, Any

from ironforge_nb.runs.frames import runs
from ironforge_nb.runs.run import Run
from ironforge_nb.runs.submit import submit

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["Run", "runs", "submit"]


class _CallableModule(types.ModuleType):
    """Importing this package binds ``ironforge_nb.runs`` to the module, shadowing the
    ``ifn.runs()`` function of the public door; calling the module calls that function."""

    def __call__(self, config: Any = None, limit: int = 50) -> pd.DataFrame:
        return runs(config, limit)


sys.modules[__name__].__class__ = _CallableModule
