"""The cross-run result cache: its entries as a DataFrame, and clearing them.

How it works (the full contract is in ``queue/lua/submit_run.lua``'s header and
`ironforge_nb.orchestrator.cachekey`): a pipeline submitted with ``cache=True`` computes a key
per task at submit (its code, constants, run params, map item and its parents' keys), and the
submit script looks every key up in one pass. A key whose entry names a completed job with a
live result is a hit: the task ends ``completed`` at once with a copy of that result and the
origin run recorded (``to_dataframe()``'s ``cached`` column; "cached" in the graph). Entries are
small strings ``{ns}:cache-entry:<key>`` ("<job> <origin> <created> <task> <pipeline>", one SET
with its expiry at submit) that expire after the task's ``cache_ttl`` or, by default, with the
results (``RedisConfig.result_ttl``, renewed by each hit). An entry whose job or result has gone
(run deleted, result expired) is simply a miss.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ironforge_nb.queue.config import RedisConfig, default_config
from ironforge_nb.queue.keys import JOB_RESULT_SUFFIX
from ironforge_nb.queue.link import Link
from ironforge_nb.queue.lua import LuaScript

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["ENTRY_COLUMNS", "clear", "entries"]

ENTRY_COLUMNS = ("key", "pipeline", "task", "origin", "job", "created", "expires", "live",
                 "bytes")
_CHUNK = 1000
_BUDGET = 1000


def clear(pipeline: str | None = None, config: RedisConfig | None = None) -> int:
    """Drop the cache entries of ``pipeline`` (every entry when None); returns how many.

    Runs and their results stay: only the reuse goes, so the next submit computes again.
    """
    cfg = config if config is not None else default_config()
    script = LuaScript(Link.of(cfg.client()), "clear_cache")
    keys = cfg.keys
    total, start = 0, 0
    while start >= 0:
        deleted, start = script([keys.cache_index],
                                [keys.cache_prefix, pipeline or "", start, _BUDGET])
        total += int(deleted)
    return total


def entries(pipeline: str | None = None, config: RedisConfig | None = None) -> pd.DataFrame:
    """One row per cache entry (of ``pipeline``, or all): its key, pipeline, task, the run that
    computed it (``origin``), the job holding the copy now reused, created/expires (UTC), whether
    it would hit now (``live``) and the size of its value in Redis (``bytes``)."""
    import pandas as pd

    cfg = config if config is not None else default_config()
    client = cfg.client()
    names = [k.decode() for k in client.zrange(cfg.keys.cache_index, 0, -1)]
    rows: dict[str, list[Any]] = {name: [] for name in ENTRY_COLUMNS}
    for start in range(0, len(names), _CHUNK):
        chunk = names[start:start + _CHUNK]
        pipe = client.pipeline(transaction=False)
        for key in chunk:
            pipe.get(cfg.keys.cache_entry(key))
            pipe.pttl(cfg.keys.cache_entry(key))
        replies = pipe.execute()
        found = [(key, _fields(replies[2 * i]), replies[2 * i + 1])
                 for i, key in enumerate(chunk) if replies[2 * i] is not None]
        found = [f for f in found if pipeline is None or f[1][2] == pipeline.encode()]
        pipe = client.pipeline(transaction=False)
        for _, (job, *_rest), _ttl in found:
            pipe.hget(cfg.keys.job(job.decode()), "status")
            pipe.strlen(cfg.keys.job_prefix + job.decode() + JOB_RESULT_SUFFIX)
        states = pipe.execute()
        now = client.time()
        now_ms = now[0] * 1000 + now[1] // 1000
        for i, (key, (job, origin, owner, task, created), ttl) in enumerate(found):
            size = int(states[2 * i + 1])
            rows["key"].append(key)
            rows["pipeline"].append(_text(owner))
            rows["task"].append(_text(task))
            rows["origin"].append(_text(origin))
            rows["job"].append(_text(job))
            rows["created"].append(int(created) if created else None)
            rows["expires"].append(now_ms + int(ttl) if int(ttl) >= 0 else None)
            rows["live"].append(states[2 * i] == b"completed" and size > 0)
            rows["bytes"].append(size)
    frame = pd.DataFrame(rows)
    for name in ("created", "expires"):
        frame[name] = pd.to_datetime(pd.Series(rows[name], dtype="float64"), unit="ms", utc=True)
    return frame


def _fields(entry: bytes) -> tuple[bytes, bytes, bytes, bytes, bytes]:
    """(job, origin, pipeline, task, created) of an entry "<job> <origin> <created> <task>
    <pipeline>" (the pipeline last: the only part that may hold spaces)."""
    job, origin, created, task, owner = entry.split(b" ", 4)
    return job, origin, owner, task, created


def _text(raw: bytes | None) -> str | None:
    return None if raw is None else raw.decode()
