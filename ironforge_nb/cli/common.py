"""What every ``ironforge`` subcommand module shares: the subparsers type and the options that
say which Redis and namespace (``--url``, ``--namespace``, ``--home``)."""

from __future__ import annotations

import argparse
from typing import Any

__all__ = ["HOME_VIEW", "Subparsers", "add_connection", "config_of", "connection"]

Subparsers = Any  # argparse's private _SubParsersAction


def add_connection(p: argparse.ArgumentParser, home_help: str) -> None:
    """The options that say which Redis and namespace: --url, --namespace, --home."""
    import os

    p.add_argument("--url", default=os.environ.get("IRONFORGE_REDIS_URL",
                                                   "redis://127.0.0.1:6379/0"),
                   help="Redis URL (default: $IRONFORGE_REDIS_URL or redis://127.0.0.1:6379/0)")
    p.add_argument("--namespace", default=os.environ.get("IRONFORGE_NAMESPACE", "default"),
                   help="namespace (default: $IRONFORGE_NAMESPACE or 'default')")
    p.add_argument("--home", nargs="?", const="", default=None, metavar="DIR", help=home_help)


def connection(args: argparse.Namespace) -> tuple[str, Any]:
    """The Redis URL the options name, and the local home when --home was given."""
    if args.home is None:
        return args.url, None
    from ironforge_nb.local.home import Home

    home = Home(args.home or None)
    return home.url(), home


def config_of(args: argparse.Namespace) -> Any:
    """The `RedisConfig` of the connection options."""
    from ironforge_nb.queue import RedisConfig

    return RedisConfig(url=connection(args)[0], namespace=args.namespace)


HOME_VIEW = ("read the local home's server (DIR default: $IRONFORGE_HOME or "
              "~/.cache/ironforge) instead of --url")
