"""The ``ironforge`` command.

Each subcommand is two functions: ``add_<name>(subparsers)`` declares its arguments and binds
``cmd_<name>(args) -> exit code`` as its handler. To add one, write both and append the
``add_`` function to `SUBCOMMANDS`. Handlers import what they need, so ``ironforge --help``
stays fast.

    ironforge server [--port N] [--appendonly]   run a redis-server in the foreground
    ironforge schema                             print the JSON Schema of statuses and events
    ironforge worker --url URL --queues a,b      claim and run jobs until SIGTERM
    ironforge worker --home [DIR]                ... on the local home's server (joined)
    ironforge home [status|stop] [--dir DIR]     the local home's server: show it, stop it
    ironforge status [--watch]                   queues, live workers, recent runs, dead letters
    ironforge runs [--limit N]                   recent runs of the namespace
    ironforge dead-letters [--requeue ID|--all] [--purge]   the dead-letter queues
    ironforge webhooks [list]                    deliver webhooks until SIGTERM; or list them
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


def add_worker(subparsers: Subparsers) -> None:
    """``ironforge worker``: claim and run jobs (the same code as `ifn.connect`'s local workers)."""

    p = subparsers.add_parser(
        "worker",
        help="run a worker: claim jobs from queues and execute them",
        description="Serve the queues of a namespace until SIGTERM/Ctrl-C: running tasks get "
        "--grace seconds to finish, then go back to the queue. Pickled tasks are verified with "
        "the secret in $IRONFORGE_SECRET.",
    )
    _add_connection(p, "join the local home's server (started if needed; DIR default: "
                    "$IRONFORGE_HOME or ~/.cache/ironforge) with its secret, instead of --url")
    p.add_argument("--queues", "--queue", default="default",
                   help="comma-separated queues, served in this order (default: default)")
    p.add_argument("--concurrency", type=int, default=1, help="executor processes (default: 1)")
    p.add_argument("--name", default=None, help="worker name (default: <host>-<pid>)")
    p.add_argument("--json-only", action="store_true",
                   help="run only JSON tasks ('module:function'), never pickled code")
    p.add_argument("--grace", type=float, default=10.0,
                   help="seconds running tasks may finish after SIGTERM (default: 10)")
    p.add_argument("--lease", type=float, default=30.0, help="lease length, s (default: 30)")
    p.add_argument("--timeout", type=float, default=None,
                   help="default per-task time limit, s (a task's own timeout wins)")
    p.add_argument("--prefetch", type=int, default=None,
                   help="most extra jobs an executor of short tasks holds, about 20 ms of work "
                   "(default: 32; they lose an attempt if this worker crashes, like running "
                   "ones; 0 turns it off)")
    p.add_argument("--executor", default=None, metavar="MODULE:FUNCTION",
                   help="custom executor (config, lease) -> bytes | None, instead of running "
                   "pipeline tasks")
    p.add_argument("--no-webhooks", action="store_true",
                   help="do not deliver webhooks from this worker (run `ironforge webhooks` "
                   "somewhere instead)")
    p.add_argument("--log-level", default="INFO",
                   help="the worker's own logging level, on stderr (default: INFO)")
    p.add_argument("--task-log-bytes", type=int, default=None,
                   help="tail of each task attempt's output kept in Redis, bytes; 0 captures "
                   "nothing (default: 65536)")
    p.add_argument("--task-log-level", default=None,
                   help="lowest level of the tasks' log records captured (default: INFO)")
    p.add_argument("--parent-pid", type=int, default=None, help=argparse.SUPPRESS)
    p.set_defaults(handler=cmd_worker)


def cmd_worker(args: argparse.Namespace) -> int:
    """Run a worker in the foreground until it is stopped. Big results go to
    ``$IRONFORGE_RESULT_STORE`` (with ``--home``, by default the home's results directory)."""
    import logging
    import os

    from ironforge_nb.queue import RedisConfig
    from ironforge_nb.worker import Worker
    from ironforge_nb.worker.executor import load_executor

    logging.basicConfig(level=args.log_level.upper(), stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(message)s")
    executor = secret = None
    store = os.environ.get("IRONFORGE_RESULT_STORE") or None
    if args.executor:
        executor = load_executor(args.executor)
    else:
        from ironforge_nb.orchestrator.codec import secret_from_env

        secret = secret_from_env()
    url, home = _connection(args)
    if home is not None:
        store = store or str(home.results_dir)
        if secret is None and executor is None:
            secret = home.secret()
    worker = Worker(
        RedisConfig(url=url, namespace=args.namespace, result_store=store, **_task_logs(args)),
        [q.strip() for q in args.queues.split(",") if q.strip()],
        concurrency=args.concurrency, name=args.name, executor=executor, secret=secret,
        json_only=args.json_only, lease=args.lease, timeout=args.timeout, grace=args.grace,
        parent_pid=args.parent_pid, webhooks=not args.no_webhooks,
        **({} if args.prefetch is None else {"prefetch": args.prefetch}),
    )
    worker.run()
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


def _task_logs(args: argparse.Namespace) -> dict[str, Any]:
    """The capture settings given on the command line (the others keep RedisConfig's)."""
    given = {"task_log_bytes": args.task_log_bytes,
             "task_log_level": args.task_log_level and args.task_log_level.upper()}
    return {name: value for name, value in given.items() if value is not None}


def _add_connection(p: argparse.ArgumentParser, home_help: str) -> None:
    """The options that say which Redis and namespace: --url, --namespace, --home."""
    import os

    p.add_argument("--url", default=os.environ.get("IRONFORGE_REDIS_URL",
                                                   "redis://127.0.0.1:6379/0"),
                   help="Redis URL (default: $IRONFORGE_REDIS_URL or redis://127.0.0.1:6379/0)")
    p.add_argument("--namespace", default=os.environ.get("IRONFORGE_NAMESPACE", "default"),
                   help="namespace (default: $IRONFORGE_NAMESPACE or 'default')")
    p.add_argument("--home", nargs="?", const="", default=None, metavar="DIR", help=home_help)


def _connection(args: argparse.Namespace) -> tuple[str, Any]:
    """The Redis URL the options name, and the local home when --home was given."""
    if args.home is None:
        return args.url, None
    from ironforge_nb.local.home import Home

    home = Home(args.home or None)
    return home.url(), home


def _config(args: argparse.Namespace) -> Any:
    from ironforge_nb.queue import RedisConfig

    return RedisConfig(url=_connection(args)[0], namespace=args.namespace)


_HOME_VIEW = ("read the local home's server (DIR default: $IRONFORGE_HOME or "
              "~/.cache/ironforge) instead of --url")


def add_status(subparsers: Subparsers) -> None:
    """``ironforge status``: the namespace at a glance, once or live (``--watch``)."""
    p = subparsers.add_parser(
        "status", help="show the namespace's queues, live workers, recent runs, dead letters",
        description="Queues (jobs by status, completions per second over the last minute), "
        "live workers and what each runs (with its progress), recent runs (a bar of ended "
        "tasks each) and the newest dead letters: what ifn.dashboard() shows in a notebook.")
    _add_connection(p, _HOME_VIEW)
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

    config = _config(args)
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
    _add_connection(p, _HOME_VIEW)
    p.add_argument("--limit", type=int, default=20, help="runs shown (20)")
    p.set_defaults(handler=cmd_runs)


def cmd_runs(args: argparse.Namespace) -> int:
    """Print the recent runs."""
    from ironforge_nb.orchestrator.frames import recent_runs
    from ironforge_nb.widgets.board_text import runs_table

    print(runs_table(recent_runs(_config(args), args.limit)))
    return 0


def add_dead_letters(subparsers: Subparsers) -> None:
    """``ironforge dead-letters``: list, requeue or purge the dead-letter queues."""
    p = subparsers.add_parser(
        "dead-letters", help="list the dead-letter queues; requeue or purge them",
        description="Without options, list the newest dead letters of every queue. A "
        "pipeline's task cannot be requeued alone: requeuing one retries its run's failed "
        "tasks (Run.retry_failed).")
    _add_connection(p, _HOME_VIEW)
    action = p.add_mutually_exclusive_group()
    action.add_argument("--requeue", metavar="JOB_ID", help="queue this dead job again")
    action.add_argument("--all", action="store_true", help="requeue every dead letter")
    action.add_argument("--purge", action="store_true",
                        help="delete the dead letters (of --queue, else of every queue)")
    p.add_argument("--queue", default=None, help="with --purge: only this queue")
    p.add_argument("--limit", type=int, default=50, help="dead letters listed (50)")
    p.set_defaults(handler=cmd_dead_letters)


def cmd_dead_letters(args: argparse.Namespace) -> int:
    """List, requeue (one or all) or purge; prints what was done."""
    from ironforge_nb.errors import JobNotFoundError
    from ironforge_nb.orchestrator import overview as ov

    config = _config(args)
    if args.requeue:
        queue = config.client().hget(config.keys.job(args.requeue), "queue")
        if queue is None:
            raise JobNotFoundError(args.requeue)
        print(ov.requeue(config, queue.decode(), args.requeue))
    elif args.all:
        print("\n".join(ov.requeue_all(config)) or "no dead letters")
    elif args.purge:
        print(f"purged {ov.purge(config, args.queue):,} dead letters")
    else:
        from ironforge_nb.widgets.board_text import dead_table

        print(dead_table(ov.overview(config, runs=1, dead=args.limit)))
    return 0


def add_webhooks(subparsers: Subparsers) -> None:
    """``ironforge webhooks``: a webhook dispatcher on its own; ``webhooks list``: endpoints
    and recent deliveries."""
    p = subparsers.add_parser(
        "webhooks",
        help="deliver webhooks (every worker does too), or list endpoints and deliveries",
        description="Without an action, deliver the namespace's webhooks until SIGTERM/Ctrl-C "
        "(every `ironforge worker` also does, unless --no-webhooks). `list` prints the "
        "endpoints and the recent deliveries.",
    )
    p.add_argument("action", nargs="?", choices=["run", "list"], default="run",
                   help="run (default) or list")
    _add_connection(p, _HOME_VIEW)
    p.add_argument("--concurrency", type=int, default=4,
                   help="deliveries sent at once (default: 4)")
    p.add_argument("--timeout", type=float, default=15.0,
                   help="seconds one attempt may take in all: connect, TLS, request and "
                   "answer (default: 15)")
    p.add_argument("--lease", type=float, default=None,
                   help="seconds a claimed delivery stays this dispatcher's (default: 120, and "
                   "at least 3 x --timeout)")
    p.add_argument("--limit", type=int, default=20,
                   help="list: deliveries shown (default: 20, newest first)")
    p.add_argument("--log-level", default="INFO", help="logging level (default: INFO)")
    p.set_defaults(handler=cmd_webhooks)


def cmd_webhooks(args: argparse.Namespace) -> int:
    """Run a dispatcher in the foreground, or print the endpoints and deliveries."""
    from ironforge_nb.webhooks.command import run_command

    return run_command(_config(args), args.action, concurrency=args.concurrency,
                       timeout=args.timeout, lease=args.lease, limit=args.limit,
                       log_level=args.log_level)


SUBCOMMANDS: list[Callable[[Subparsers], None]] = [add_server, add_schema, add_worker,
                                                   add_home, add_status, add_runs,
                                                   add_dead_letters, add_webhooks]


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
