"""``ironforge sweep-results``: delete the result store's files that nothing references any more
(what `ifn.cache.sweep_results` does, from a terminal or a cron job)."""

from __future__ import annotations

import argparse

from ironforge_nb.cli.common import Subparsers, add_connection, connection

__all__ = ["add_sweep_results", "cmd_sweep_results"]


def add_sweep_results(subparsers: Subparsers) -> None:
    """``ironforge sweep-results``: orphaned result files, listed or deleted."""
    p = subparsers.add_parser(
        "sweep-results",
        help="delete result-store files that no run, result or cache entry references",
        description="Files go with their runs (Run.delete, run retention); this finds the "
        "ones that could not: files of runs whose Redis state is gone (a lost or flushed "
        "Redis, a deleter that died), of expired results, of attempts whose completion was "
        "refused. Files still referenced, pinned by another run, of runs being deleted, or "
        "younger than --older-than are kept. Prints each file deleted (with --dry-run: that "
        "would be), then a count.")
    add_connection(p, "use the local home's server and, unless --store is given, its results "
                   "directory (DIR default: $IRONFORGE_HOME or ~/.cache/ironforge)")
    p.add_argument("--store", default=None, metavar="URL",
                   help="the result store: a directory or fsspec URL, as workers use it "
                   "(default: $IRONFORGE_RESULT_STORE; with --home, the home's results/)")
    p.add_argument("--older-than", type=float, default=86400.0, metavar="SECONDS",
                   help="only files older than this (default: 86400, a day: a worker writes "
                   "its file just before its completion names it)")
    p.add_argument("--dry-run", action="store_true", help="list the files, delete nothing")
    p.set_defaults(handler=cmd_sweep_results)


def cmd_sweep_results(args: argparse.Namespace) -> int:
    """Sweep (or list) the orphans of the namespace's part of the store; prints them."""
    import os

    from ironforge_nb.cache import sweep_results
    from ironforge_nb.errors import ConfigError
    from ironforge_nb.queue import RedisConfig

    url, home = connection(args)
    store = args.store or os.environ.get("IRONFORGE_RESULT_STORE") or None
    if store is None and home is not None:
        store = str(home.results_dir)
    if store is None:
        raise ConfigError("no result store to sweep: pass --store URL, set "
                          "IRONFORGE_RESULT_STORE, or use --home")
    config = RedisConfig(url=url, namespace=args.namespace, result_store=store)
    found = sweep_results(args.older_than, dry_run=args.dry_run, config=config)
    for file in found:
        print(file)
    verb = "would delete" if args.dry_run else "deleted"
    print(f"{verb} {len(found):,} orphaned result file{'s' if len(found) != 1 else ''} "
          f"under {store}")
    return 0
