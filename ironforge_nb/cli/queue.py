"""``ironforge worker`` and ``ironforge dead-letters``: serving queues, and their dead letters."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from ironforge_nb.cli.common import HOME_VIEW, Subparsers, add_connection, config_of, connection

__all__ = ["add_dead_letters", "add_worker", "cmd_dead_letters", "cmd_worker"]


def add_worker(subparsers: Subparsers) -> None:
    """``ironforge worker``: claim and run jobs (the same code as `ifn.connect`'s local workers)."""

    p = subparsers.add_parser(
        "worker",
        help="run a worker: claim jobs from queues and execute them",
        description="Serve the queues of a namespace until SIGTERM/Ctrl-C: running tasks get "
        "--grace seconds to finish, then go back to the queue. Pickled tasks are verified with "
        "the secret in $IRONFORGE_SECRET.",
    )
    add_connection(p, "join the local home's server (started if needed; DIR default: "
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

    from ironforge_nb.pdeathsig import set_process_name
    from ironforge_nb.queue import RedisConfig
    from ironforge_nb.worker import Worker
    from ironforge_nb.worker.executor import load_executor

    set_process_name("ifn-worker")  # its executors: ifn-executor, its webhooks: ifn-webhooks
    logging.basicConfig(level=args.log_level.upper(), stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(message)s")
    executor = secret = None
    store = os.environ.get("IRONFORGE_RESULT_STORE") or None
    if args.executor:
        executor = load_executor(args.executor)
    else:
        from ironforge_nb.orchestrator.codec import secret_from_env

        secret = secret_from_env()
    url, home = connection(args)
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


def _task_logs(args: argparse.Namespace) -> dict[str, Any]:
    """The capture settings given on the command line (the others keep RedisConfig's)."""
    given = {"task_log_bytes": args.task_log_bytes,
             "task_log_level": args.task_log_level and args.task_log_level.upper()}
    return {name: value for name, value in given.items() if value is not None}


def add_dead_letters(subparsers: Subparsers) -> None:
    """``ironforge dead-letters``: list, requeue or purge the dead-letter queues."""
    p = subparsers.add_parser(
        "dead-letters", help="list the dead-letter queues; requeue or purge them",
        description="Without options, list the newest dead letters of every queue. A "
        "pipeline's task cannot be requeued alone: requeuing one retries its run's failed "
        "tasks (Run.retry_failed).")
    add_connection(p, HOME_VIEW)
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

    config = config_of(args)
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
