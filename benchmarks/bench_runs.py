"""DAG runs end to end: IronForge NB vs Dask distributed and Ray, same machine, same invocation.

``python benchmarks/bench_runs.py [--quick] [--only submit,wide,chain,layered,memory,dask,ray]``

Phases (figures only, never assertions; the 2 shared cores make single runs noisy, so compare
rows of one invocation):

* **submit**: build + submit time of 1k / 10k / 100k-task WIDE pipelines (a map of n-1 no-op
  tasks and a final gather) into a namespace no worker serves. Target: 10k tasks <= 0.5 s.
* **wide / chain / layered**: an embedded redis-server and 2 local worker processes (as
  ``ifn.connect()`` starts them, 1 executor each, default options, in a temporary home made
  for the phase and removed after it) run no-op tasks:
  WIDE = 10,000 independent tasks + a final gather of their results, CHAIN = 1,000 dependent
  tasks (each receives its parent's result), LAYERED = 100 layers x 100 tasks with 2 random
  parents each from the layer above. Timed from submit to `Run.wait` returning (the pipeline
  is built before the clock starts; its build time is reported apart); each shape runs
  ``--repeat`` times (3) and the median run is reported, since single runs are noisy here.
  "CPU per task" adds the CPU time of this process and all its descendants (server, workers,
  executors; for Dask: scheduler, nannies, workers): a figure the machine's load moves less.
* **dask**: the same three shapes built with ``dask.delayed`` (build time reported) and run on
  ``LocalCluster(n_workers=2, processes=True, threads_per_worker=1)``, once each; timed around
  ``dask.compute`` of one collection (LAYERED adds a final task after every task that has no
  child, so that one graph covers them all).
* **ray**: the same three shapes with ``@ray.remote`` functions and object refs as the
  dependencies, on ``ray.init(num_cpus=2)`` (2 worker processes), in Ray's own virtualenv
  (``.venv-bench-ray``, created by ``benchmarks/setup_envs.sh ray``: Ray's pinned dependencies
  stay out of the project's venv) as a subprocess of this script, run right after Dask's
  phase; method in ``benchmarks/peers/ray_runs.py``. Ray submits as it builds, so its clock
  runs from the first ``.remote()`` to ``ray.get`` of the final ref (build reported as 0); its
  CPU per task counts the driver, GCS, raylet and Ray's workers. Each shape runs ``--repeat``
  times (median), as IronForge's; Dask's once. Skipped, with a note, when the env is missing.
* **memory**: RSS of the 2 worker processes and their executors, sampled with psutil every
  0.1 s during a 100,000-task WIDE run (its final task comes after all without reading their
  results: the figure is about the workers, not one task holding 100k results); start / peak
  / end.

Targets (issues 4 and 14): build + submit 10k <= 0.5 s and 100k <= 1.5 s; WIDE and LAYERED
>= 5x the best of Dask's and Ray's tasks/s; CHAIN <= 0.3 ms per hop; worker memory flat over
100k tasks. The "ratio" column compares IronForge with the best peer of the same invocation.
Prints a markdown table (the README's) and saves every figure to
``benchmarks/results/runs.json`` (with the load average at start and end, and the machine's
idle-CPU setting, `benchmarks/machine.py`: the CHAIN hop moves with it).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import ironforge_nb as ifn
from benchmarks.machine import describe, idle_state
from benchmarks.peers._shapes import cpu_seconds, layered_parents
from ironforge_nb.local import RedisServer
from ironforge_nb.local.home import temporary_home
from ironforge_nb.orchestrator import codec, submit
from ironforge_nb.queue import RedisConfig

ROOT = Path(__file__).resolve().parents[1]
RESULTS = Path(__file__).resolve().parent / "results" / "runs.json"
RAY_PYTHON = ROOT / ".venv-bench-ray" / "bin" / "python"
PHASES = ("submit", "wide", "chain", "layered", "memory", "dask", "ray")


# ---------------------------------------------------------------------- task functions


def noop(item: Any = None) -> None:
    """A WIDE task: does nothing with its item."""


def gather(t: list[Any]) -> int:
    """WIDE's final task: receives every result."""
    return len(t)


def done() -> None:
    """The memory run's final task: after every task, reads no result."""


def first() -> int:
    """The first task of CHAIN and LAYERED."""
    return 0


def step(x: Any) -> Any:
    """A CHAIN task: passes its parent's result on."""
    return x


def join(a: Any, b: Any) -> None:
    """A LAYERED task below the first layer: receives its two parents' results."""


def done_all(*_: Any) -> None:
    """Dask's LAYERED final task: after every task that has no child."""


# ---------------------------------------------------------------------- IronForge shapes


def wide_pipeline(n: int, final: bool = True) -> ifn.Pipeline:
    """``n`` independent tasks (a map), then a gather of them all (or an order-only end)."""
    p = ifn.Pipeline("wide")
    p.map("t", noop, over=range(n))
    p.task("gather", gather, after="t") if final else p.task("end", done, after="t")
    return p


def chain_pipeline(n: int) -> ifn.Pipeline:
    """``n`` tasks, each after the previous one."""
    p = ifn.Pipeline("chain")
    p.task("c0", first)
    for i in range(1, n):
        p.task(f"c{i}", step, after=f"c{i - 1}")
    return p


def layered_pipeline(layers: int, width: int) -> ifn.Pipeline:
    """``layers`` x ``width`` tasks, 2 random parents each from the layer above."""
    p = ifn.Pipeline("layered")
    for i, parents in enumerate(layered_parents(layers, width)):
        name = f"l{i // width}_{i % width}"
        if parents:
            p.task(name, join, after=[f"l{a}_{b}" for a, b in parents])
        else:
            p.task(name, first)
    return p


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    """(seconds, value) of one call."""
    start = time.perf_counter()
    value = fn()
    return time.perf_counter() - start, value


def figures(n: int, build: float, took: float, cpu: float) -> dict[str, float]:
    """The record of one measured run of ``n`` tasks."""
    return {"tasks": n, "build_s": build, "run_s": took, "tasks_per_s": n / took,
            "ms_per_task": took / n * 1000, "cpu_ms_per_task": cpu / n * 1000}


def bench_submit(sizes: list[int], out: dict[str, Any]) -> None:
    """Build and submit times into a namespace that no worker serves."""
    codec.set_default_secret(codec.new_secret())
    with RedisServer() as server:
        for n in sizes:
            cfg = RedisConfig(url=server.url, namespace=f"submit-{n}", socket_timeout=300)
            build, p = timed(lambda n=n: wide_pipeline(n - 1))
            send, _ = timed(lambda p=p, cfg=cfg: submit(p, config=cfg))
            out["submit"][str(n)] = {"build_s": build, "submit_s": send, "total_s": build + send}
            print(f"  submit {n:>7,} tasks: build {build:.3f} s + submit {send:.3f} s "
                  f"= {build + send:.3f} s", flush=True)
            cfg.client().flushdb()
            cfg.close()
    codec.set_default_secret(None)


def run_ironforge(label: str, make: Callable[[], ifn.Pipeline], n: int) -> dict[str, float]:
    """Build a pipeline, then time submit + wait on the connected workers."""
    build, p = timed(make)
    cpu = cpu_seconds()
    took, run = timed(lambda: p.submit().wait())
    cpu = cpu_seconds() - cpu
    if run.status is not ifn.RunStatus.SUCCEEDED:
        raise RuntimeError(f"{label} run ended {run.status}: {run.counts()}")
    print(f"  ironforge {label:<8} {n:>6,} tasks: build {build:.3f} s, run {took:.3f} s "
          f"({n / took:,.0f} tasks/s, {took / n * 1000:.3f} ms/task, "
          f"cpu {cpu / n * 1000:.3f} ms/task)", flush=True)
    return figures(n, build, took, cpu)


def bench_ironforge(sizes: dict[str, int], phases: set[str], out: dict[str, Any],
                    repeat: int) -> None:
    """WIDE, CHAIN and LAYERED on an embedded server with 2 local workers, each run
    ``repeat`` times (the median run is reported)."""
    conn = ifn.connect(workers=2)
    try:
        run_ironforge("warm-up", lambda: wide_pipeline(300), 301)
        shapes = {
            "wide": (lambda: wide_pipeline(sizes["wide"]), sizes["wide"] + 1),
            "chain": (lambda: chain_pipeline(sizes["chain"]), sizes["chain"]),
            "layered": (lambda: layered_pipeline(sizes["layers"], 100), sizes["layers"] * 100),
        }
        for shape, (make, n) in shapes.items():
            if shape in phases:
                rows = sorted((run_ironforge(shape, make, n) for _ in range(repeat)),
                              key=lambda row: row["run_s"])
                median = dict(rows[len(rows) // 2])
                median["samples_run_s"] = [row["run_s"] for row in rows]
                out["ironforge"][shape] = median
    finally:
        conn.close()


# ---------------------------------------------------------------------- memory


def sample_rss(pids: Callable[[], list[int]], stop: threading.Event,
               samples: list[tuple[float, int, int]]) -> None:
    """Append (time, workers' RSS, executors' RSS) every 0.1 s until ``stop``."""
    import psutil

    start = time.perf_counter()
    while not stop.is_set():
        workers = executors = 0
        for pid in pids():
            try:
                proc = psutil.Process(pid)
                workers += proc.memory_info().rss
                executors += sum(c.memory_info().rss for c in proc.children())
            except psutil.Error:
                continue
        samples.append((time.perf_counter() - start, workers, executors))
        stop.wait(0.1)


def bench_memory(n: int, out: dict[str, Any]) -> None:
    """Worker and executor RSS over an ``n``-task WIDE run."""
    conn = ifn.connect(workers=2)
    try:
        assert conn.local_workers is not None
        local = conn.local_workers
        run_ironforge("warm-up", lambda: wide_pipeline(300), 301)
        p = wide_pipeline(n, final=False)
        stop, samples = threading.Event(), []
        sampler = threading.Thread(target=sample_rss, args=(lambda: local.pids, stop, samples))
        sampler.start()
        try:
            took, _ = timed(lambda: p.submit().wait())
        finally:
            stop.set()
            sampler.join()
    finally:
        conn.close()
    mib = 1 / 2**20
    row = {"tasks": n + 1, "run_s": took, "tasks_per_s": (n + 1) / took, "samples": len(samples)}
    for i, who in ((1, "workers"), (2, "executors")):
        values = [s[i] for s in samples]
        row[who] = {"start_mib": values[0] * mib, "peak_mib": max(values) * mib,
                    "end_mib": values[-1] * mib}
        print(f"  memory {who:<9} (2 processes, RSS sum): start {values[0] * mib:6.1f} MiB, "
              f"peak {max(values) * mib:6.1f} MiB, end {values[-1] * mib:6.1f} MiB", flush=True)
    print(f"  memory run: {n + 1:,} tasks in {took:.1f} s ({(n + 1) / took:,.0f} tasks/s)")
    out["memory"] = row


# ---------------------------------------------------------------------- Dask


def dask_graphs(sizes: dict[str, int]) -> dict[str, Callable[[], tuple[Any, int]]]:
    """Builders of the three shapes with dask.delayed: () -> (final object, task count)."""
    from dask import delayed

    def wide() -> tuple[Any, int]:
        parts = [delayed(noop)(i) for i in range(sizes["wide"])]
        return delayed(gather)(parts), sizes["wide"] + 1

    def chain() -> tuple[Any, int]:
        x = delayed(first)()
        for _ in range(1, sizes["chain"]):
            x = delayed(step)(x)
        return x, sizes["chain"]

    def layered() -> tuple[Any, int]:
        width, nodes = 100, []
        parents = layered_parents(sizes["layers"], width)
        for pair in parents:
            if pair:
                (a, b), (c, d) = pair
                nodes.append(delayed(join)(nodes[a * width + b], nodes[c * width + d]))
            else:
                nodes.append(delayed(first)())
        # one final task after every task without children, so that one collection (one
        # graph) covers all: computing 10k collections would merge 10k graphs client-side
        has_child = {a * width + b for pair in parents for a, b in pair}
        ends = [node for i, node in enumerate(nodes) if i not in has_child]
        return delayed(done_all)(*ends), len(nodes) + 1

    return {"wide": wide, "chain": chain, "layered": layered}


def bench_dask(sizes: dict[str, int], phases: set[str], out: dict[str, Any]) -> None:
    """The three shapes on a 2-process LocalCluster."""
    try:
        import dask
        from distributed import Client, LocalCluster
    except ImportError:
        print("  dask: not installed (pip install 'dask[distributed]'); skipped")
        return
    out["dask_version"] = dask.__version__
    with LocalCluster(n_workers=2, processes=True, threads_per_worker=1, dashboard_address=None,
                      silence_logs=logging.CRITICAL) as cluster, Client(cluster) as client:
        assert client.scheduler_info()["workers"]
        dask.compute([dask.delayed(noop)(i) for i in range(300)])  # warm-up
        for shape, build_graph in dask_graphs(sizes).items():
            if shape not in phases:
                continue
            build, (graph, n) = timed(build_graph)
            cpu = cpu_seconds()
            took, _ = timed(lambda graph=graph: dask.compute(graph))  # the client's scheduler
            cpu = cpu_seconds() - cpu
            out["dask"][shape] = figures(n, build, took, cpu)
            print(f"  dask      {shape:<8} {n:>6,} tasks: build {build:.3f} s, run {took:.3f} s "
                  f"({n / took:,.0f} tasks/s, {took / n * 1000:.3f} ms/task, "
                  f"cpu {cpu / n * 1000:.3f} ms/task)", flush=True)


# ---------------------------------------------------------------------- Ray


def bench_ray(sizes: dict[str, int], phases: set[str], out: dict[str, Any],
              repeat: int) -> None:
    """The three shapes on Ray, in its own virtualenv (``peers/ray_runs.py``)."""
    if not RAY_PYTHON.exists():
        out["ray_skipped"] = ".venv-bench-ray missing: run benchmarks/setup_envs.sh ray"
        print(f"  ray: {out['ray_skipped']}; skipped")
        return
    shapes = [s for s in ("wide", "chain", "layered") if s in phases]
    cmd = [str(RAY_PYTHON), str(ROOT / "benchmarks" / "peers" / "ray_runs.py"),
           "--wide", str(sizes["wide"]), "--chain", str(sizes["chain"]),
           "--layers", str(sizes["layers"]), "--shapes", ",".join(shapes),
           "--repeat", str(repeat)]
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, text=True, timeout=1800, cwd=ROOT,
                          check=False)  # stderr (progress) goes to the terminal
    lines = proc.stdout.strip().splitlines()
    if proc.returncode != 0 or not lines:
        out["ray_skipped"] = f"ray_runs.py exited {proc.returncode}"
        print(f"  ray: {out['ray_skipped']}")
        return
    result = json.loads(lines[-1])
    out["ray_version"] = result["ray_version"]
    out["ray"] = result["shapes"]


# ---------------------------------------------------------------------- report


def table(out: dict[str, Any]) -> str:
    """The markdown summary: IronForge vs Dask and Ray per shape, with the ratio against the
    best peer of the same invocation, and the targets."""
    peers = ("dask", "ray")
    lines = ["| figure | IronForge NB | Dask | Ray | IronForge vs best peer | target |",
             "|---|---:|---:|---:|---:|---|"]
    for n, row in out["submit"].items():
        mark = {"10000": "<= 0.5 s", "100000": "<= 1.5 s"}.get(n, "")
        lines.append(f"| build + submit {int(n):,} tasks | {row['total_s']:.3f} s "
                     f"(build {row['build_s']:.3f} + submit {row['submit_s']:.3f}) | | | | "
                     f"{mark} |")
    for shape, target in (("wide", ">= 5x best peer"), ("layered", ">= 5x best peer"),
                          ("chain", "<= 0.3 ms/hop")):
        ours = out["ironforge"].get(shape)
        theirs = [out.get(peer, {}).get(shape) for peer in peers]
        if ours is None and not any(theirs):
            continue
        ran = [r for r in theirs if r]
        if shape == "chain":
            fmt = lambda r: "" if r is None else f"{r['ms_per_task']:.3f} ms/hop"  # noqa: E731
            best = min(ran, key=lambda r: r["ms_per_task"]) if ran else None
            x = best["ms_per_task"] / ours["ms_per_task"] if ours and best else 0.0
            ratio = ("" if not x else f"{x:.1f}x faster" if x >= 1 else f"{1 / x:.1f}x slower")
        else:
            fmt = lambda r: "" if r is None else f"{r['tasks_per_s']:,.0f} tasks/s"  # noqa: E731
            best = max(ran, key=lambda r: r["tasks_per_s"]) if ran else None
            ratio = f"{ours['tasks_per_s'] / best['tasks_per_s']:.1f}x" if ours and best else ""
        n = (ours or (ran[0] if ran else {})).get("tasks", 0)
        lines.append(f"| {shape.upper()} ({n:,} tasks) | {fmt(ours)} | {fmt(theirs[0])} | "
                     f"{fmt(theirs[1])} | {ratio} | {target} |")
        cpus = [(r or {}).get("cpu_ms_per_task") for r in (ours, *theirs)]
        peer_cpus = [c for c in cpus[1:] if c]
        cells = ["" if c is None else f"{c:.3f} ms" for c in cpus]
        less = (f"{min(peer_cpus) / cpus[0]:.1f}x less" if cpus[0] and peer_cpus else "")
        lines.append(f"| {shape.upper()} CPU per task (all processes) | {' | '.join(cells)} | "
                     f"{less} | |")
        builds = [(r or {}).get("build_s") for r in (ours, theirs[0])]
        cells = ["" if b is None else f"{b:.3f} s" for b in builds]
        ray_build = "(submits as it builds)" if theirs[1] else ""
        lines.append(f"| {shape.upper()} graph build | {' | '.join(cells)} | {ray_build} | | |")
    mem = out.get("memory")
    if mem:
        for who in ("workers", "executors"):
            m = mem[who]
            lines.append(f"| RSS of 2 {who}, {mem['tasks']:,}-task WIDE: start / peak / end | "
                         f"{m['start_mib']:.1f} / {m['peak_mib']:.1f} / {m['end_mib']:.1f} MiB"
                         " | | | | flat |")
    versions = ", ".join(f"{label} {out[key]}" for label, key in (("Dask", "dask_version"),
                                                                  ("Ray", "ray_version"))
                         if out.get(key))
    lines.append("")
    lines.append(f"Load average at start {out.get('load_start')}, at end {out.get('load_end')}"
                 f"; {versions or 'no peer ran'}"
                 + (f"; Ray skipped: {out['ray_skipped']}" if out.get("ray_skipped") else "")
                 + f"; {describe(out.get('idle', {}))}")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="small sizes: submit 1k/10k, WIDE 2k, CHAIN 200, LAYERED 20x100, "
                             "memory 10k")
    parser.add_argument("--only", default=",".join(PHASES),
                        help=f"comma-separated phases among {','.join(PHASES)}")
    parser.add_argument("--repeat", type=int, default=3,
                        help="runs of each IronForge and Ray shape; the median is reported (3)")
    parser.add_argument("--output", type=Path, default=RESULTS, help="JSON file to write")
    args = parser.parse_args()
    phases = {p.strip() for p in args.only.split(",") if p.strip()}
    unknown = phases - set(PHASES)
    if unknown:
        parser.error(f"unknown phase(s) {sorted(unknown)}; choose among {PHASES}")
    sizes = ({"wide": 2000, "chain": 200, "layers": 20, "memory": 10_000,
              "submit": [1000, 10_000]} if args.quick else
             {"wide": 10_000, "chain": 1000, "layers": 100, "memory": 100_000,
              "submit": [1000, 10_000, 100_000]})
    out: dict[str, Any] = {"quick": args.quick, "submit": {}, "ironforge": {}, "dask": {},
                           "ray": {}, "started": time.strftime("%Y-%m-%dT%H:%M:%S"),
                           "command": " ".join(["benchmarks/bench_runs.py", *sys.argv[1:]]),
                           "load_start": [round(x, 2) for x in os.getloadavg()],
                           "idle": idle_state()}
    if "submit" in phases:
        bench_submit(sizes["submit"], out)
    if phases & {"wide", "chain", "layered"}:
        with temporary_home():  # a fresh home: nothing of earlier runs in it, none left running
            bench_ironforge(sizes, phases, out, args.repeat)
    if "dask" in phases:
        bench_dask(sizes, phases if phases & {"wide", "chain", "layered"}
                   else {"wide", "chain", "layered"}, out)
    if "ray" in phases:
        bench_ray(sizes, phases if phases & {"wide", "chain", "layered"}
                  else {"wide", "chain", "layered"}, out, args.repeat)
    if "memory" in phases:
        with temporary_home():
            bench_memory(sizes["memory"], out)
    out["load_end"] = [round(x, 2) for x in os.getloadavg()]
    print()
    print(table(out))
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(out, indent=2) + "\n")
    print(f"\nsaved {args.output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
