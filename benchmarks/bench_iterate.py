"""The exploration loop: a 100 MB DataFrame between two tasks, and a 10k-task pipeline
submitted again with one function changed (issue 12's figures).

1. ``frame``: a parent returns a 100 MB DataFrame (6.5M rows of two float64 columns), its child
   sums it. Contenders: IronForge (``ifn.connect()`` on a temporary home, 2 local workers: the
   frame goes to the home's result store as Parquet, Redis holds a reference); the floor, in
   one process: make the frame, write it as Parquet to the same disk, read it back, sum it;
   Dask distributed (``LocalCluster(n_workers=2, processes=True)``), the parent pinned to one
   worker and the child to the other, so the frame crosses between worker processes. Each
   figure is the best of ``--repeat`` end-to-end times (submit to result); a floor round runs
   right before each IronForge and each Dask round (interleaved: a loaded machine slows them
   alike), and the floor is the best of those. CPU time is printed too (the floor's process;
   for IronForge the notebook's, the workers' with their executors' and the redis-server's),
   which a loaded machine moves far less than wall time. Before its timed rounds IronForge runs
   a small frame through both workers, untimed: a fresh executor imports pandas, pyarrow and
   this module at its first task (~0.35 s), which the floor's process has done before it is
   timed; a notebook's workers live on from one run to the next. The last line gives the
   ratios to the floor (target: <= 1.5x), and every round is saved to
   ``benchmarks/results/iterate-frame.json`` (next to ``--output``) under ``--label``.
1b. ``memory``: the same frame's peak memory, each side in a fresh process (peak RSS, VmHWM
   of ``/proc/self/status``, minus the process's RSS before the frame is made or read; not
   ``getrusage``'s ru_maxrss, which a process started by exec inherits from its parent): the
   floor writes it with ``DataFrame.to_parquet`` to a file and reads it with
   ``pd.read_parquet``;
   IronForge's worker side is `store.maybe_store` (Parquet to the result store, its size and
   SHA-256), its reader side `store.load_ref` (size and digest checked, then decoded).
2. ``layered``: 10,000 no-op tasks in 100 layers of 100, each after 2 random tasks of the
   layer above, ``cache=True``. A first run computes everything; then one task of layer 50 gets
   another function and the pipeline is submitted again: only it and its descendants run.
   Printed: time to settle of both runs, tasks run again, each submit's redis-server CPU time
   (``/proc/<pid>/schedstat``; INFO's main-thread CPU where that is not readable), taken
   with the local workers paused (SIGSTOP) so that only the submit is counted, not the
   workers claiming the jobs it queued; and the key computation in the notebook.
3. ``submit``: what the cache adds to a 10,000-task submit, best of ``--rounds`` interleaved
   rounds of five submits of the script alone, in fresh namespaces with no worker: the
   pipeline with the cache off, and on with no entry (10,000 misses); then the first run's
   results are written (with the result TTL, as a completion writes them), and the changed
   pipeline is submitted with the cache off, and on (5,857 hits, 4,143 misses), and the
   unchanged pipeline again (10,000 hits, against the first submit with the cache off).
   Server CPU as above; printed with the cost per miss and per hit (us). Every round is saved
   to ``benchmarks/results/iterate.json`` (``--output``) under ``--label`` (default "now").
   ``--compare REF`` (repeatable) runs the same rounds with the code of git commit REF too,
   interleaved round by round on the same server: each round runs in a child process of its
   tree (REF's exported to a temp dir with this script copied in; ``PYTHONPATH`` alone does not
   do: `bench_monitor`, imported below, puts its own checkout first on ``sys.path``).
3b. ``--callgrind [REF]``: the instructions redis-server executes inside EVALSHA (valgrind
   callgrind collecting in evalGenericCommand, `bench_lua_calls.callgrind_redis`) for each
   submit of one round, for this tree and each REF, and per miss / per hit over the same task
   uncached: load does not move them.

Usage: ``python benchmarks/bench_iterate.py [--parts frame,memory,layered,submit] [--repeat 3]
[--rows 6500000] [--rounds 5] [--compare REF] [--label now] [--output PATH]``, or
``--callgrind [REF]`` alone. Figures, never assertions; the machine is shared, so compare
contenders of one invocation.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import secrets
import tempfile
import time
from collections.abc import Callable
from contextlib import suppress
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from bench_monitor import paused  # SIGSTOP the local workers around a measurement

ROWS = 6_500_000
ROOT = Path(__file__).resolve().parents[1]


def make_frame(rows: int = ROWS) -> pd.DataFrame:
    """Two float64 columns: 16 bytes a row (6.5M rows: 104 MB)."""
    rng = np.random.default_rng(12)
    return pd.DataFrame({"a": rng.random(rows), "b": rng.random(rows)})


def total(frame: pd.DataFrame) -> float:
    return float(frame["a"].sum() + frame["b"].sum())


def floor(rows: int, folder: Path) -> tuple[float, float]:
    """Make, write as Parquet, read back and sum, in one process: (wall s, CPU s)."""
    start, cpu = time.perf_counter(), time.process_time()
    frame = make_frame(rows)
    path = folder / "floor.parquet"
    frame.to_parquet(path)
    value = total(pd.read_parquet(path))
    path.unlink()
    assert value > 0
    return time.perf_counter() - start, time.process_time() - cpu


def _cpu_of(pids: list[int]) -> float:
    """CPU seconds used so far by these processes and their children (psutil), plus this
    process."""
    import psutil

    used = time.process_time()
    for pid in pids:
        with suppress(psutil.NoSuchProcess):
            proc = psutil.Process(pid)
            for one in (proc, *proc.children(recursive=True)):
                with suppress(psutil.NoSuchProcess):
                    times = one.cpu_times()
                    used += times.user + times.system
    return used


def ironforge(rows: int, repeat: int, between: Callable[[], object] = lambda: None
              ) -> list[tuple[float, float]]:
    """(wall s, CPU s) of each round; CPU: this process, the workers with their executors and
    the redis-server, from submit to result."""
    import ironforge_nb as ifn
    from ironforge_nb.local.home import temporary_home

    times = []
    with temporary_home():
        conn = ifn.connect(workers=2)
        pids = [*conn.local_workers.pids,
                int(conn.config.client().info("server")["process_id"])]
        p = ifn.Pipeline("frame")
        p.task("frame", make_frame, params={"rows": rows}).then("total", total)
        # warm-up, not timed: each worker's executor imports pandas, pyarrow and this module at
        # its first task (~0.35 s), as the floor's process has them loaded before it is timed;
        # two runs at once, so that both workers take one (a 1.6 MB frame: it goes to the store)
        warm = ifn.Pipeline("frame-warmup")
        warm.task("frame", make_frame, params={"rows": 100_000}).then("total", total)
        for started in [warm.submit() for _ in range(2)]:
            started.wait(timeout=600).delete()
        for _ in range(repeat):
            between()
            start, cpu = time.perf_counter(), _cpu_of(pids)
            run = p.submit().wait(timeout=600)
            assert run.result("total") > 0, run
            times.append((time.perf_counter() - start, _cpu_of(pids) - cpu))
            run.delete()
        conn.close()
    return times


def dask(rows: int, repeat: int, between: Callable[[], object] = lambda: None
         ) -> list[float] | str:
    try:
        from dask.distributed import Client, LocalCluster
    except ImportError:
        return "dask[distributed] is not installed (pip install -e '.[bench]')"
    times = []
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                      dashboard_address=None) as cluster, Client(cluster) as client:
        first, second = list(client.scheduler_info()["workers"])
        for i in range(repeat):
            between()
            start = time.perf_counter()
            frame = client.submit(make_frame, rows, workers=[first], pure=False, key=f"f{i}")
            result = client.submit(total, frame, workers=[second], key=f"t{i}")
            assert result.result() > 0
            times.append(time.perf_counter() - start)
            del frame, result
    return times


def part_frame(rows: int, repeat: int, label: str = "now", output: Path | None = None
               ) -> None:
    print(f"\n1. parent -> child, a {rows:,}-row frame ({rows * 16 / 1e6:.0f} MB), best of "
          f"{repeat}")
    floors: list[tuple[float, float]] = []
    with tempfile.TemporaryDirectory() as tmp:
        rounds = ironforge(rows, repeat, lambda: floors.append(floor(rows, Path(tmp))))
        theirs = dask(rows, repeat, lambda: floors.append(floor(rows, Path(tmp))))
    base, base_cpu = min(w for w, _ in floors), min(c for _, c in floors)
    ours, ours_cpu = min(w for w, _ in rounds), min(c for _, c in rounds)
    print(f"   floor (make + Parquet write + read + sum, one process): {base:6.2f} s "
          f"(best of {len(floors)}, interleaved), CPU {base_cpu:.2f} s")
    print(f"   IronForge NB (2 workers, result store):                  {ours:6.2f} s "
          f"= {ours / base:.2f}x the floor; CPU {ours_cpu:.2f} s (all its processes) = "
          f"{ours_cpu / base_cpu:.2f}x the floor's")
    best = None
    if isinstance(theirs, str):
        print(f"   Dask distributed: skipped, {theirs}")
    else:
        best = min(theirs)
        print(f"   Dask distributed (2 worker processes):                   {best:6.2f} s "
              f"= {best / base:.2f}x the floor; IronForge / Dask = {ours / best:.2f}")
    load = os.getloadavg()[0]
    verdict = "met" if ours / base <= 1.5 else "NOT met"
    print(f"   => IronForge / floor: {ours / base:.2f}x wall, {ours_cpu / base_cpu:.2f}x CPU "
          f"(target <= 1.5x: {verdict} in wall time); load average {load:.1f}")
    if output is not None:
        saved = json.loads(output.read_text()) if output.exists() else {}
        saved[label] = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
                        "load_average": round(load, 2), "cores": os.cpu_count(), "rows": rows,
                        "unit": "seconds, end to end (submit to the child's result)",
                        "ratio_wall": round(ours / base, 3),
                        "ratio_cpu": round(ours_cpu / base_cpu, 3),
                        "ironforge_over_dask": None if best is None else round(ours / best, 3),
                        "floor": [[round(w, 3), round(c, 3)] for w, c in floors],
                        "ironforge": [[round(w, 3), round(c, 3)] for w, c in rounds],
                        "dask": None if best is None else [round(w, 3) for w in theirs]}
        output.write_text(json.dumps(saved, indent=2) + "\n")


_MEMORY = """
import os, sys
from pathlib import Path
import pandas as pd
import pyarrow.parquet
sys.path.insert(0, {bench!r})
from bench_iterate import make_frame
from ironforge_nb.orchestrator import store
from ironforge_nb.queue.config import RedisConfig

side, rows, folder, url = sys.argv[1], int(sys.argv[2]), Path(sys.argv[3]), sys.argv[4]
config = RedisConfig(url=url, namespace="mem", result_store=str(folder / "store"))
def rss():
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
base = rss()
if side == "floor-write":
    make_frame(rows).to_parquet(folder / "floor.parquet")
elif side == "floor-read":
    frame = pd.read_parquet(folder / "floor.parquet")
elif side == "write":
    ref = store.maybe_store(config, make_frame(rows), None, run="r", task="t", job="r.0",
                            token="1", json_mode=False)
    (folder / "ref").write_bytes(ref)
else:
    frame = store.load_ref((folder / "ref").read_bytes(), None, "r.0")
with open("/proc/self/status") as fh:
    peak = next(int(line.split()[1]) * 1024 for line in fh if line.startswith("VmHWM:"))
print(peak - base)
"""


def part_memory(rows: int) -> None:
    import subprocess
    import sys

    from ironforge_nb.local import RedisServer

    size = rows * 16
    print(f"\n1b. peak memory per side, a {size / 1e6:.0f} MB frame (peak RSS - RSS before; "
          "each side in its own process, Linux)")
    code = _MEMORY.format(bench=str(Path(__file__).parent))
    with tempfile.TemporaryDirectory() as tmp, RedisServer() as server:
        peaks = {}
        for side in ("floor-write", "floor-read", "write", "read"):
            out = subprocess.run([sys.executable, "-c", code, side, str(rows), tmp,
                                  server.url], capture_output=True, text=True, check=True)
            peaks[side] = int(out.stdout.split()[-1])
    for side, floor_side in (("write", "floor-write"), ("read", "floor-read")):
        print(f"   {side:5s}: floor {peaks[floor_side] / 2**20:6.0f} MiB, IronForge NB "
              f"{peaks[side] / 2**20:6.0f} MiB = {peaks[side] / peaks[floor_side]:.2f}x "
              f"({peaks[side] / size:.2f}x the frame)")
    print(f"   load average {os.getloadavg()[0]:.1f}")


# ---------------------------------------------------------------------- layered + cache


def noop(**_: Any) -> None:
    """Every task of the layered pipeline."""


def noop_changed(**_: Any) -> int:
    """The changed function of the second submit."""
    return 1


def layered(changed: str | None = None, n: int = 10_000, width: int = 100) -> Any:
    import ironforge_nb as ifn

    rng = random.Random(7)
    p = ifn.Pipeline("layered", cache=True)
    for i in range(n):
        layer, k = divmod(i, width)
        after = [f"t{layer - 1}_{j}" for j in rng.sample(range(width), 2)] if layer else None
        name = f"t{layer}_{k}"
        p.task(name, noop_changed if name == changed else noop, after=after)
    return p


def _script_ms(client: Any) -> float:
    """redis-server's CPU time (ms, its main thread's ``/proc/<pid>/schedstat``, Linux) when
    it runs here, else INFO's main-thread CPU (ms resolution). Either counts CPU, not wall
    time, so a loaded machine preempting the server does not inflate it."""
    pid = int(client.info("server")["process_id"])
    try:
        with open(f"/proc/{pid}/schedstat") as fh:
            return int(fh.read().split()[0]) / 1e6
    except OSError:
        cpu = client.info("cpu")
        return (float(cpu["used_cpu_user_main_thread"]) +
                float(cpu["used_cpu_sys_main_thread"])) * 1e3


def _timed(p: Any, config: Any, pids: list[int], wait: bool = True, **kw: Any
           ) -> tuple[Any, float, float, float]:
    """(run, submit wall s, server ms spent on the submit, settle s (0 without ``wait``)),
    the submit counted with the workers ``pids`` paused."""
    client = config.client()
    with paused(pids):
        before = _script_ms(client)
        start = time.perf_counter()
        run = p.submit(config=config, **kw)
        submitted = time.perf_counter()
        script = _script_ms(client) - before
    if not wait:
        return run, submitted - start, script, 0.0
    run.wait(timeout=900)
    return run, submitted - start, script, time.perf_counter() - start


def part_layered() -> None:
    import ironforge_nb as ifn
    from ironforge_nb.local.home import temporary_home
    from ironforge_nb.orchestrator.cachekey import cache_lines

    print("\n2. a 10,000-task LAYERED pipeline (100 x 100, 2 parents), cache=True")
    with temporary_home():
        conn = ifn.connect(workers=2)
        cfg = conn.config
        pids = list(conn.local_workers.pids)
        _full, f_submit, f_script, f_settle = _timed(layered(), cfg, pids)
        print(f"   first run (all computed):    submit {f_submit:5.2f} s (server CPU "
              f"{f_script:6.1f} ms), settled in {f_settle:6.2f} s")
        changed = layered("t50_0")
        again, a_submit, a_script, a_settle = _timed(changed, cfg, pids)
        ran = int((again.to_dataframe()["cached"].isna()).sum())
        print(f"   t50_0 changed, resubmitted:  submit {a_submit:5.2f} s (server CPU "
              f"{a_script:6.1f} ms), settled in {a_settle:6.2f} s; {ran:,} tasks ran "
              f"(t50_0 and its descendants), {10_000 - ran:,} cached")
        print(f"   settle time ratio {a_settle / f_settle:.2f} for {ran / 10_000:.2f} of the "
              "tasks")
        plain = cfg.with_namespace("nocache")  # no worker serves it: only the submit counts
        _run, p_submit, p_script, _settle = _timed(changed, plain, pids, wait=False,
                                                   cache=False)
        print(f"   the same submit, cache off:  submit {p_submit:5.2f} s (server CPU "
              f"{p_script:6.1f} ms): the cache adds {a_script - p_script:+.1f} ms of server CPU "
              "time")
        dag = changed.build()
        order = [dag.data(t) for t in dag.topological_order()]
        start = time.perf_counter()
        cache_lines(order, {t: i for i, t in enumerate(dag.nodes)}, "layered", "x", {}, True)
        print(f"   computing the 10,000 keys in the notebook: "
              f"{(time.perf_counter() - start) * 1e3:.0f} ms")
        conn.close()


_ROUND = ("off", "misses", "changed off", "hits", "all hits")  # one round's submits, in order


def submit_round(url: str, callgrind: int | None = None) -> dict[str, float]:
    """One round of the ``submit`` part on the (empty or FLUSHALLed) server at ``url``: the
    five submits of `_ROUND`, each one's redis-server CPU ms. With ``callgrind`` (the pid of a
    redis-server under ``valgrind --tool=callgrind``), its counters are zeroed before each
    submit and dumped after it, the dump named after the submit."""
    import subprocess

    import redis

    from ironforge_nb.orchestrator import codec
    from ironforge_nb.orchestrator.run_transitions import RunTransitions
    from ironforge_nb.orchestrator.submit import _encode
    from ironforge_nb.queue.config import RedisConfig

    codec.set_default_secret(secrets.token_bytes(32))
    first, changed = layered(), layered("t50_0")
    client = redis.Redis.from_url(url)
    client.flushall()

    def control(*args: str) -> None:
        if callgrind is not None:
            subprocess.run(["callgrind_control", *args, str(callgrind)], check=True,
                           capture_output=True)

    def submit(p: Any, cfg: RedisConfig, cache: bool, name: str) -> tuple[str, float]:
        rid, _cfg, _secret, call = _encode(p, None, None, cfg, None, "auto", 1.0, None, cache)
        scripts = RunTransitions(cfg)
        control("-z")
        before = _script_ms(client)
        assert scripts.submit_run(*call) == "created"
        spent = _script_ms(client) - before
        control("-d", name.replace(" ", "_"))
        return rid, spent

    ns = "s" + secrets.token_hex(3)
    slow: dict[str, Any] = {} if callgrind is None else {"socket_timeout": 600}  # valgrind
    on, off = (RedisConfig(url=url, namespace=ns + tag, **slow) for tag in ("", "off"))
    figures = {"off": submit(first, off, False, "off")[1]}
    run_id, figures["misses"] = submit(first, on, True, "misses")
    pipe = client.pipeline(transaction=False)  # every job of the first run completed
    ttl_ms = round(on.result_ttl * 1000)
    for i in range(10_000):
        pipe.set(on.keys.result(f"{run_id}.{i}"), b"x" * 40, px=ttl_ms)
    pipe.execute()
    figures["changed off"] = submit(changed, off, False, "changed off")[1]
    figures["hits"] = submit(changed, on, True, "hits")[1]
    figures["all hits"] = submit(first, on, True, "all hits")[1]
    return figures


def _added(best: dict[str, float]) -> dict[str, float]:
    """What the cache adds: 10,000 misses, the edit-and-rerun, 10,000 hits."""
    return {"misses": best["misses"] - best["off"], "hits": best["hits"] - best["changed off"],
            "all hits": best["all hits"] - best["off"]}


def part_submit(rounds: int, label: str = "now", output: Path | None = None,
                compare: list[str] | None = None) -> None:
    """The submit script alone, cache off / on, no worker (see the module docstring); with
    ``compare``, the same rounds with the code of those commits too, interleaved."""
    from ironforge_nb.local import RedisServer

    print(f"\n3. what the cache adds to a 10,000-task submit: submit_run alone, server CPU, "
          f"best of {rounds} interleaved rounds")
    trees = {**{ref: _export(ref) for ref in compare or []}, "this tree": ROOT}
    best: dict[str, dict[str, float]] = {name: {} for name in trees}
    every: list[dict[str, float]] = []
    with RedisServer() as server:
        for r in range(rounds):
            order = list(trees) if r % 2 == 0 else list(trees)[::-1]
            for name in order:
                if compare:
                    figures = _child_round(trees[name], server.url)
                else:
                    figures = submit_round(server.url)
                for key, ms in figures.items():
                    best[name][key] = min(best[name].get(key, float("inf")), ms)
                if name == "this tree":
                    every.append({k: round(v, 2) for k, v in figures.items()})
    load = os.getloadavg()[0]
    for name in trees:
        if len(trees) > 1:
            print(f"   -- {name}")
        _print_submit(best[name])
    print(f"   load average {load:.1f}")
    mine = best["this tree"]
    if output is not None:
        added = _added(mine)
        saved = json.loads(output.read_text()) if output.exists() else {}
        saved[label] = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
                        "load_average": round(load, 2), "cores": os.cpu_count(),
                        "unit": "redis-server CPU ms per 10,000-task submit",
                        "best": {k: round(v, 2) for k, v in mine.items()},
                        "added_misses": round(added["misses"], 2),
                        "added_hits": round(added["hits"], 2),
                        "added_all_hits": round(added["all hits"], 2),
                        "rounds": every}
        if compare:
            saved[label]["compared"] = {ref: {k: round(v, 2) for k, v in best[ref].items()}
                                        for ref in compare}
        output.write_text(json.dumps(saved, indent=2) + "\n")


def _print_submit(best: dict[str, float]) -> None:
    added = _added(best)
    print(f"   first pipeline, cache off:                 {best['off']:6.1f} ms")
    print(f"   first pipeline, cache on, 10,000 misses:   {best['misses']:6.1f} ms "
          f"(the cache adds {added['misses']:+.1f} ms)")
    print(f"   changed pipeline, cache off:               {best['changed off']:6.1f} ms")
    print(f"   changed, cache on, 5,857 hits + 4,143 misses: {best['hits']:6.1f} ms "
          f"(the cache adds {added['hits']:+.1f} ms)")
    print(f"   first pipeline again, cache on, 10,000 hits: {best['all hits']:6.1f} ms "
          f"(the cache adds {added['all hits']:+.1f} ms)")
    print(f"   per task, over the same task uncached: a miss {added['misses'] / 10:+.2f} us, a "
          f"hit {added['all hits'] / 10:+.2f} us")


def _export(ref: str) -> Path:
    """The tree of commit ``ref`` in a temp dir, with this benchmark (and its helpers) in it."""
    from bench_lua_calls import export_tree

    return export_tree(ref, Path(__file__).name, "bench_monitor.py")


def _child_round(tree: Path, url: str, callgrind: int | None = None) -> dict[str, float]:
    """`submit_round` run by ``tree``'s copy of this file (its own code on ``sys.path``)."""
    import subprocess
    import sys

    env = dict(os.environ, PYTHONPATH=str(tree))
    argv = [sys.executable, str(tree / "benchmarks" / Path(__file__).name), "--submit-child",
            url, *([] if callgrind is None else ["--callgrind-pid", str(callgrind)])]
    proc = subprocess.run(argv, env=env, check=True, capture_output=True, text=True)
    figures: dict[str, float] = json.loads(proc.stdout.strip().splitlines()[-1])
    return figures


def part_callgrind(refs: list[str]) -> None:
    """``--callgrind``: instructions redis-server executes inside EVALSHA (callgrind, collecting
    in evalGenericCommand) for each submit of one round, for this tree and each ref; load does
    not move them."""
    from bench_lua_calls import callgrind_redis, dumps

    trees = {**{ref: _export(ref) for ref in refs}, "this tree": ROOT}
    got: dict[str, dict[str, float]] = {}
    for name, tree in trees.items():
        out = Path(tempfile.mkdtemp(prefix="bench-iterate-cg-"))
        with callgrind_redis(out) as (client, pid):
            port = client.connection_pool.connection_kwargs["port"]
            _child_round(tree, f"redis://127.0.0.1:{port}/0", pid)
            got[name] = {k.replace("_", " "): v for k, v in dumps(out).items()}
    print("\ninstructions inside EVALSHA per 10,000-task submit (callgrind), and what the cache "
          "adds per task:")
    for name, counts in got.items():
        added = _added(counts)
        print(f"  {name}: " + ", ".join(f"{k} {counts.get(k, 0):,}" for k in _ROUND))
        print(f"  {' ' * len(name)}  per miss {added['misses'] / 10_000:+,.0f}, per task of the "
              f"edit-and-rerun {added['hits'] / 10_000:+,.0f}, per hit "
              f"{added['all hits'] / 10_000:+,.0f}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0],
        epilog="Figures, never assertions; the machine is shared, so compare contenders of one "
        "invocation (the module docstring says how each is measured).")
    parser.add_argument("--parts", default="frame,layered,submit",
                        help="comma-separated: frame (100 MB DataFrame parent -> child vs the "
                        "Parquet floor and Dask; ratio to the floor, target <= 1.5x), memory "
                        "(its peak memory per side), layered (10k-task pipeline run, then "
                        "resubmitted with one function changed), submit (what the cache adds "
                        "to a 10k-task submit: 10,000 misses, 5,857 hits + 4,143 misses, "
                        "10,000 hits; us per miss and per hit) (default: frame,layered,submit)")
    parser.add_argument("--repeat", type=int, default=3,
                        help="frame: rounds per contender, best kept (default: 3)")
    parser.add_argument("--rows", type=int, default=ROWS,
                        help=f"frame/memory: rows of two float64 columns (default: {ROWS:,}, "
                        "104 MB)")
    parser.add_argument("--rounds", type=int, default=5,
                        help="submit: interleaved rounds, best kept (default: 5)")
    parser.add_argument("--compare", action="append", default=[],
                        help="submit: a git commit whose code runs the same rounds too, "
                        "interleaved round by round (repeatable)")
    parser.add_argument("--callgrind", action="append", default=None, nargs="?", const="",
                        help="submit: count instructions instead (callgrind) for this tree and "
                        "each commit given (repeatable; alone: this tree only)")
    parser.add_argument("--submit-child", help=argparse.SUPPRESS)
    parser.add_argument("--callgrind-pid", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--label", default="now",
                        help="name the figures are saved under (default: now)")
    parser.add_argument("--output", type=Path,
                        default=Path(__file__).parent / "results" / "iterate.json",
                        help="submit figures (JSON, by label); frame figures go next to it "
                        "as <name>-frame.json (default: benchmarks/results/iterate.json)")
    args = parser.parse_args()
    if args.submit_child:
        print(json.dumps(submit_round(args.submit_child, args.callgrind_pid)))
        return
    if args.callgrind is not None:
        part_callgrind([ref for ref in args.callgrind if ref])
        return
    parts = args.parts.split(",")
    if "frame" in parts:
        part_frame(args.rows, args.repeat, args.label,
                   args.output.with_name(args.output.stem + "-frame.json"))
    if "memory" in parts:
        part_memory(args.rows)
    if "layered" in parts:
        part_layered()
    if "submit" in parts:
        part_submit(args.rounds, args.label, args.output, args.compare)


if __name__ == "__main__":
    main()
