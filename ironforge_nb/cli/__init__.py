"""The ``ironforge`` command.

Each subcommand is two functions: ``add_<name>(subparsers)`` declares its arguments and binds
``cmd_<name>(args) -> exit code`` as its handler. They live in a module per group:
`cli.server` (server, schema, home), `cli.queue` (worker, dead-letters), `cli.runs` (status,
runs), `cli.webhooks` (webhooks), `cli.results` (sweep-results); `cli.common` has the
connection options they share. To add one, write both and append the ``add_`` function to
`SUBCOMMANDS`. Handlers import what they need, so ``ironforge --help`` stays fast.

    ironforge server [--port N] [--appendonly]   run a redis-server in the foreground
    ironforge schema                             print the JSON Schema of statuses and events
    ironforge worker --url URL --queues a,b      claim and run jobs until SIGTERM
    ironforge worker --home [DIR]                ... on the local home's server (joined)
    ironforge home [status|stop] [--dir DIR]     the local home's server: show it, stop it
    ironforge status [--watch]                   queues, live workers, recent runs, dead letters
    ironforge runs [--limit N]                   recent runs of the namespace
    ironforge dead-letters [--requeue ID|--all] [--purge]   the dead-letter queues
    ironforge webhooks [list]                    deliver webhooks until SIGTERM; or list them
    ironforge sweep-results [--dry-run]          delete result files nothing references
"""


from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from ironforge_nb.cli.common import Subparsers
from ironforge_nb.cli.queue import add_dead_letters, add_worker
from ironforge_nb.cli.results import add_sweep_results
from ironforge_nb.cli.runs import add_runs, add_status
from ironforge_nb.cli.server import add_home, add_schema, add_server
from ironforge_nb.cli.webhooks import add_webhooks
from ironforge_nb.errors import IronForgeError

__all__ = ["SUBCOMMANDS", "build_parser", "main"]

SUBCOMMANDS: list[Callable[[Subparsers], None]] = [add_server, add_schema, add_worker,
                                                   add_home, add_status, add_runs,
                                                   add_dead_letters, add_webhooks,
                                                   add_sweep_results]


def build_parser() -> argparse.ArgumentParser:
    """The ``ironforge`` argument parser with every subcommand of `SUBCOMMANDS`."""
    from ironforge_nb import __version__

    parser = argparse.ArgumentParser(
        prog="ironforge",
        description="IronForge NB: DAG workflows on a Redis queue engine.",
    )
    parser.add_argument("--version", action="version", version=f"ironforge-nb {__version__}")
    subparsers = parser.add_subparsers(title="commands", metavar="COMMAND", required=True)
    for add in SUBCOMMANDS:
        add(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``ironforge`` console script; returns the exit code."""
    args = build_parser().parse_args(argv)
    try:
        code: int = args.handler(args)
    except IronForgeError as exc:
        print(f"ironforge: error: {exc}", file=sys.stderr)
        return 1
    except BrokenPipeError:
        # the reader went away (`ironforge schema | head`): not an error worth a traceback
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    return code
