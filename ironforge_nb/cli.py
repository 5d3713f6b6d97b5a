"""The ``ironforge`` command.

Each subcommand is two functions: ``add_<name>(subparsers)`` declares its arguments and binds
``cmd_<name>(args) -> exit code`` as its handler. To add one, write both and append the
``add_`` function to `SUBCOMMANDS`. Handlers import what they need, so ``ironforge --help``
stays fast.

    ironforge server [--port N] [--appendonly]   run a redis-server in the foreground
    ironforge schema                             print the JSON Schema of statuses and events
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from typing import Any

from ironforge_nb.errors import IronForgeError

__all__ = ["SUBCOMMANDS", "build_parser", "main"]

Subparsers = Any  # argparse's private _SubParsersAction


def add_server(subparsers: Subparsers) -> None:
    """``ironforge server``: a redis-server in the foreground, for notebooks and workers."""
    p = subparsers.add_parser(
        "server",
        help="run an embedded redis-server in the foreground and print its URL",
        description="Start a redis-server on 127.0.0.1 (its own temp dir), print its URL "
        "on stdout, and stop it on Ctrl-C or SIGTERM.",
    )
    p.add_argument("--port", type=int, default=None, help="TCP port (default: a free one)")
    p.add_argument("--appendonly", action="store_true", help="turn AOF persistence on")
    p.add_argument("--unix-socket", action="store_true", help="listen on a unix socket instead")
    p.add_argument("--data-dir", default=None, help="keep config, log and AOF here")
    p.add_argument("--binary", default=None, help="redis-server executable to run")
    p.set_defaults(handler=cmd_server)


def cmd_server(args: argparse.Namespace) -> int:
    """Run the server until Ctrl-C / SIGTERM; exit 1 if it dies on its own."""
    import signal
    import threading

    from ironforge_nb.local import RedisServer

    stop = threading.Event()

    def on_signal(signum: int, frame: object) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    server = RedisServer(
        port=args.port,
        unix_socket=args.unix_socket,
        appendonly=args.appendonly,
        data_dir=args.data_dir,
        binary=args.binary,
    )
    try:
        server.start()
        print(server.url, flush=True)
        print(
            f"redis-server {server.version} (pid {server.pid}) ready; Ctrl-C to stop",
            file=sys.stderr,
            flush=True,
        )
        while not stop.wait(0.5):
            if not server.running:
                print(f"redis-server exited:\n{server.log_tail()}", file=sys.stderr)
                return 1
        return 0
    finally:
        server.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def add_schema(subparsers: Subparsers) -> None:
    """``ironforge schema``: the statuses and event shapes, for other front ends."""
    p = subparsers.add_parser(
        "schema",
        help="print the JSON Schema of job/run statuses and events",
        description="Print ironforge_nb.status.json_schema() as JSON on stdout.",
    )
    p.add_argument("--indent", type=int, default=2, help="JSON indentation (default: 2)")
    p.set_defaults(handler=cmd_schema)


def cmd_schema(args: argparse.Namespace) -> int:
    """Print the JSON Schema."""
    import json

    from ironforge_nb.status import json_schema

    print(json.dumps(json_schema(), indent=args.indent, sort_keys=False))
    return 0


SUBCOMMANDS: list[Callable[[Subparsers], None]] = [add_server, add_schema]


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


if __name__ == "__main__":
    sys.exit(main())
