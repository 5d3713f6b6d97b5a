"""The example "sales" pipeline: ``python -m ironforge_nb.demo`` (what ``make demo`` runs).

Builds the pipeline with chaining, a fan-out over regions and the decorator, prints its plan
(a pandas table) and its text view, and writes ``demo_pipeline.svg`` in the current directory.
Then it runs the pipeline end to end: ``ifn.connect(home=None)`` starts a throwaway redis-server
(nothing is left running, nothing is kept, so every demo run is alike) and two local worker
processes, the run's events feed a live progress line, and the run's DataFrame and
the final report are printed. The task functions are plain module-level functions, so workers
can import them by path.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, TypedDict

from ironforge_nb.dag.builder import Pipeline
from ironforge_nb.errors import GraphvizNotFoundError, LayoutTimeoutError
from ironforge_nb.worker.context import track

if TYPE_CHECKING:
    from ironforge_nb.orchestrator import Run

__all__ = ["REGIONS", "build_pipeline", "main", "run_pipeline"]

REGIONS = ("eu", "us", "apac")
SVG_NAME = "demo_pipeline.svg"


class Sale(TypedDict):
    """One raw sales row."""

    region: str
    amount: float


Rows = list[Sale]


def extract() -> Rows:
    """Load the raw sales rows (a fixed sample, so the demo needs no data file).

    Reads them "slowly" through ``ifn.track``, so a monitor has some progress to show.
    """
    sample: Rows = [
        {"region": "eu", "amount": 120.0}, {"region": "us", "amount": 80.0},
        {"region": "eu", "amount": -5.0}, {"region": "apac", "amount": 42.5},
        {"region": "us", "amount": 19.5},
    ]
    rows: Rows = []
    for row in track(sample, message="loading rows"):
        time.sleep(0.05)
        rows.append(row)
    return rows


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
    """Print the plan and the text view, write the SVG, then run the pipeline (`run_pipeline`)
    unless ``--no-run`` is in ``argv``.

    Returns 0 when the run succeeded; 1 (with the fix) if Graphviz fails or the run does not.
    """
    import argparse

    import pandas as pd

    from ironforge_nb.render import write

    parser = argparse.ArgumentParser(prog="python -m ironforge_nb.demo",
                                     description="The example sales pipeline, end to end.")
    parser.add_argument("--no-run", action="store_true",
                        help="print the plan and write the SVG only (no Redis, no workers)")
    args = parser.parse_args(argv)

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
    return 0 if args.no_run else run_pipeline(p)


def run_pipeline(p: Pipeline) -> int:
    """Run ``p`` on an embedded Redis with two local workers, showing live progress; 0 if the
    run succeeded."""
    import pandas as pd

    from ironforge_nb.local import connect

    print("\nstarting an embedded redis-server and 2 local workers...", flush=True)
    with connect(workers=2, home=None) as conn:  # a throwaway server: nothing left running
        print(conn)
        run = p.submit(params={"day": "2026-11-28"})
        _follow(run)
        with pd.option_context("display.width", 160, "display.max_columns", 20):
            frame = run.to_dataframe()
            print(frame[["task", "status", "attempts", "duration", "worker", "error"]]
                  .to_string(index=False))
        print(f"\n{run!r}\n\nreport:\n{run.result('report')}\naudit: {run.result('audit')}")
        return 0 if run.status.value == "succeeded" else 1


def _follow(run: Run, width: int = 30) -> None:
    """Print a progress line, redrawn in place, until the run ends.

    Task states come from the run's events; the running tasks' own progress (``ifn.track``
    in `extract`) from their jobs' meta hashes.
    """
    from ironforge_nb.queue import Queue

    total = int(run.info().get("total", 0)) or 1
    state: dict[str, tuple[str, str, str]] = {}  # task -> (status, job id, queue)
    queues: dict[str, Queue] = {}
    cursor, ended, shown = "0", False, ""
    while not ended:
        for event in run.events(since=cursor):
            cursor = event.id
            if event.task and event.status and event.job and event.queue:
                state[event.task] = (event.status.value, event.job, event.queue)
            ended = ended or event.type.value == "run_finished"
        done = sum(1 for s, _, _ in state.values() if s in _ENDED)
        running = []
        for task, (_, job, queue) in state.items():
            if state[task][0] not in _ENDED:
                info = queues.setdefault(queue, Queue(queue, run.config)).info(job)
                if info.status.value == "active":
                    running.append(f"{task} {info.progress:.0%} {info.message or ''}".strip())
        bar = "#" * (width * done // total)
        line = f"[{bar:<{width}}] {done}/{total} done  running: {'; '.join(running)[:70]}"
        if line != shown:
            print(f"\r{line:<120}", end="", flush=True)
            shown = line
        time.sleep(0.05)
    print()


_ENDED = ("completed", "failed", "skipped", "cancelled")


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
