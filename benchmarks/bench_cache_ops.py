"""What the cache's per-key Redis work costs, alone: Lua loops of 10,000 in a private
redis-server, timed as the server's CPU (``/proc/<pid>/schedstat``, Linux).

Rows: the entry write of submit_run.lua (one ``SET ... PX`` of a STRING) against the HASH it
replaced (an HSET of 5 fields + PEXPIRE); the lookup of a hit (GET of the entry + GETRANGE of
the result's first 5 bytes) against the one before (HMGET + EXISTS + GETRANGE); the lookup of
misses (parsing the cache lines + a GET that finds nothing); the index ZADD of new entries.
Each is the best of ``--rounds`` interleaved rounds: the machine is shared.

Usage: ``python benchmarks/bench_cache_ops.py [--rounds 5]``. Figures, never assertions.
"""

from __future__ import annotations

import argparse
import hashlib

import redis

from ironforge_nb.local import RedisServer

N = 10_000
PARSE = ("local c, n = {}, 0 for key, ttl in string.gmatch(ARGV[1], '([^ \\n]+) (%d+)\\n') "
         "do n = n + 1; c[n] = key end ")
LOOPS = {
    "entry write, before: HSET of 5 fields + PEXPIRE":
        "for i = 1, 10000 do local k = 'c:' .. ARGV[2] .. i; redis.call('HSET', k, 'job', "
        "'r.' .. i, 'origin', 'r', 'pipeline', 'layered', 'task', 't' .. i, 'created', "
        "'1764755000000'); redis.call('PEXPIRE', k, 604800000) end",
    "entry write, now: SET ... PX of a STRING":
        "for i = 1, 10000 do redis.call('SET', 'c:' .. ARGV[3] .. i, 'r.' .. i .. "
        "' r 1764755000000 t' .. i .. ' layered', 'PX', 604800000) end",
    "hit lookup, before: HMGET + EXISTS + GETRANGE":
        "for i = 1, 10000 do local e = redis.call('HMGET', 'c:' .. ARGV[2] .. i, 'job', "
        "'origin'); if e[1] then redis.call('EXISTS', 'res:' .. i); "
        "redis.call('GETRANGE', 'res:' .. i, 0, 4) end end",
    "hit lookup, now: GET + match + GETRANGE":
        "for i = 1, 10000 do local e = redis.call('GET', 'c:' .. ARGV[3] .. i); if e then "
        "local s, o = string.match(e, '^(%S+) (%S*) '); "
        "redis.call('GETRANGE', 'res:' .. i, 0, 4) end end",
    "miss lookup: parse the cache lines + GET (nothing)":
        PARSE + "for i = 1, n do redis.call('GET', 'x:' .. c[i]) end",
    "index: parse + ZADD of the new entries (1000 a call)":
        PARSE + "local idx, m = {}, 0 for i = 1, n do idx[m + 1], idx[m + 2] = i, c[i] .. "
        "ARGV[2]; m = m + 2; if m >= 2000 then redis.call('ZADD', 'index', "
        "unpack(idx, 1, m)); m = 0 end end",
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
            client.set(f"res:{i}", b"x" * 40)
        for rnd in range(args.rounds):
            lines = "".join(f"{hashlib.sha256(f'{rnd} {i}'.encode()).hexdigest()} 0\n"
                            for i in range(N))
            for name, body in LOOPS.items():
                start = cpu_ms()
                client.eval(body, 0, lines, f"{rnd}h", f"{rnd}s")
                best[name] = min(best.get(name, float("inf")), cpu_ms() - start)
    print(f"server CPU per {N:,} keys, best of {args.rounds} rounds:")
    for name, ms in best.items():
        print(f"   {name:55s} {ms:6.1f} ms")


if __name__ == "__main__":
    main()
