"""Build + submit time of 1k / 10k / 100k-task pipelines (targets: 10k <= 0.5 s, 100k <= 1.5 s).

Starts its own redis-server through `ironforge_nb.local`. Each shape is built with the fluent
`Pipeline` builder and submitted with `ironforge_nb.orchestrator.submit` (one Lua script
call). Shapes:
WIDE (n-1 independent map tasks + a final gather of them all, the shape of bench_runs) and
LAYERED (layers of 100 tasks, 2 random parents each), each in pickle mode (module functions
shipped by value, signed) and JSON mode (``"package.module:function"`` paths).

Figures: wall time of build and submit, and CPU times that a loaded machine inflates less:
this process's (build; then encoding + sending, which includes ``Pipeline.build``), the
server's inside the script (INFO commandstats) and the server's whole CPU (INFO cpu, user +
sys, so argument parsing counts too). Other work on a shared machine still adds noise, so each
measurement is repeated (``--repeat``) and the best of each figure is printed. Usage:
``python benchmarks/bench_submit.py [--sizes 1000,10000,100000] [--repeat 3]``. Figures, never
assertions; every figure (best of the repeats, and each repeat) is saved to
``benchmarks/results/submit.json`` with the load average at start and end.

``--callgrind REF`` (repeatable) counts instructions instead, which load does not move: for
this tree and each git commit REF (its tree exported to a temp dir, this file copied in), a
redis-server runs under ``valgrind --tool=callgrind --toggle-collect=evalGenericCommand`` (the
script's Lua and the commands it calls; the purge that follows a submit is a small script
too) and takes one submit of WIDE and one of LAYERED (pickle mode, ``--sizes``' last size),
each encoded by that tree's own code; ``callgrind_control`` dumps the count after each.
Usage: ``python benchmarks/bench_submit.py --callgrind HEAD~1 --sizes 100000`` (about 4 minutes
per tree at 100k on a quiet machine). ``--callgrind REF --callgrind-python`` counts the
client's side instead: this Python process under callgrind, building each shape with the
fluent builder (``_build``) and encoding it as `submit` does (``_encode``: `Pipeline.build`,
payloads, records; a fixed run id, ``PYTHONHASHSEED=0``), each phase between a zero and a dump
of the counts (the busy wait for callgrind_control adds about a million instructions to a
count; several minutes per tree at 100k). At 2,000 tasks (19:40 UTC), the records as lines
against as columns: WIDE encode 92.9 M -> 91.3 M, LAYERED 91.8 M -> 90.0 M instructions.

Where a 100k-task WIDE submit goes (issue 14, measured 2026-12-03). Before: this process's
build and encoding (about 0.25 + 0.55 s CPU), and the submit_run.lua script (about 1.2-1.3 s of
server CPU), of which, measured by removing one command at a time from a copy of the script,
the payload ``SET`` per task was ~0.6 s, the job's meta ``HSET`` ~0.4 s, the 'enqueued'
``XADD`` of each queued root ~0.3 s, and parsing the records ~0.15 s. Now (2026-12-03 14:20
UTC): build 0.15 + encoding 0.48 s CPU, the script 0.9 s of server CPU at load 2 (instructions
counted by callgrind, which load does not move: 8.32 G before, 6.05 G now): the payloads go in
one ``MSET`` per 1000 keys, the 'enqueued' events are written only for the roots a queue's
capped stream keeps (its last ``events_maxlen``: 10,000 ``XADD`` instead of 100,000), and
numbers are formatted as integers. What is left is mostly the layout itself: ``HSET`` is 30%
of the script's instructions (the job hashes, a listpack growing by one realloc per field, and
the run's ``tasks`` / ``children`` hashes), parsing the 100k records 16-18%, ``ZADD`` 4%,
``MSET`` 3.5%, the rest Lua building strings and tables. Then (16:40 UTC, ``--callgrind``):
a task without retries has no ``max_attempts`` field (1 is every reader's default), one field
less in each of 100k job hashes: 6.22 -> 5.97 G instructions WIDE, 5.34 -> 5.09 G LAYERED
(``HSET`` 30% -> 28% of the script). Each field is a listpack append, and a realloc that copies
when the listpack crosses a jemalloc size class (a 7-field root's hash is about 130 bytes, just
past the 128-byte class). Then (19:00-20:10 UTC, benchmarks/README.md "Build + submit"): no
``created`` on a run's jobs nor ``enqueued`` on its roots (readers take the run's), numbers
made text without a strtod or a string.format per task, and the records sent as columns in runs
of equal values: 5.98 -> 4.87 G instructions WIDE, 5.12 -> 4.40 G LAYERED.
Then (2026-12-05): a run of 20,000 tasks or more is staged (orchestrator/submit.py
`_Staging`): chunks of 5,000 tasks, each encoded while Redis writes the one before, then a
commit. The client's encode (0.5 s of CPU at 100k) now runs beside the script instead of
before it; Redis' work is the same (the roots go to a staging ZSET that the commit RENAMEs to
the empty wait ZSET; ``--callgrind`` sums the instructions of all the calls of a submit).
Where a 100k WIDE submit's wall time goes now (timestamps around each call, 07:20 UTC):
`Pipeline.build` 0.15 s and the children lists 0.025 s before the first chunk, then 20 chunks
at ~50 ms each, Redis-bound (the client encodes one in ~8 ms), the commit 24 ms.
"""

from __future__ import annotations

import argparse
import functools
import json as json_module
import os
import random
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ironforge_nb.dag import Pipeline
from ironforge_nb.local import RedisServer
from ironforge_nb.orchestrator import codec, submit
from ironforge_nb.queue import RedisConfig

_PATH = "benchmarks.bench_submit:"
RESULTS = Path(__file__).resolve().parent / "results" / "submit.json"
FIGURES = ("wall_build_s", "wall_submit_s", "wall_total_s", "cpu_build_s", "cpu_encode_s",
           "cpu_script_s", "cpu_redis_s")


def noop(item: Any = None, **_: Any) -> None:
    """The task of every benchmark pipeline (``item`` receives a map item)."""


def noop_gather(inc: list[Any]) -> None:
    """The WIDE pipeline's final gather."""


def wide(n: int, json: bool = False) -> Pipeline:
    """``n - 1`` independent mapped tasks, then one gather of them all."""
    p = Pipeline("wide")
    p.map("inc", _PATH + "noop" if json else noop, over=range(n - 1))
    p.task("gather", _PATH + "noop_gather" if json else noop_gather, after="inc")
    return p


def layered(n: int, json: bool = False, width: int = 100) -> Pipeline:
    """Layers of ``width`` tasks; each task after two random tasks of the layer above."""
    fn = _PATH + "noop" if json else noop
    rng = random.Random(7)
    p = Pipeline("layered")
    for i in range(n):
        layer, k = divmod(i, width)
        after = None
        if layer:
            after = [f"t{layer - 1}_{j}" for j in rng.sample(range(width), 2)]
        p.task(f"t{layer}_{k}", fn, after=after)
    return p


def _server_cpu(client: Any) -> tuple[float, float]:
    """(CPU seconds in scripts, whole server CPU seconds: user + sys) so far."""
    scripts = client.info("commandstats")
    usec = sum(int(v["usec"]) for k, v in scripts.items()
               if k in ("cmdstat_evalsha", "cmdstat_eval"))
    cpu = client.info("cpu")
    return usec / 1e6, float(cpu["used_cpu_user"]) + float(cpu["used_cpu_sys"])


def measure_once(make: Callable[[], Pipeline], cfg: RedisConfig) -> list[float]:
    """[wall build, wall submit, wall total, cpu build, cpu encode, cpu script, cpu server]."""
    client = cfg.client()
    s0, v0 = _server_cpu(client)
    c0, t0 = time.process_time(), time.perf_counter()
    pipeline = make()
    c1, t1 = time.process_time(), time.perf_counter()
    submit(pipeline, config=cfg)
    c2, t2 = time.process_time(), time.perf_counter()
    s1, v1 = _server_cpu(client)
    client.flushdb()
    return [t1 - t0, t2 - t1, t2 - t0, c1 - c0, c2 - c1, s1 - s0, v1 - v0]


def measure(label: str, make: Callable[[], Pipeline], cfg: RedisConfig,
            repeat: int) -> dict[str, Any]:
    """Print the best of ``repeat`` measurements of each figure; return them all."""
    runs = [measure_once(make, cfg) for _ in range(repeat)]
    best = [min(column) for column in zip(*runs, strict=True)]
    wb, ws, wt, cb, ce, cs, cv = best
    print(f"{label:<24} wall: build {wb:6.3f} s  submit {ws:6.3f} s  total {wt:6.3f} s | "
          f"cpu: build {cb:6.3f} s  encode {ce:6.3f} s  script {cs:6.3f} s  "
          f"redis {cv:6.3f} s  sum {cb + ce + cv:6.3f} s", flush=True)
    return {"best": dict(zip(FIGURES, best, strict=True)),
            "runs": [dict(zip(FIGURES, run, strict=True)) for run in runs]}


def _counted(n: int) -> dict[str, int]:
    """Instructions inside EVAL for one WIDE and one LAYERED submit of ``n`` tasks (pickle
    mode), on a redis-server under callgrind (the ``--callgrind`` child of one tree)."""
    import subprocess
    import tempfile

    from benchmarks.bench_lua_calls import callgrind_redis, dumps

    out = Path(tempfile.mkdtemp(prefix="bench-submit-cg-"))
    with callgrind_redis(out) as (client, pid):
        port = client.connection_pool.connection_kwargs["port"]
        cfg = RedisConfig(url=f"redis://127.0.0.1:{port}/0", namespace="bench",
                          socket_timeout=900)
        submit(wide(3), config=cfg)  # the scripts compiled outside the counts
        client.flushdb()
        for shape, build in (("WIDE", wide), ("LAYERED", layered)):
            pipeline = build(n)
            subprocess.run(["callgrind_control", "-z", str(pid)], check=True,
                           capture_output=True)
            submit(pipeline, config=cfg)
            subprocess.run(["callgrind_control", "-d", shape, str(pid)], check=True,
                           capture_output=True)
            client.flushdb()
    return dumps(out)


def _python_counted(n: int) -> dict[str, int]:
    """Instructions of this process (run under callgrind by `counted`) building and encoding
    one WIDE and one LAYERED pipeline of ``n`` tasks (pickle mode, a fixed run id), each phase
    between a ``callgrind_control -z`` and a ``-d`` (the process keeps running while
    callgrind_control waits for it to notice the command)."""
    import subprocess

    from ironforge_nb.dag.task import paused_gc
    from ironforge_nb.orchestrator.submit import _encode

    def control(*args: str) -> None:
        proc = subprocess.Popen(["callgrind_control", *args, str(os.getpid())],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        while proc.poll() is None:
            pass

    cfg = RedisConfig(url="redis://127.0.0.1:1/0", namespace="bench")  # never connected
    for build in (wide, layered):  # imports and first-call costs outside the counts
        with paused_gc():
            _encode(build(100), None, "warm", cfg, None, "auto", 1.0)
    for shape, build in (("WIDE", wide), ("LAYERED", layered)):
        control("-z")
        pipeline = build(n)
        control("-d", f"{shape}_build")
        control("-z")
        with paused_gc():  # as submit() encodes
            _encode(pipeline, None, "bench-run", cfg, None, "auto", 1.0)
        control("-d", f"{shape}_encode")
    return {}


def counted(refs: list[str], n: int, python: bool = False) -> dict[str, dict[str, int]]:
    """The ``--callgrind`` measurement (see the module doc): tree -> shape -> instructions;
    with ``python``, the ``--callgrind-python`` one (shape_build, shape_encode)."""
    import subprocess
    import sys
    import tempfile

    from benchmarks.bench_lua_calls import ROOT, dumps, export_tree

    trees = {**{ref: export_tree(ref, Path(__file__).name) for ref in refs}, "this tree": ROOT}
    got: dict[str, dict[str, int]] = {}
    for name, tree in trees.items():
        script = [str(tree / "benchmarks" / Path(__file__).name)]
        env = dict(os.environ, PYTHONPATH=str(tree), PYTHONHASHSEED="0")
        if python:
            out = Path(tempfile.mkdtemp(prefix="bench-submit-pycg-"))
            subprocess.run(["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}/cg.out",
                            sys.executable, *script, "--callgrind-python-child", str(n)],
                           cwd=tree, check=True, capture_output=True, env=env)
            got[name] = dumps(out)
            continue
        proc = subprocess.run([sys.executable, *script, "--callgrind-child", str(n)], cwd=tree,
                              check=True, capture_output=True, text=True, env=env)
        got[name] = json_module.loads(proc.stdout.splitlines()[-1])
    if python:
        print(f"instructions of the Python process for {n:,} tasks (pickle mode, callgrind):")
        rows = [f"{shape}_{part}" for shape in ("WIDE", "LAYERED") for part in ("build", "encode")]
    else:
        print(f"instructions inside EVAL for one submit of {n:,} tasks (pickle mode, callgrind):")
        rows = ["WIDE", "LAYERED"]
    for row in rows:
        print(f"  {row:<15} " + "   ".join(
            f"{name} {got[name].get(row, 0):>15,} ({got[name].get(row, 0) / n:,.0f}/task)"
            for name in trees))
    return got


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000,10000,100000")
    parser.add_argument("--repeat", type=int, default=3, help="best of this many runs")
    parser.add_argument("--output", type=Path, default=RESULTS, help="JSON file to write")
    parser.add_argument("--callgrind", action="append", default=[],
                        help="a git commit whose submit script is counted too (repeatable)")
    parser.add_argument("--callgrind-python", action="store_true",
                        help="with --callgrind: count the Python build and encode instead")
    parser.add_argument("--callgrind-child", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--callgrind-python-child", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    if args.callgrind_child:
        codec.set_default_secret(codec.new_secret())
        print(json_module.dumps(_counted(args.callgrind_child)))
        return
    if args.callgrind_python_child:
        codec.set_default_secret(b"bench-submit-callgrind-secret-32b")
        _python_counted(args.callgrind_python_child)
        return
    if args.callgrind:
        counted(args.callgrind, sizes[-1], args.callgrind_python)
        return
    out: dict[str, Any] = {"started": time.strftime("%Y-%m-%dT%H:%M:%S"),
                           "load_start": [round(x, 2) for x in os.getloadavg()],
                           "repeat": args.repeat, "rows": {}}
    codec.set_default_secret(codec.new_secret())
    with RedisServer() as server:
        cfg = RedisConfig(url=server.url, namespace="bench", socket_timeout=120)
        for n in sizes:
            for shape, build in (("WIDE", wide), ("LAYERED", layered)):
                for json in (False, True):
                    label = f"{shape} {n:,} ({'JSON' if json else 'pickle'})"
                    out["rows"][label] = measure(label, functools.partial(build, n, json),
                                                 cfg, args.repeat)
        cfg.close()
    out["load_end"] = [round(x, 2) for x in os.getloadavg()]
    print(f"load average at start {out['load_start']}, at end {out['load_end']}")
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json_module.dumps(out, indent=2) + "\n")
    print(f"saved {args.output}")


if __name__ == "__main__":
    main()
