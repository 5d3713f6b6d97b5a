"""``ifn.cache``: the cross-run result cache of the default connection, and its result files.

>>> ifn.cache.entries()            # one row per entry: pipeline, task, origin run, live, bytes
>>> ifn.cache.clear("sales")       # forget the sales pipeline's cached results
>>> ifn.cache.sweep_results(older_than=86400)  # delete result files nothing references

Caching is asked for with ``Pipeline(name, cache=True)`` or ``submit(cache=True)``; a task opts
out with ``cache=False`` and limits reuse with ``cache_ttl=`` (seconds). See
`ironforge_nb.orchestrator.cache` for how hits are found.
"""

from __future__ import annotations

from ironforge_nb.orchestrator.cache import ENTRY_COLUMNS, clear, entries
from ironforge_nb.queue.config import RedisConfig, default_config

__all__ = ["ENTRY_COLUMNS", "clear", "entries", "sweep_results"]


def sweep_results(older_than: float = 86400.0, *, dry_run: bool = False,
                  config: RedisConfig | None = None) -> list[str]:
    """Delete the result-store files (of the config's ``result_store`` and namespace) that no
    run, result or cache hit references any more and that are older than ``older_than``
    seconds; returns their URLs (``dry_run``: lists them, deletes nothing).

    Files go with their runs (`Run.delete`, run retention); what this finds is what that could
    not see: files of runs whose Redis state is gone (a lost or flushed Redis, keys deleted by
    hand, a deleter that died mid-way), of results that expired, of attempts whose completion
    was refused. Files pinned by another run's job (a cache hit handed the result of a deleted
    run), of runs being deleted, or younger than ``older_than`` (a worker writes its file just
    before completing) are kept.
    """
    from ironforge_nb.orchestrator.store import sweep

    return sweep(config if config is not None else default_config(), older_than,
                 dry_run=dry_run)
