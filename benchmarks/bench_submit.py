"""Build + submit time of 1k / 10k / 100k-task pipelines (target: 10k tasks <= 0.5 s).

Starts its own redis-server through `ironforge_nb.local`. Each shape is built with the fluent
`Pipeline` builder and submitted with `ironforge_nb.runs.submit` (one Lua script call); the
figures split pipeline building (``Pipeline.build`` included in submit) from encoding and the
script itself. Shapes: WIDE (n-1 mapped tasks + a final gather), LAYERED (layers of 100 tasks,
2 random parents each). Functions are module functions (pickle mode, signed) and, for the JSON
row, ``"package.module:function"`` paths. Usage: ``python benchmarks/bench_submit.py``.
Figures, never assertions.
"""

from __future__ import annotations

import argparse
import random
import time
from collections.abc import Callable
from typing import Any

from ironforge_nb.dag import Pipeline
from ironforge_nb.local import RedisServer
from ironforge_nb.queue import RedisConfig
from ironforge_nb.runs import codec, submit


def noop(item: Any = None, **_: Any) -> None:
    """The task of every benchmark pipeline (``item`` receives a map item)."""


def noop_gather(inc: list[Any]) -> None:
    """The WIDE pipeline's final gather."""


def wide(n: int, fn: Any = noop) -> Pipeline:
    """``n - 2`` mapped tasks after a root, then one gather of them all."""
    p = Pipeline("wide")
    p.task("root", fn)
    p.map("inc", fn, over=range(n - 2), after="root")
    p.task("gather", noop_gather if fn is noop else "benchmarks.bench_submit:noop_gather",
           after="inc")
    return p


def layered(n: int, fn: Any = noop, width: int = 100) -> Pipeline:
    """Layers of ``width`` tasks; each task after two random tasks of the layer above."""
    rng = random.Random(7)
    p = Pipeline("layered")
    for i in range(n):
        layer, k = divmod(i, width)
        after = None
        if layer:
            above = [f"t{layer - 1}_{j}" for j in rng.sample(range(width), 2)]
            after = above
        p.task(f"t{layer}_{k}", fn, after=after)
    return p


def _script_usec(client: Any) -> int:
    """Server CPU time spent in scripts so far (INFO commandstats), in microseconds."""
    stats = client.info("commandstats")
    return sum(int(v["usec"]) for k, v in stats.items() if k in ("cmdstat_evalsha",
                                                                  "cmdstat_eval"))


def measure(label: str, make: Callable[[], Pipeline], cfg: RedisConfig, **kw: Any) -> None:
    """Wall time of build and submit, plus CPU times that a loaded machine inflates less:
    this process's (build, then encoding + sending) and the server's inside the script."""
    client = cfg.client()
    before = _script_usec(client)
    c0, t0 = time.process_time(), time.perf_counter()
    pipeline = make()
    c1, t1 = time.process_time(), time.perf_counter()
    submit(pipeline, config=cfg, **kw)
    c2, t2 = time.process_time(), time.perf_counter()
    lua = (_script_usec(client) - before) / 1e6
    print(f"{label:<24} wall: build {t1 - t0:6.3f} s  submit {t2 - t1:6.3f} s  "
          f"total {t2 - t0:6.3f} s | cpu: build {c1 - c0:6.3f} s  encode {c2 - c1:6.3f} s  "
          f"script {lua:6.3f} s  sum {c2 - c0 + lua:6.3f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000,10000,100000")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    codec.set_default_secret(codec.new_secret())
    with RedisServer() as server:
        for n in sizes:
            cfg = RedisConfig(url=server.url, namespace=f"bench-{n}", socket_timeout=120)
            measure(f"WIDE {n:,} (pickle)", lambda n=n: wide(n), cfg)
            measure(f"WIDE {n:,} (JSON)",
                    lambda n=n: wide(n, "benchmarks.bench_submit:noop"), cfg)
            measure(f"LAYERED {n:,} (pickle)", lambda n=n: layered(n), cfg)
            cfg.client().flushdb()
            cfg.close()


if __name__ == "__main__":
    main()
