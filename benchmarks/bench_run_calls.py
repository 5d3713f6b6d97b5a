"""Redis instructions per task of a WIDE and a LAYERED run, split by script and by command
(callgrind: load does not move them).

Two measurements, each on a redis-server under ``valgrind --tool=callgrind`` collecting only
inside ``evalGenericCommand`` (`bench_lua_calls.callgrind_redis`: the Lua VM and the commands
the scripts call; the request parsing and the reply writing outside scripts are not counted):

- ``split`` (default): the run's scripts driven directly, as a worker sends them, phase by
  phase: the submit (`submit_run`), then, while the run has ready tasks, the claims
  (`Queue.dequeue_many(w, 32, started=1)`: `claim_jobs`, the first lease of each started),
  the start marks of the held leases (`Queue.start([lease])`: `start_jobs`, one call per
  lease as an executor sends them) and the completions (`Queue.complete_many` of 32 leases,
  each with a no-op task's encoded result, no fetch: `complete_job`, with the run's
  bookkeeping and the release of the children). The shipped worker claims inside its
  completion calls (``fetch_next``); here that claim is counted under ``claim_jobs``. After
  each phase ``callgrind_control -d`` dumps the count; ``callgrind_annotate --inclusive=yes``
  splits each script's instructions by Redis command (the ``*Command`` functions: what the
  command itself runs, not the Lua VM's work to build its arguments and read its reply).
- ``--workers``: one run of each shape executed by 2 local workers (``ifn.connect(url,
  workers=2)``) pointed at the valgrind server, its total per task (submit included), what
  the worker's real call pattern costs.

``--compare REF`` (repeatable) runs the same in the tree of git commit REF (exported, this file
copied in, run as a child process with that tree first on ``sys.path``).

Usage: ``python benchmarks/bench_run_calls.py [--tasks 2000] [--workers] [--compare REF ...]``.
Figures, never assertions.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
from collections import defaultdict
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

SCRIPTS = ("submit_run", "claim_jobs", "start_jobs", "complete_job")
CLAIM = 32  # leases per claim (the worker's prefetch is about that for no-op tasks)
BATCH = 32  # completions per complete_job call (worker/settling.py COMPLETE_BATCH)


def _pipelines(n: int) -> dict[str, Any]:
    from benchmarks.bench_runs import layered_pipeline, wide_pipeline

    return {"WIDE": wide_pipeline(n - 1), "LAYERED": layered_pipeline(n // 100, 100)}


_WRAPPERS = {"evalGenericCommand", "evalShaCommand", "evalCommand", "processCommand",
             "lookupCommand", "call"}
_CALLS: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))  # dump -> cmd -> calls
_SEEN: dict[str, int] = {}


def _commandstats(client: Any) -> dict[str, int]:
    return {k: int(v["calls"]) for k, v in client.info("commandstats").items()}


def _dump(pid: int, name: str, client: Any) -> None:
    """Dump the instructions since the last dump under ``name``; add the commands Redis ran
    meanwhile (INFO commandstats) to that name's counts."""
    subprocess.run(["callgrind_control", "-d", name, str(pid)], check=True, capture_output=True)
    now = _commandstats(client)
    for cmd, calls in now.items():
        if calls > _SEEN.get(cmd, 0) and not cmd.startswith("cmdstat_info"):
            _CALLS[name][cmd.removeprefix("cmdstat_")] += calls - _SEEN.get(cmd, 0)
    _SEEN.clear()
    _SEEN.update(_commandstats(client))


def _by_command(dump: Path) -> dict[str, int]:
    """Inclusive instructions of each Redis ``*Command`` function in one callgrind dump."""
    text = subprocess.run(["callgrind_annotate", "--inclusive=yes", "--threshold=100",
                           str(dump)], check=True, capture_output=True, text=True).stdout
    got: dict[str, int] = {}
    for line in text.splitlines():
        m = re.match(r"\s*([\d,]+)\s+(?:\([^)]*\)\s+)?\S*:(\w+Command)\b", line)
        if m and m.group(2) not in got and m.group(2) not in _WRAPPERS and (
                re.fullmatch(r"[a-z]+Command", m.group(2))
                or m.group(2) == "luaRedisGenericCommand"):
            got[m.group(2)] = int(m.group(1).replace(",", ""))
    return got


def _read(out: Path) -> dict[str, Any]:
    """Sum the dumps by name: {name: {"total": instructions, "commands": {fn: instructions}}}."""
    got: dict[str, Any] = {}
    for dump in sorted(out.glob("cg.out.*")):
        text = dump.read_text()
        name = re.search(r"^desc: Trigger: dump (\w+)", text, re.M)
        total = re.search(r"^summary: (\d+)", text, re.M)
        if not (name and total):
            continue
        entry = got.setdefault(name.group(1), {"total": 0, "commands": defaultdict(int)})
        entry["total"] += int(total.group(1))
        for fn, count in _by_command(dump).items():
            entry["commands"][fn] += count
    return got


def _drive(shape: str, n: int, client: Any, pid: int, url: str, label: str = "") -> None:
    """Submit one run of ``shape`` and drive it to its end by hand, dumping after each phase
    (under ``label + shape``)."""
    import ironforge_nb as ifn
    from ironforge_nb.orchestrator import codec
    from ironforge_nb.queue import Queue, RedisConfig

    config = RedisConfig(url=url, namespace=f"cg{label}{shape.lower()}", socket_timeout=900)
    shape_in, shape = shape, label + shape
    pipeline = _pipelines(n)[shape_in]
    subprocess.run(["callgrind_control", "-z", str(pid)], check=True, capture_output=True)
    _SEEN.update(_commandstats(client))
    run = pipeline.submit(config=config)
    _dump(pid, f"{shape}_submit_run", client)
    queue = Queue("default", config)
    secret = codec.default_secret()
    while True:
        leases, held = [], []
        while True:
            got = queue.dequeue_many("w", CLAIM, started=1, timeout=0)
            if not got:
                break
            leases.extend(got)
            held.extend(got[1:])  # the first lease of each claim started with it
        _dump(pid, f"{shape}_claim_jobs", client)
        if not leases:
            break
        for lease in held:
            queue.start([lease])
        _dump(pid, f"{shape}_start_jobs", client)
        for i in range(0, len(leases), BATCH):
            part = leases[i:i + BATCH]
            results = [codec.encode_result(None, secret, json_mode=False, job_id=le.job_id,
                                           task="t") for le in part]
            queue.complete_many(part, results)
        _dump(pid, f"{shape}_complete_job", client)
    assert ifn.Run(run.id, config=config).status.value == "succeeded", run.id


def _with_workers(shape: str, n: int, client: Any, pid: int, url: str) -> None:
    """One run of ``shape`` executed by 2 local workers; one dump of the whole of it."""
    import ironforge_nb as ifn

    conn = ifn.connect(url, namespace=f"cgw{shape.lower()}", workers=2)
    try:
        _pipelines(300)["WIDE"].submit().wait()  # workers and executors warm, scripts loaded
        pipeline = _pipelines(n)[shape]
        subprocess.run(["callgrind_control", "-z", str(pid)], check=True, capture_output=True)
        _SEEN.update(_commandstats(client))
        pipeline.submit().wait()
        _dump(pid, f"{shape}_workers", client)
    finally:
        conn.close()


def child(n: int, workers: bool) -> dict[str, Any]:
    """This tree's figures (a child process of ``--compare``, or the process itself)."""
    from benchmarks.bench_lua_calls import callgrind_redis
    from ironforge_nb.orchestrator import codec

    if codec.default_secret() is None:
        codec.set_default_secret(codec.new_secret())
    out = Path(tempfile.mkdtemp(prefix="bench-run-cg-"))
    with callgrind_redis(out) as (client, pid):
        port = client.connection_pool.connection_kwargs["port"]
        url = f"redis://127.0.0.1:{port}/0"
        for shape in ("WIDE", "LAYERED"):  # every script compiled outside the counts
            _drive(shape, 200, client, pid, url, "warm")
        for shape in ("WIDE", "LAYERED"):
            if workers:
                _with_workers(shape, n, client, pid, url)
            else:
                _drive(shape, n, client, pid, url)
    got = _read(out)
    return {name: {"total": v["total"], "commands": dict(v["commands"]),
                   "calls": dict(_CALLS.get(name, {}))} for name, v in got.items()}


def _export(ref: str) -> Path:
    from benchmarks.bench_lua_calls import export_tree

    return export_tree(ref, Path(__file__).name)


def report(trees: dict[str, dict[str, Any]], n: int, workers: bool) -> None:
    """Per task: each phase's instructions; per command (in the first tree's order): the
    calls (INFO commandstats) and the command's own instructions; 'redis.call' is all the
    commands plus the Lua side of calling them (arguments, replies)."""
    names = list(trees)
    how = " executed by 2 local workers" if workers else ", scripts driven as a worker sends them"
    print(f"redis-server instructions inside EVALSHA per task (callgrind), {n:,}-task runs{how}")
    print("(per command: calls per task / the command's own instructions per task)")
    for shape in ("WIDE", "LAYERED"):
        phases = ["workers"] if workers else list(SCRIPTS)
        totals = dict.fromkeys(names, 0)
        for phase in phases:
            key = f"{shape}_{phase}"
            got = {t: trees[t].get(key, {}) for t in names}
            print(f"  {shape:<8} {phase:<26} " + " | ".join(
                f"{t}: {got[t].get('total', 0) / n:>9,.0f}" for t in names))
            for t in names:
                totals[t] += got[t].get("total", 0)
            first = got[names[0]].get("commands", {})
            fns = dict.fromkeys(sorted(first, key=lambda f: -first[f]))
            for t in names[1:]:
                fns.update(dict.fromkeys(got[t].get("commands", {})))
            for fn in fns:
                cmd = fn.removesuffix("Command")
                vals = []
                for t in names:
                    ins = got[t].get("commands", {}).get(fn, 0) / n
                    calls = got[t].get("calls", {}).get(cmd, 0) / n
                    vals.append((calls, ins))
                if max(v[1] for v in vals) < 300:
                    continue
                label = "redis.call (all)" if fn == "luaRedisGenericCommand" else cmd.upper()
                print(f"      {label:<30} " + " | ".join(
                    f"{t}: {'' if fn == 'luaRedisGenericCommand' else f'{c:5.2f} /'}"
                    f"{i:>8,.0f}" for t, (c, i) in zip(names, vals, strict=True)))
        if not workers:
            print(f"  {shape:<8} {'all scripts':<26} " + " | ".join(
                f"{t}: {totals[t] / n:>9,.0f}" for t in names))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tasks", type=int, default=2000)
    ap.add_argument("--workers", action="store_true",
                    help="2 local workers execute the runs (totals per task only)")
    ap.add_argument("--compare", action="append", default=[], help="a git commit (repeatable)")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--json", type=Path, help="write the figures there too")
    args = ap.parse_args()
    if args.child:
        print(json.dumps(child(args.tasks, args.workers)))
        return
    trees: dict[str, dict[str, Any]] = {}
    for ref in args.compare:
        tree = _export(ref)
        cmd = [sys.executable, str(tree / "benchmarks" / Path(__file__).name), "--child",
               "--tasks", str(args.tasks)] + (["--workers"] if args.workers else [])
        proc = subprocess.run(cmd, cwd=tree, check=True, capture_output=True, text=True,
                              env=dict(os.environ, PYTHONPATH=str(tree)))
        trees[ref] = json.loads(proc.stdout.splitlines()[-1])
    trees["this tree"] = child(args.tasks, args.workers)
    report(trees, args.tasks, args.workers)
    if args.json:
        args.json.write_text(json.dumps(trees, indent=1))


if __name__ == "__main__":
    main()
