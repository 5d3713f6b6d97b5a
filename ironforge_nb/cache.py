"""``ifn.cache``: the cross-run result cache of the default connection.

>>> ifn.cache.entries()            # one row per entry: pipeline, task, origin run, live, bytes
>>> ifn.cache.clear("sales")       # forget the sales pipeline's cached results

Caching is asked for with ``Pipeline(name, cache=True)`` or ``submit(cache=True)``; a task opts
out with ``cache=False`` and limits reuse with ``cache_ttl=`` (seconds). See
`ironforge_nb.orchestrator.cache` for how hits are found.
"""

from __future__ import annotations

from ironforge_nb.orchestrator.cache import ENTRY_COLUMNS, clear, entries

__all__ = ["ENTRY_COLUMNS", "clear", "entries"]
