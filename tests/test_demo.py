"""Tests for ``python -m ironforge_nb.demo`` (what ``make demo`` runs)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from ironforge_nb.demo import build_pipeline


def test_demo_prints_the_plan_and_writes_the_svg(tmp_path: Path) -> None:
    """The demo exits 0, prints the plan and text view, and writes demo_pipeline.svg here."""
    proc = subprocess.run(
        [sys.executable, "-m", "ironforge_nb.demo"], cwd=tmp_path, capture_output=True,
        text=True, timeout=120, check=False,
    )
    assert proc.returncode == 0, proc.stderr
    svg = tmp_path / "demo_pipeline.svg"
    assert "<svg" in svg.read_text() and "by_region[apac]" in svg.read_text()
    assert f"wrote {svg}" in proc.stdout
    assert "pipeline sales: 7 tasks on 5 levels" in proc.stdout
    assert "priority" in proc.stdout.splitlines()[0]  # the plan's header row


def test_demo_no_run_stops_after_the_svg(tmp_path: Path) -> None:
    """``--no-run`` prints the plan and writes the SVG, and starts no server or worker."""
    proc = subprocess.run(
        [sys.executable, "-m", "ironforge_nb.demo", "--no-run"], cwd=tmp_path,
        capture_output=True, text=True, timeout=120, check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "demo_pipeline.svg").exists()
    assert "pipeline sales: 7 tasks on 5 levels" in proc.stdout
    assert "local workers" not in proc.stdout and "report:" not in proc.stdout


def test_demo_pipeline_gathers_regions_into_the_report() -> None:
    """The report task receives the per-region totals as a dict keyed by region."""
    dag = build_pipeline().build()
    spec = dag.data("report")
    results = {"by_region[eu]": 120.0, "by_region[us]": 99.5, "by_region[apac]": 42.5,
               "clean": []}
    _, kwargs = spec.arguments(results)  # type: ignore[union-attr]
    assert kwargs["by_region"] == {"eu": 120.0, "us": 99.5, "apac": 42.5}
