"""The cross-run result cache: its entries as a DataFrame, and clearing them.

How it works (the full contract is in ``queue/lua/submit_run.lua``'s header and
`ironforge_nb.orchestrator.cachekey`): a pipeline submitted with ``cache=True`` computes a key
per task at submit (its code, constants, run params, map item and its parents' keys), and the
submit script looks every key up in one pass. A key whose entry names a completed job with a
live result is a hit: the task ends ``completed`` at once with the origin run recorded
(``to_dataframe()``'s ``cached`` column; "cached" in the graph), and its job POINTS at that
job's result (``source_job``) instead of holding a copy: every reader (``Run.result``, a child
task, the claim that inlines parents' results) follows it. Entries are fields of one HASH
``{ns}:cache-entries`` (key -> "<job> <origin> <created> <expires> <task> <pipeline>", read with
one HMGET and written with one HSET per 1000 keys at submit, by the misses only: a hit keeps the
entry naming the job that holds the result). By default an entry lives as long as that result
(``<expires>`` 0), which each hit keeps for ``RedisConfig.result_ttl`` from then on; with the
task's ``cache_ttl`` it is reused until ``cache_ttl`` after it was computed. The index ZSET
``{ns}:cache-index`` (key -> expiry) lists them, and each cached submit prunes expired ones.
An entry whose job or result has gone (result expired, run deleted with no run reusing it) is
simply a miss. Deleting the run that computed a result that later runs reuse hands it over to
one of them (``delete_runs.lua``), so a run's results stay readable as long as the run exists,
and the entry keeps hitting.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ironforge_nb.queue.config import RedisConfig, default_config
from ironforge_nb.queue.link import Link
from ironforge_nb.queue.scripting import LuaScript

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
        deleted, start = script([keys.cache_index, keys.cache_entries],
                                [pipeline or "", start, _BUDGET])
        total += int(deleted)
    return total


def entries(pipeline: str | None = None, config: RedisConfig | None = None) -> pd.DataFrame:
    """One row per cache entry (of ``pipeline``, or all): its key, pipeline, task, the run that
    computed it (``origin``), the job holding the result that hits read, created/expires (UTC;
    with the default lifetime, when that result expires unless another hit extends it),
    whether it would hit now (``live``) and the size of its value in Redis (``bytes``)."""
    import pandas as pd

    cfg = config if config is not None else default_config()
    client = cfg.client()
    scored = client.zrange(cfg.keys.cache_index, 0, -1, withscores=True)
    rows: dict[str, list[Any]] = {name: [] for name in ENTRY_COLUMNS}
    now = client.time()
    now_ms = now[0] * 1000 + now[1] // 1000
    for start in range(0, len(scored), _CHUNK):
        chunk = [(k.decode(), int(score)) for k, score in scored[start:start + _CHUNK]]
        values = client.hmget(cfg.keys.cache_entries, [k for k, _ in chunk]) if chunk else []
        found = [(key, score, _fields(value))
                 for (key, score), value in zip(chunk, values, strict=True) if value is not None]
        found = [f for f in found if (pipeline is None or f[2][2] == pipeline.encode())
                 and (f[2][5] == b"0" or int(f[2][5]) > now_ms)]
        pipe = client.pipeline(transaction=False)
        for _, _, (job, *_rest) in found:
            pipe.hget(cfg.keys.job(job.decode()), "status")
            pipe.strlen(cfg.keys.result(job.decode()))
            pipe.pttl(cfg.keys.result(job.decode()))
        states = pipe.execute()
        for i, (key, score, (job, origin, owner, task, created, expires)) in enumerate(found):
            status, size, left = states[3 * i:3 * i + 3]
            if expires == b"0":  # as long as the result lives (each hit extends it)
                expires = str(now_ms + left if left > 0 else score).encode()
            rows["key"].append(key)
            rows["pipeline"].append(_text(owner))
            rows["task"].append(_text(task))
            rows["origin"].append(_text(origin))
            rows["job"].append(_text(job))
            rows["created"].append(int(created))
            rows["expires"].append(int(expires))
            rows["live"].append(status == b"completed" and size > 0)
            rows["bytes"].append(int(size))
    frame = pd.DataFrame(rows)
    for name in ("created", "expires"):
        frame[name] = pd.to_datetime(pd.Series(rows[name], dtype="float64"), unit="ms", utc=True)
    return frame


def _fields(entry: bytes) -> tuple[bytes, bytes, bytes, bytes, bytes, bytes]:
    """(job, origin, pipeline, task, created, expires) of an entry "<job> <origin> <created>
    <expires> <task> <pipeline>" (the pipeline last: the only part that may hold spaces)."""
    job, origin, created, expires, task, owner = entry.split(b" ", 5)
    return job, origin, owner, task, created, expires


def _text(raw: bytes | None) -> str | None:
    return None if raw is None else raw.decode()
