"""The example "sales" pipeline: ``python -m ironforge_nb.demo`` (what ``make demo`` runs).

Builds the pipeline with chaining, a fan-out over regions and the decorator, prints its plan
(a pandas table) and its text view, and writes ``demo_pipeline.svg`` in the current directory.
The task functions are plain module-level functions, so workers can import them by path.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TypedDict

from ironforge_nb.dag.builder import Pipeline
from ironforge_nb.errors import GraphvizNotFoundError, LayoutTimeoutError

__all__ = ["REGIONS", "build_pipeline", "main"]

REGIONS = ("eu", "us", "apac")
SVG_NAME = "demo_pipeline.svg"



class Sale(TypedDict):
    """One raw sales row."""

    region: str
    amount: float


Rows = list[Sale]


def extract() -> Rows:
    """Load the raw sales rows (a fixed sample, so the demo needs no data file)."""
    return [
        {"region": "eu", "amount": 120.0}, {"region": "us", "amount": 80.0},
        {"region": "eu", "amount": -5.0}, {"region": "apac", "amount": 42.5},
        {"region": "us", "amount": 19.5},
    ]


def clean(rows: Rows) -> Rows:
    """Drop refunds (negative amounts)."""
    return [r for r in rows if r["amount"] > 0]


def by_region(region: str, clean: Rows) -> float:
    """Total sales of one region (one task per region, made by ``Pipeline.map``)."""
    return sum(r["amount"] for r in clean if r["region"] == region)


def report(by_region: dict[str, float], clean: Rows) -> str:
    """A one-line summary per region, plus the number of rows kept."""
    lines = [f"{region}: {total:.2f}" for region, total in by_region.items()]
    return "\n".join([*lines, f"rows: {len(clean)}"])


def build_pipeline() -> Pipeline:
    """extract -> clean -> by_region[eu|us|apac] -> report, plus a decorated audit task."""
    p = Pipeline("sales")
    (p.task("extract", extract, group="ingest", retries=2)
      .then("clean", clean, group="ingest")
      .map("by_region", by_region, over={r: r for r in REGIONS}, after="clean")
      .task("report", report, after=["by_region", "clean"], priority=10))

    @p.task(timeout=60, group="checks")
    def audit(clean: Rows, report: str, day: str = "today") -> str:
        """Cross-check the report against the cleaned rows (``day`` is a run param)."""
        return f"{day}: {len(clean)} rows, {report.count(':')} lines"

    return p


def main(argv: list[str] | None = None) -> int:
    """Print the plan and the text view, write the SVG; 1 (with the fix) if Graphviz fails."""
    import pandas as pd

    from ironforge_nb.render import write

    p = build_pipeline()
    with pd.option_context("display.width", 120, "display.max_columns", 20):
        print(p.plan().to_string(index=False))
    print()
    print(p.describe())
    out = Path.cwd() / SVG_NAME
    try:
        write(p, out, title="pipeline sales")
    except (GraphvizNotFoundError, LayoutTimeoutError) as exc:
        dot_file = write(p, out.with_suffix(".dot"), title="pipeline sales")
        print(f"\nno SVG: {exc}\nDOT source written to {dot_file}", file=sys.stderr)
        return 1
    print(f"\nwrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
