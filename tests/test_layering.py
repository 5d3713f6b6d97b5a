"""Layering: the pure graph model and the package door stay light (docs/design.md, "Layers")."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

HEAVY = ("redis", "graphviz", "ipywidgets", "pandas")


def _modules_after(statement: str) -> set[str]:
    """Top-level module names present in a fresh interpreter after running ``statement``."""
    code = f"{statement}\nimport json, sys\nprint(json.dumps(sorted(sys.modules)))"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    return {name.partition(".")[0] for name in json.loads(out)}


@pytest.mark.parametrize(
    "statement",
    [
        "import ironforge_nb.dag",
        "import ironforge_nb",
        "from ironforge_nb.dag import DAG; DAG.from_edges([('a', 'b')]).topological_order()",
    ],
)
def test_import_pulls_no_heavy_dependency(statement: str) -> None:
    """Importing (and using) the DAG model loads none of redis, graphviz, ipywidgets or pandas."""
    loaded = _modules_after(statement)
    assert loaded.isdisjoint(HEAVY), sorted(loaded & set(HEAVY))
