"""What the cache's per-key Redis work costs, alone: Lua loops of 10,000 in a private
redis-server, timed as the server's CPU (``/proc/<pid>/schedstat``, Linux).

Rows, each "before" (entries as one STRING per key, 2026-12-03 morning) against "now" (entries
as fields of one HASH, read with one HMGET and written with one HSET per 1000 keys, as
submit_run.lua does): the lookup of misses (parsing the cache lines + reading entries that do
not exist); the lookup of hits (reading the entry, parsing it, and a GETRANGE of the result's
first 5 bytes); the entry writes; the index ZADD of new entries (the same in both); and what a
hit does beyond its lookup, as a copy (before 2026-12-03 14:00: GETRANGE, COPY and PEXPIRE of
the result, the entry rewritten naming the copy and re-indexed) and as a pointer (now: the
PEXPIRE that is the lookup keeps the holder's result alive, one APPEND joins its borrowers).
Each is the best of ``--rounds`` interleaved rounds: the machine is shared.

Usage: ``python benchmarks/bench_cache_ops.py [--rounds 5]``. Figures, never assertions.
"""

from __future__ import annotations

import argparse
import hashlib
import os

import redis

from ironforge_nb.local import RedisServer

N = 10_000
PARSE = ("local c, n = {}, 0 for key, ttl in string.gmatch(ARGV[1], '([^ \\n]+) (%d+)\\n') "
         "do n = n + 1; c[n] = key end ")
# the entries of round r are written under tag ARGV[2] ("<r>s" STRINGs, "<r>h" HASH fields)
HMGET = ("for s = 1, n, 1000 do local last = math.min(n, s + 999) "
         "local v = redis.call('HMGET', KEY, unpack(c, s, last)) ")
LOOPS = {
    "miss lookup, before: parse + GET per key":
        PARSE + "for i = 1, n do redis.call('GET', 'x:' .. c[i]) end",
    "miss lookup, now: parse + HMGET per 1000 keys":
        PARSE + HMGET.replace("KEY", "'absent'") + "end",
    "entry write, before: SET ... PX per key":
        PARSE + "for i = 1, n do redis.call('SET', 'c:' .. c[i], 'r.' .. i .. "
        "' r 1764755000000 t' .. i .. ' layered', 'PX', 604800000) end",
    "entry write, now: HSET of 1000 fields per call":
        PARSE + "local f, m = {}, 0 for i = 1, n do f[m + 1], f[m + 2] = c[i], 'r.' .. i .. "
        "' r 1764755000000 1765359800000 t' .. i .. ' layered'; m = m + 2; if m >= 2000 then "
        "redis.call('HSET', 'entries', unpack(f, 1, m)); m = 0 end end",
    "hit lookup, before: GET + match + GETRANGE per key":
        PARSE + "for i = 1, n do local e = redis.call('GET', 'c:' .. c[i]); if e then "
        "local s, o = string.match(e, '^(%S+) (%S*) '); "
        "redis.call('GETRANGE', 'res:' .. i, 0, 4) end end",
    "hit lookup, now: HMGET per 1000 + match + GETRANGE":
        PARSE + HMGET.replace("KEY", "'entries'") + "for j = 1, last - s + 1 do local e = v[j]; "
        "if e then local a, o, r, cr, ex = string.match(e, "
        "'^(%S+) (%S*) ((%d+) (%d+) .*)$'); if tonumber(ex) > 0 then "
        "redis.call('GETRANGE', 'res:' .. (s + j - 1), 0, 4) end end end end",
    "index: ZADD of the new entries (1000 a call)":
        PARSE + "local idx, m = {}, 0 for i = 1, n do idx[m + 1], idx[m + 2] = i, c[i]; "
        "m = m + 2; if m >= 2000 then redis.call('ZADD', 'index', unpack(idx, 1, m)); m = 0 "
        "end end",
    "a hit, before (copy): GETRANGE + COPY + PEXPIRE + entry HSET + ZADD":
        PARSE + "local f, m, idx = {}, 0, {} for i = 1, n do local r = 'res:' .. i "
        "redis.call('GETRANGE', r, 0, 4); redis.call('COPY', r, 'cp:' .. i, 'REPLACE'); "
        "redis.call('PEXPIRE', 'cp:' .. i, 604800000); f[m + 1], f[m + 2] = c[i], 'q.' .. i .. "
        "' r 1764755000000 1765359800000 t' .. i .. ' layered'; idx[m + 1], idx[m + 2] = "
        "1765359800000 + i, c[i]; m = m + 2; if m >= 2000 then "
        "redis.call('HSET', 'entries', unpack(f, 1, m)); "
        "redis.call('ZADD', 'index', unpack(idx, 1, m)); m = 0 end end",
    "a hit, now (pointer): PEXPIRE (the lookup) + APPEND":
        PARSE + "for i = 1, n do local r = 'res:' .. i "
        "if redis.call('PEXPIRE', r, 604800000) == 1 then "
        "redis.call('APPEND', r .. ':borrowers', 'q.' .. i .. ',') end end",
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    best: dict[str, float] = {}
    with RedisServer() as server:
        client = redis.Redis.from_url(server.url)
        pid = int(client.info("server")["process_id"])

        def cpu_ms() -> float:
            with open(f"/proc/{pid}/schedstat") as fh:
                return int(fh.read().split()[0]) / 1e6

        for i in range(1, N + 1):
            client.set(f"res:{i}", b"x" * 40, px=604_800_000)  # a result has a TTL
        for rnd in range(args.rounds):
            client.delete("entries", "index")
            for pattern in ("c:*", "cp:*", "res:*:borrowers"):
                client.eval(f"for _, k in ipairs(redis.call('KEYS', '{pattern}')) do "
                            "redis.call('DEL', k) end", 0)
            lines = "".join(f"{hashlib.sha256(f'{rnd} {i}'.encode()).hexdigest()} 0\n"
                            for i in range(N))
            # writes come before the hit lookups, and the index before the hits that rewrite
            # entries and re-index them (as a copying hit did)
            for name, body in LOOPS.items():
                start = cpu_ms()
                client.eval(body, 0, lines)
                best[name] = min(best.get(name, float("inf")), cpu_ms() - start)
    print(f"server CPU per {N:,} keys, best of {args.rounds} rounds "
          f"(load average {os.getloadavg()[0]:.1f}):")
    for name, ms in best.items():
        print(f"   {name:55s} {ms:6.1f} ms")


if __name__ == "__main__":
    main()
