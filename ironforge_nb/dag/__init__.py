"""The pure graph model: `DAG` (immutable, validated) and the fluent `Pipeline` builder.

Standard library only: importing this package never imports Redis, Graphviz, ipywidgets or pandas
(``tests/test_layering.py`` checks it in a fresh interpreter).
"""

from __future__ import annotations

from ironforge_nb.dag.builder import Pipeline
from ironforge_nb.dag.graph import DAG
from ironforge_nb.dag.task import TaskSpec

__all__ = ["DAG", "Pipeline", "TaskSpec"]
