"""Queue benchmark: IronForge vs RQ, SAQ, arq, Celery and BullMQ-py on one fresh redis-server.

    .venv/bin/python benchmarks/bench_queue.py            # 10,000 no-op jobs per phase
    .venv/bin/python benchmarks/bench_queue.py --quick    # 1,000 jobs
    .venv/bin/python benchmarks/bench_queue.py --only ironforge,bullmq --jobs 5000

One redis-server (started here through ``ironforge_nb.local.RedisServer`` on a free loopback
port, never the machine's 6379) serves every system in turn, FLUSHALLed between them. Each
system runs as a subprocess of its own virtualenv (arq needs redis-py < 6, Celery >= 6.4; see
``benchmarks/setup_envs.sh``) and prints one JSON object; a peer whose env is missing is skipped
with a note. The markdown table goes to stdout (and into benchmarks/README.md by hand), the
raw figures to ``benchmarks/results/queue.json``, with the machine's idle-CPU setting
(`benchmarks/machine.py`: pickup and the one-at-a-time rows are process wake-ups, which it
prices). This is a benchmark, not a test: it asserts nothing and prints PASS/MISS next to each
target.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

DASH = "\u2013"  # an en dash marks a missing figure in the table
ROOT = Path(__file__).resolve().parent.parent
PEERS_DIR = Path(__file__).resolve().parent / "peers"
RESULTS = Path(__file__).resolve().parent / "results" / "queue.json"

sys.path.insert(0, str(ROOT))
from benchmarks.machine import describe, idle_state  # noqa: E402 (after the path is set)

# name -> (label, virtualenv dir relative to the repo, or None for this interpreter)
SYSTEMS: dict[str, tuple[str, str | None]] = {
    "ironforge": ("IronForge", None),
    "rq": ("RQ", ".venv-bench-b"),
    "saq": ("SAQ", ".venv-bench-b"),
    "arq": ("arq", ".venv-bench-a"),
    "celery": ("Celery", ".venv-bench-b"),
    "bullmq": ("BullMQ-py", ".venv-bench-b"),
}

# Figures of a previous run on this 2-core machine (issue 3), printed for reference.
PREVIOUS = {
    "processing": "BullMQ-py 2,100, arq 2,000, SAQ 1,790 jobs/s",
    "bulk": "BullMQ-py addBulk 24,000, RQ enqueue_many 17,000 jobs/s",
    "pickup": "best peer p50 0.5 ms",
    "commands": "Celery 9, SAQ 10, arq 17, RQ 57 per job",
}


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--jobs", type=int, default=None, help="jobs per phase (10,000)")
    ap.add_argument("--quick", action="store_true", help="1,000 jobs, 100 pickup samples")
    ap.add_argument("--only", default="", help="comma-separated subset of: " + ",".join(SYSTEMS))
    ap.add_argument("--pickup-samples", type=int, default=None,
                    help="one-at-a-time jobs for pickup latency (500)")
    ap.add_argument("--rounds", type=int, default=1,
                    help="run every system this many times, interleaved; figures are medians")
    ap.add_argument("--timeout", type=float, default=900.0, help="seconds per system")
    ap.add_argument("--json", type=Path, default=RESULTS, help="where to save the figures")
    ap.add_argument("--report", type=Path, metavar="JSON",
                    help="print the report of a saved run instead of running")
    ap.add_argument("--setup-envs", action="store_true",
                    help="first create the missing peer virtualenvs (benchmarks/setup_envs.sh)")
    args = ap.parse_args()
    jobs, samples = (1_000, 100) if args.quick else (10_000, 500)
    args.jobs = jobs if args.jobs is None else args.jobs
    args.pickup_samples = samples if args.pickup_samples is None else args.pickup_samples
    for option, minimum in (("jobs", 2), ("pickup_samples", 1), ("rounds", 1)):
        if getattr(args, option) < minimum:
            ap.error(f"--{option.replace('_', '-')} must be at least {minimum}")
    wanted = [s.strip() for s in args.only.split(",") if s.strip()] or list(SYSTEMS)
    unknown = sorted(set(wanted) - set(SYSTEMS))
    if unknown:
        ap.error(f"unknown system(s) {unknown}: choose from {', '.join(SYSTEMS)}")
    args.systems = wanted
    return args


def interpreter(name: str) -> Path | None:
    """The python of a system's virtualenv, or None when that env was not created."""
    env = SYSTEMS[name][1]
    if env is None:
        return Path(sys.executable)
    python = ROOT / env / "bin" / "python"
    return python if python.exists() else None


def run_system(name: str, url: str, args: argparse.Namespace) -> dict[str, Any]:
    """Run one system's peer module as a subprocess and return its parsed JSON result."""
    python = interpreter(name)
    if python is None:
        env = SYSTEMS[name][1]
        return {"skipped": f"{env} missing: run benchmarks/setup_envs.sh"}
    cmd = [str(python), str(PEERS_DIR / f"{name}_peer.py"), "--url", url,
           "--jobs", str(args.jobs), "--pickup-samples", str(args.pickup_samples)]
    load_before = os.getloadavg()
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=args.timeout,
                              cwd=ROOT, check=False)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {args.timeout:.0f} s"}
    result = last_json(proc.stdout)
    if result is None or proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
        result = {**(result or {}), "error": (result or {}).get("error") or " | ".join(tail)}
    result["loadavg_before"] = [round(x, 2) for x in load_before]
    result["loadavg_after"] = [round(x, 2) for x in os.getloadavg()]
    return result


def last_json(stdout: str) -> dict[str, Any] | None:
    """The last JSON object printed on a line of ``stdout`` (log prefixes tolerated)."""
    for line in reversed(stdout.splitlines()):
        start = line.find("{")
        if start < 0:
            continue
        try:
            value = json.loads(line[start:])
        except json.JSONDecodeError:
            continue
        if isinstance(value, dict):
            return value
    return None


def median_of(rounds: list[Any]) -> Any:
    """Combine the results of several rounds: medians of numbers, recursively in dicts.

    A figure missing from some rounds is the median of the rounds that have it; strings and
    lists come from the first round that has them.
    """
    if all(isinstance(r, (int, float)) and not isinstance(r, bool) for r in rounds):
        mid = statistics.median(rounds)
        return int(mid) if all(isinstance(r, int) for r in rounds) and mid == int(mid) \
            else round(mid, 3)
    if all(isinstance(r, list) and len(r) == len(rounds[0]) for r in rounds):
        return [median_of(list(col)) for col in zip(*rounds, strict=True)]
    if all(isinstance(r, dict) for r in rounds):
        keys = dict.fromkeys(k for r in rounds for k in r)
        return {k: median_of([r[k] for r in rounds if k in r]) for k in keys}
    return rounds[0]


def combine(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    """One system's figures over its rounds (failed rounds only count when all failed)."""
    good = [r for r in rounds if "processing" in r]
    if not good:
        return rounds[-1]
    merged: dict[str, Any] = median_of(good)
    merged["rounds"] = len(good)
    if len(good) < len(rounds):
        merged.setdefault("notes", []).append(
            f"{len(rounds) - len(good)} of {len(rounds)} rounds failed: "
            + "; ".join(str(r.get("error") or r.get("skipped")) for r in rounds if r not in good))
    return merged


def get(result: dict[str, Any], *path: str) -> float | None:
    """A nested figure, or None when the phase is missing."""
    value: Any = result
    for part in path:
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    return float(value) if isinstance(value, (int, float)) else None


def fmt(value: float | None, digits: int = 0) -> str:
    if value is None or value != value:  # None or NaN
        return DASH
    return f"{value:,.{digits}f}"


COLUMNS = [  # header, path into a result, digits
    ("processing jobs/s", ("processing", "jobs_per_s"), 0),
    ("bulk enqueue jobs/s", ("bulk_enqueue", "jobs_per_s"), 0),
    ("single enqueue jobs/s", ("single_enqueue", "jobs_per_s"), 0),
    ("pickup p50 ms", ("pickup", "p50_ms"), 2),
    ("pickup p99 ms", ("pickup", "p99_ms"), 2),
    ("Redis cmds/job", ("processing", "commands_per_job"), 1),
    ("round trips/job", ("processing", "round_trips_per_job"), 2),
]


def label(name: str, result: dict[str, Any]) -> str:
    text = SYSTEMS[name][0]
    if result.get("version"):
        text += f" {result['version']}"
    if name == "ironforge":
        text += " (benchmark loop, batches of 50)"
    return text


def table(results: dict[str, dict[str, Any]]) -> list[str]:
    """The main markdown table: one row per system, then IronForge's ratio to the best peer."""
    lines = ["| system | " + " | ".join(h for h, _, _ in COLUMNS) + " |",
             "|---|" + "---:|" * len(COLUMNS)]
    for name, res in results.items():
        if "skipped" in res or ("error" in res and "processing" not in res):
            why = res.get("skipped") or res.get("error")
            lines.append(f"| {SYSTEMS[name][0]} | *not run: {why}* | "
                         + " | ".join(DASH for _ in COLUMNS[1:]) + " |")
            continue
        cells = [fmt(get(res, *path), d) for _, path, d in COLUMNS]
        lines.append(f"| {label(name, res)} | " + " | ".join(cells) + " |")
        if "processing_single" in res:  # IronForge one job per round trip: one more row
            m = res["processing_single"]
            cells = [fmt(m["jobs_per_s"])] + [DASH] * 4 + [
                fmt(m["commands_per_job"], 1), fmt(m["round_trips_per_job"], 2)]
            lines.append(f"| {SYSTEMS[name][0]}, one job at a time (complete + fetch_next=1) | "
                         + " | ".join(cells) + " |")
        if "processing_marked" in res:  # the batched loop marking each held job's start
            m = res["processing_marked"]
            cells = [fmt(m["jobs_per_s"])] + [DASH] * 4 + [
                fmt(m["commands_per_job"], 1), fmt(m["round_trips_per_job"], 2)]
            lines.append(f"| {SYSTEMS[name][0]}, benchmark loop with start marks | "
                         + " | ".join(cells) + " |")
        if "processing_worker" in res:  # the product's worker process, same jobs
            cells = [fmt(res["processing_worker"]["jobs_per_s"])] + [DASH] * 6
            lines.append(f"| {SYSTEMS[name][0]}, `ironforge worker` (1 process + 1 executor) | "
                         + " | ".join(cells) + " |")
    ratios = ratio_cells(results)
    if ratios:
        lines.append("| **IronForge ÷ best peer** | " + " | ".join(ratios) + " |")
    return lines


def best_peer(results: dict[str, dict[str, Any]], path: tuple[str, ...],
              higher: bool = True) -> tuple[str, float] | None:
    """(name, value) of the best peer on one figure, among the peers that produced it."""
    values = [(n, v) for n, r in results.items() if n != "ironforge"
              for v in [get(r, *path)] if v is not None and v == v]
    if not values:
        return None
    return max(values, key=lambda nv: nv[1] if higher else -nv[1])


def ratio_cells(results: dict[str, dict[str, Any]]) -> list[str]:
    """IronForge's figure divided by the best peer's (for latencies and costs: best ÷ ours)."""
    ours = results.get("ironforge")
    if not ours or "processing" not in ours:
        return []
    cells = []
    for i, (_, path, _) in enumerate(COLUMNS):
        higher = i < 3
        best, mine = best_peer(results, path, higher), get(ours, *path)
        if best is None or mine is None or mine == 0 or best[1] == 0:
            cells.append(DASH)
            continue
        ratio = mine / best[1] if higher else best[1] / mine
        cells.append(f"{ratio:.1f}x" + ("" if higher else " better" if ratio >= 1 else " worse"))
    return cells


def targets(results: dict[str, dict[str, Any]]) -> list[str]:
    """The issue's targets next to the measured figures (PASS / MISS / n/a)."""
    ours = results.get("ironforge", {})
    proc, bulk = get(ours, "processing", "jobs_per_s"), get(ours, "bulk_enqueue", "jobs_per_s")
    best_proc = best_peer(results, ("processing", "jobs_per_s"))
    best_bulk = best_peer(results, ("bulk_enqueue", "jobs_per_s"))
    rows: list[tuple[str, str, bool | None]] = []

    def vs(mine: float | None, best: tuple[str, float] | None, factor: float) -> None:
        if mine is None or best is None:
            rows.append((f"≥ {factor:g}x best peer", "no peer figure" if mine else "not run",
                         None))
            return
        ratio = mine / best[1]
        rows.append((f"≥ {factor:g}x best peer ({SYSTEMS[best[0]][0]} {fmt(best[1])}/s)",
                     f"{fmt(mine)}/s = {ratio:.2f}x", ratio >= factor))

    vs(proc, best_proc, 5)
    rows[-1] = ("processing " + rows[-1][0], *rows[-1][1:])
    single = get(ours, "processing_single", "jobs_per_s")
    if single is not None and best_proc is not None and rows[-1][2] is not None:
        rows[-1] = (rows[-1][0], rows[-1][1] + f" (one at a time: {fmt(single)}/s ="
                    f" {single / best_proc[1]:.2f}x)", rows[-1][2])
    real = get(ours, "processing_worker", "jobs_per_s")
    if real is not None and best_proc is not None and rows[-1][2] is not None:
        rows[-1] = (rows[-1][0], rows[-1][1] + f" (`ironforge worker`: {fmt(real)}/s ="
                    f" {real / best_proc[1]:.2f}x)", rows[-1][2])
    vs(bulk, best_bulk, 2)
    rows[-1] = ("enqueue_batch " + rows[-1][0], *rows[-1][1:])
    for what, path, limit, unit, higher in [
        ("processing ≥ 10,000 jobs/s (the issue's absolute figure)",
         ("processing", "jobs_per_s"), 10_000, "/s", True),
        ("enqueue_batch ≥ 50,000 jobs/s (absolute)", ("bulk_enqueue", "jobs_per_s"), 50_000,
         "/s", True),
        ("single enqueue ≥ 10,000 jobs/s", ("single_enqueue", "jobs_per_s"), 10_000, "/s", True),
        ("pickup p50 ≤ 0.5 ms", ("pickup", "p50_ms"), 0.5, " ms", False),
        ("pickup p99 ≤ 2 ms", ("pickup", "p99_ms"), 2.0, " ms", False),
        ("progress 10 MB ÷ 1 KB ≤ 1.2", ("progress", "ratio_p50"), 1.2, "x", False),
        ("round trips per job ≤ 2", ("processing", "round_trips_per_job"), 2.0, "", False),
    ]:
        v = get(ours, *path)
        ok = None if v is None else (v >= limit if higher else v <= limit)
        rows.append((what, "not run" if v is None else f"{fmt(v, 0 if higher else 2)}{unit}", ok))
    # issue 14: the shipped worker against the engine loop of the same run, and pickup
    # against BullMQ-py's of the same run
    if real is not None and proc:
        rows.append(("`ironforge worker` ≥ 0.8x the engine loop (same run)",
                     f"{fmt(real)}/s ÷ {fmt(proc)}/s = {real / proc:.2f}", real / proc >= 0.8))
    marked = get(ours, "processing_marked", "jobs_per_s")
    if real is not None and marked:
        rows.append(("`ironforge worker` ≥ 0.8x the engine loop with start marks (same run)",
                     f"{fmt(real)}/s ÷ {fmt(marked)}/s = {real / marked:.2f}",
                     real / marked >= 0.8))
    mine_p50 = get(ours, "pickup", "p50_ms")
    bull_p50 = get(results.get("bullmq", {}), "pickup", "p50_ms")
    if mine_p50 and bull_p50:
        rows.append(("pickup p50 ≥ 2x better than BullMQ-py's (same run)",
                     f"{bull_p50:.2f} ÷ {mine_p50:.2f} ms = {bull_p50 / mine_p50:.1f}x",
                     bull_p50 / mine_p50 >= 2))
    lines = ["| IronForge target | measured | |", "|---|---:|---|"]
    for what, measured, ok in rows:
        verdict = DASH if ok is None else "PASS" if ok else "MISS"
        lines.append(f"| {what} | {measured} | {verdict} |")
    return lines


def notes(results: dict[str, dict[str, Any]], meta: dict[str, Any]) -> list[str]:
    """How each system was driven, IronForge's extra figures, and the machine's load."""
    lines = [f"- {meta['jobs']:,} no-op jobs per phase, {meta['pickup_samples']} pickup samples,"
             f" {meta['rounds']} round(s) per system, interleaved (figures: medians);"
             f" redis-server {meta['redis_version']} ({meta['redis_binary']}), one for all;"
             f" Python {meta['python']}, {meta['cpus']} CPUs, load avg at start"
             f" {meta['loadavg_start']}, at end {meta['loadavg_end']}; PING round trip p50"
             f" (redis-py, sync) {meta['ping_us_start']} µs at start,"
             f" {meta.get('ping_us_end', DASH)} µs at end; {describe(meta.get('idle', {}))}."]
    for name, res in results.items():
        if "processing" not in res:
            continue
        methods = "; ".join(str(res[p]["method"]) for p in
                            ("processing", "bulk_enqueue", "single_enqueue") if p in res)
        lines.append(f"- **{SYSTEMS[name][0]}**: {methods}; load {res.get('loadavg_before')}"
                     f" → {res.get('loadavg_after')}.")
        if name == "ironforge":
            lines += [f"  - {note}" for note in ironforge_notes(res)]
        for note in res.get("notes", []):
            lines.append(f"  - {note}")
    lines.append(f"- Previous run on this machine (issue 3): processing {PREVIOUS['processing']};"
                 f" bulk {PREVIOUS['bulk']}; pickup {PREVIOUS['pickup']};"
                 f" commands {PREVIOUS['commands']}.")
    return lines


def ironforge_notes(res: dict[str, Any]) -> list[str]:
    """IronForge-only figures: EVALSHA vs inner commands per loop, progress latency."""
    out = []
    worker = res.get("processing_worker", {})
    if "cpu_us_per_job" in worker:
        out.append(f"`ironforge worker`: {worker['cpu_us_per_job']:.0f} µs of CPU per job in"
                   " its processes (worker + executor + webhook dispatcher, start-up"
                   " included)")
    for key, what in (("processing", "in batches"), ("processing_single", "one at a time"),
                      ("processing_marked", "in batches with start marks")):
        if key not in res:
            continue
        p = res[key]
        inner = p["commands_per_job"] - p["scripts_per_job"]
        out.append(f"per processed job {what}: {p['round_trips_per_job']} round trips"
                   f" (client side), {p['scripts_per_job']} EVALSHA, {inner:.1f} commands run"
                   f" inside the scripts ({p['commands_per_job']} in INFO commandstats)")
    if "progress" in res:
        g = res["progress"]
        out.append(f"progress() p50 {g['payload_1KB']['p50_ms']} ms with a 1 KB payload,"
                   f" {g['payload_10MB']['p50_ms']} ms with 10 MB: ratio {g['ratio_p50']}"
                   f" (p99 {g['payload_1KB']['p99_ms']} / {g['payload_10MB']['p99_ms']} ms;"
                   f" {g['payload_1KB']['samples']} calls each, alternating)")
    return out


def setup_envs(systems: list[str]) -> None:
    """Create the peer virtualenvs that the chosen systems need and that do not exist yet."""
    missing = sorted({SYSTEMS[n][1] or "" for n in systems if interpreter(n) is None})
    letters = [env.rsplit("-", 1)[-1] for env in missing]
    if letters:
        subprocess.run(["bash", str(ROOT / "benchmarks" / "setup_envs.sh"), *letters],
                       cwd=ROOT, check=True)


def ping_us(client: Any, count: int = 1000) -> float:
    """p50 of a PING round trip in microseconds: the floor under every synchronous call."""
    times = []
    for _ in range(count):
        start = time.perf_counter()
        client.ping()
        times.append(time.perf_counter() - start)
    return round(statistics.median(times) * 1e6, 1)


def start_redis() -> Any:
    """A fresh redis-server on a free loopback port, through the project's own launcher."""
    sys.path.insert(0, str(ROOT))
    from ironforge_nb.local import RedisServer

    return RedisServer().start()


def report(results: dict[str, dict[str, Any]], meta: dict[str, Any]) -> str:
    """The whole markdown report: table, targets, notes."""
    return "\n".join(["## Queue benchmark", "", *table(results), "", *targets(results), "",
                      *notes(results, meta), "", f"Command: `{meta['command']}`"
                      f" (started {meta['started']})."])


def main() -> int:
    args = parse_args()
    if args.report:
        saved = json.loads(args.report.read_text())
        print(report(saved["results"], saved["meta"]))
        return 0
    if args.setup_envs:
        setup_envs(args.systems)
    server = start_redis()
    import redis

    admin = redis.Redis.from_url(server.url)
    meta: dict[str, Any] = {
        "jobs": args.jobs, "pickup_samples": args.pickup_samples, "rounds": args.rounds,
        "url": server.url,
        "redis_version": server.version, "redis_binary": server.binary,
        "python": platform.python_version(), "cpus": os.cpu_count(), "idle": idle_state(),
        "loadavg_start": [round(x, 2) for x in os.getloadavg()],
        "started": time.strftime("%Y-%m-%d %H:%M:%S"), "ping_us_start": ping_us(admin),
        "command": " ".join(["benchmarks/bench_queue.py", *sys.argv[1:]]),
    }
    raw: dict[str, list[dict[str, Any]]] = {name: [] for name in args.systems}
    try:
        for i in range(args.rounds):  # interleaved, so that load changes hit every system
            for name in args.systems:
                admin.flushall()
                print(f"# round {i + 1}/{args.rounds}: {name} ...", file=sys.stderr, flush=True)
                raw[name].append(run_system(name, server.url, args))
        meta["ping_us_end"] = ping_us(admin)
    finally:
        admin.close()
        server.stop()
    results = {name: combine(rounds) for name, rounds in raw.items()}
    meta["loadavg_end"] = [round(x, 2) for x in os.getloadavg()]
    print(report(results, meta))
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({"meta": meta, "results": results, "rounds": raw},
                                    indent=2) + "\n")
    print(f"\nsaved {args.json.relative_to(ROOT) if args.json.is_relative_to(ROOT) else args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
