"""``ironforge server``, ``ironforge home`` and ``ironforge schema``: the local redis-server
and the schema of statuses and events."""

from __future__ import annotations

import argparse
import sys

from ironforge_nb.cli.common import Subparsers

__all__ = ["add_home", "add_schema", "add_server", "cmd_home", "cmd_schema", "cmd_server"]


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


def add_home(subparsers: Subparsers) -> None:
    """``ironforge home``: the local home's redis-server (which outlives notebook kernels)."""
    p = subparsers.add_parser(
        "home",
        help="show or stop the local home's redis-server",
        description="The server that ifn.connect() keeps in the home directory ($IRONFORGE_HOME "
        "or ~/.cache/ironforge) outlives kernels; 'status' prints it, 'stop' shuts it down "
        "(its data stays in the home and is loaded by the next connect()).",
    )
    p.add_argument("action", nargs="?", choices=("status", "stop"), default="status")
    p.add_argument("--dir", default=None, help="the home (default: $IRONFORGE_HOME or "
                   "~/.cache/ironforge)")
    p.set_defaults(handler=cmd_home)


def cmd_home(args: argparse.Namespace) -> int:
    """Print the home's server (exit 1 if none runs), or stop it."""
    from ironforge_nb.local.home import Home

    home = Home(args.dir)
    if args.action == "stop":
        print(f"stopped the server of {home.path}" if home.stop() else
              f"no server was running for {home.path}")
        return 0
    state = home.running()
    if state is None:
        print(f"no server is running for {home.path}")
        return 1
    print(f"{home.path}: {state['url']} (pid {state['pid']}, redis {state.get('version')})")
    return 0
