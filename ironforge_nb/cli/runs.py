"""``ironforge status`` and ``ironforge runs``: the namespace at a glance, and its runs."""

from __future__ import annotations

import argparse
import sys

from ironforge_nb.cli.common import HOME_VIEW, Subparsers, add_connection, config_of

__all__ = ["add_runs", "add_status", "cmd_runs", "cmd_status"]


def add_status(subparsers: Subparsers) -> None:
    """``ironforge status``: the namespace at a glance, once or live (``--watch``)."""
    p = subparsers.add_parser(
        "status", help="show the namespace's queues, live workers, recent runs, dead letters",
        description="Queues (jobs by status, completions per second over the last minute), "
        "live workers and what each runs (with its progress), recent runs (a bar of ended "
        "tasks each) and the newest dead letters: what ifn.dashboard() shows in a notebook.")
    add_connection(p, HOME_VIEW)
    p.add_argument("--watch", action="store_true", help="redraw every --interval s until Ctrl-C")
    p.add_argument("--interval", type=float, default=2.0, help="seconds between redraws (2)")
    p.add_argument("--count", type=int, default=None,
                   help="with --watch: stop after this many redraws (default: until Ctrl-C)")
    p.add_argument("--runs", type=int, default=10, help="recent runs shown (10)")
    p.add_argument("--dead", type=int, default=10, help="dead letters shown (10)")
    p.set_defaults(handler=cmd_status)


def cmd_status(args: argparse.Namespace) -> int:
    """Print the overview; with --watch, redraw it in place (ANSI) until Ctrl-C or --count."""
    import time

    from ironforge_nb.orchestrator.overview import overview
    from ironforge_nb.widgets.board_text import status_text

    config = config_of(args)
    drawn = 0
    clear = "\x1b[H\x1b[2J" if args.watch and sys.stdout.isatty() else ""
    try:
        while True:
            text = status_text(overview(config, runs=args.runs, dead=args.dead))
            print(clear + text if drawn == 0 or clear else "\n" + text, flush=True)
            drawn += 1
            if not args.watch or (args.count is not None and drawn >= args.count):
                return 0
            time.sleep(args.interval)
    except KeyboardInterrupt:
        return 0


def add_runs(subparsers: Subparsers) -> None:
    """``ironforge runs``: the namespace's recent runs."""
    p = subparsers.add_parser("runs", help="list the namespace's recent runs, newest first",
                              description="One line per run: id, pipeline, status, a bar of "
                              "its ended tasks, failed tasks, creation time, duration.")
    add_connection(p, HOME_VIEW)
    p.add_argument("--limit", type=int, default=20, help="runs shown (20)")
    p.set_defaults(handler=cmd_runs)


def cmd_runs(args: argparse.Namespace) -> int:
    """Print the recent runs."""
    from ironforge_nb.orchestrator.frames import recent_runs
    from ironforge_nb.widgets.board_text import runs_table

    print(runs_table(recent_runs(config_of(args), args.limit)))
    return 0
