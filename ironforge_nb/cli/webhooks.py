"""``ironforge webhooks``: a webhook dispatcher on its own, or the endpoints and deliveries
(what it does is in `ironforge_nb.webhooks.command`)."""

from __future__ import annotations

import argparse

from ironforge_nb.cli.common import HOME_VIEW, Subparsers, add_connection, config_of

__all__ = ["add_webhooks", "cmd_webhooks"]


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
    add_connection(p, HOME_VIEW)
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

    return run_command(config_of(args), args.action, concurrency=args.concurrency,
                       timeout=args.timeout, lease=args.lease, limit=args.limit,
                       log_level=args.log_level)
