"""What webhooks cost where they add work to a transition, and how long a trickling receiver
holds a dispatcher, on a private redis-server and a receiver on 127.0.0.1.

Rows:
- submit_run of a run whose N tasks are all cache hits (each hit then sends job.completed):
  the Redis time of the script (INFO commandstats, usec of EVALSHA) with no endpoint, with one
  endpoint that wants only run events (its filter is checked per hit, nothing written) and
  with one that wants job.completed (a delivery per hit: an HSET and a ZADD). Median of
  ``--rounds`` interleaved rounds (the machine is shared).
- one delivery attempt to a receiver that answers a byte every 0.1 s for ever, with
  ``--timeout`` seconds: how long the attempt held the dispatcher thread (the whole-attempt
  deadline; a per-read timeout alone would hold it for ever).
The no-endpoint cost of ordinary completions is in ``bench_queue.py`` (Redis commands per job).

Usage: ``python benchmarks/bench_webhooks.py [--tasks 2000] [--rounds 5] [--timeout 1]``.
Figures, never assertions.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import ironforge_nb as ifn
from ironforge_nb.local import RedisServer
from ironforge_nb.orchestrator import submit
from ironforge_nb.queue import RedisConfig
from ironforge_nb.webhooks.policy import check_url
from ironforge_nb.webhooks.sender import send
from tests import tasks
from tests.receivers import trickler
from tests.runloop import use_test_secret, work


def script_ms(client: object) -> float:
    """Total EVALSHA/EVAL time the server has counted, in ms."""
    stats = client.info("commandstats")  # type: ignore[attr-defined]
    return sum(v["usec"] for k, v in stats.items()
               if k in ("cmdstat_evalsha", "cmdstat_eval")) / 1000


def cache_hits(n: int, rounds: int) -> None:
    use_test_secret()
    with RedisServer() as server:
        setups = {"no endpoint": None, "endpoint on run.* only": ["run.succeeded", "run.failed"],
                  "endpoint on job.completed": ["job.completed"]}
        configs = {}
        for i, (label, events) in enumerate(setups.items()):
            config = RedisConfig(server.url, namespace=f"bench{i}")
            if events:
                ifn.webhooks.register("http://127.0.0.1:9/x", events, allow_private=True,
                                      config=config)
            configs[label] = config
        pipeline = ifn.Pipeline("hits", cache=True)
        pipeline.task("one", tasks.one).map("sq", tasks.square, over=list(range(n - 1)),
                                             after="one")
        for config in configs.values():
            submit(pipeline, config=config)
            work(config)
        client = next(iter(configs.values())).client()
        times: dict[str, list[float]] = {label: [] for label in configs}
        for _ in range(rounds):
            for label, config in configs.items():
                before = script_ms(client)
                run = submit(pipeline, config=config)
                times[label].append(script_ms(client) - before)
                assert run.info()["cached"] == n
        print(f"submit_run of a run of {n:,} tasks, all cache hits (Redis script time, "
              f"median of {rounds}):")
        base = statistics.median(times["no endpoint"])
        for label, ms in times.items():
            med = statistics.median(ms)
            print(f"  {label:28} {med:8.1f} ms  ({(med - base) * 1000 / n:+.1f} us per hit "
                  f"against no endpoint)")


def trickle(timeout: float) -> None:
    with trickler(b"HTTP/1.1 200 OK\r\nX-Slow: ") as (port, _held):
        target = check_url(f"http://127.0.0.1:{port}/hook", allow_private=True)
        start = time.monotonic()
        answer = send(target, {"content-type": "application/json"}, b"{}", timeout)
        took = time.monotonic() - start
    print(f"a receiver trickling a byte every 0.1 s: the attempt ended after {took:.2f} s "
          f"with timeout {timeout:g} s ({answer.error})")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--tasks", type=int, default=2000, help="tasks of the cached run (2,000)")
    ap.add_argument("--rounds", type=int, default=5, help="interleaved rounds (5)")
    ap.add_argument("--timeout", type=float, default=1.0, help="attempt timeout, s (1)")
    args = ap.parse_args()
    print(f"load average {os.getloadavg()[0]:.1f} at start")
    cache_hits(args.tasks, args.rounds)
    trickle(args.timeout)
    print(f"load average {os.getloadavg()[0]:.1f} at end")


if __name__ == "__main__":
    main()
