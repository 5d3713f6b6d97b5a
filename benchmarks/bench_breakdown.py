"""Where a task's time and CPU go: the machine's round-trip floor, each process, each script.

``python benchmarks/bench_breakdown.py [--quick] [--output FILE]``; figures only, never
assertions. Written for issue 14 ("find where the rest goes"); what it showed and what was
tried is in benchmarks/README.md, "Where the time goes".

1. **Round-trip floor.** 20,000 PINGs on a fresh redis-server (through
   `ironforge_nb.local.RedisServer`), on one raw socket: waiting for each reply in a blocking
   ``recv`` (as redis-py does, and every synchronous call of the engine) vs spinning on a
   non-blocking ``poll`` until it comes. The difference is what this machine takes to wake a
   process that went to sleep waiting (a virtual CPU idles between replies), paid once per
   synchronous round trip by whoever waits; the server pays its own when it was idle.
   The report names the machine's idle-CPU setting with it (`benchmarks/machine.py`).
2. **Per process and per script**, for the shapes of bench_runs.py (WIDE 10,000 tasks + a
   gather, CHAIN 1,000 hops, LAYERED 100x100 with 2 parents each; ``--quick``: a tenth), on 2
   local workers as ``ifn.connect()`` starts them (1 executor each, default options) in a
   temporary home, after a 301-task warm-up, one run each:
   - tasks/s from submit to `Run.wait` returning;
   - CPU per task (user + system, from ``/proc`` through psutil) of each kind of process: this
     client (the submit and the wait), the redis-server, the worker processes, their executors
     and their webhook dispatchers (told apart by the names they give themselves: ifn-worker,
     ifn-executor, ifn-webhooks);
   - the server's side: ``INFO commandstats`` over the run (µs Redis spent in each command,
     a script's time including the commands it calls), and how the scripts' time splits by
     script, from the SLOWLOG of a second run of the same shape (threshold 0: every command
     with its µs, a SHA per script call). Logging every command slows the scripts down (a
     CHAIN hop's script: ~90 µs by commandstats, ~150 µs by the SLOWLOG on the fast VM), so
     the second run gives only the shares, applied to the first run's EVALSHA time.

Results go to stdout (markdown) and ``benchmarks/results/breakdown.json``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import select
import socket
import sys
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import psutil

import ironforge_nb as ifn
from benchmarks.bench_runs import chain_pipeline, layered_pipeline, wide_pipeline
from benchmarks.machine import describe, idle_state
from ironforge_nb.local import RedisServer
from ironforge_nb.local.home import temporary_home
from ironforge_nb.queue.scripting import lua_source

RESULTS = Path(__file__).resolve().parent / "results" / "breakdown.json"
LUA = Path(__file__).resolve().parents[1] / "ironforge_nb" / "queue" / "lua"
PINGS = 20_000
ROLES = ("client", "redis-server", "workers", "executors", "webhooks")


# ---------------------------------------------------------------------- round-trip floor


def ping_floor(pings: int = PINGS) -> dict[str, float]:
    """µs per PING round trip (and client CPU per PING), blocking vs spinning."""
    out: dict[str, float] = {}
    with RedisServer() as server:
        port = server.port
        assert port is not None
        sock = socket.create_connection(("127.0.0.1", port))
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        password = server.url.split("@")[0].rsplit(":", 1)[-1] if "@" in server.url else ""
        if password:
            sock.sendall(b"AUTH " + password.encode() + b"\r\n")
            sock.recv(64)
        poller = select.poll()
        poller.register(sock.fileno(), select.POLLIN)
        for round_ in range(2):  # the second round is the one kept (the first warms up)
            for mode in ("blocking", "spinning"):
                start, cpu = time.perf_counter(), time.process_time()
                for _ in range(pings):
                    sock.sendall(b"PING\r\n")
                    if mode == "spinning":
                        while not poller.poll(0):
                            pass
                    sock.recv(64)
                if round_:
                    out[f"{mode}_us"] = (time.perf_counter() - start) / pings * 1e6
                    out[f"{mode}_cpu_us"] = (time.process_time() - cpu) / pings * 1e6
        sock.close()
    return out


# ---------------------------------------------------------------------- processes


def role_of(proc: psutil.Process, me: int) -> str | None:
    """Which kind of process ``proc`` is, by its pid and the name it gave itself."""
    if proc.pid == me:
        return "client"
    name = proc.name()
    if name == "redis-server":
        return "redis-server"
    return {"ifn-worker": "workers", "ifn-executor": "executors",
            "ifn-webhooks": "webhooks"}.get(name)


def cpu_by_role() -> dict[str, float]:
    """CPU seconds so far of this process and its descendants, summed by `role_of`."""
    me = psutil.Process()
    out = dict.fromkeys(ROLES, 0.0)
    for proc in [me, *me.children(recursive=True)]:
        try:
            role = role_of(proc, me.pid)
            times = proc.cpu_times()
        except psutil.Error:
            continue
        if role is not None:
            out[role] += times.user + times.system
    return out


# ---------------------------------------------------------------------- scripts


def script_names() -> dict[str, str]:
    """SHA of each Lua script as Redis gets it -> its name (helpers are not scripts)."""
    names = {}
    for path in LUA.glob("*.lua"):
        name = path.stem
        if name == "common" or name.endswith("_helpers"):
            continue
        names[hashlib.sha1(lua_source(name).encode()).hexdigest()] = name
    return names


def script_shares(entries: list[dict[str, Any]], names: dict[str, str]) -> dict[str, float]:
    """Each script's share of the EVALSHA time in SLOWLOG ``entries`` (by name)."""
    micros: dict[str, int] = defaultdict(int)
    for entry in entries:
        words = entry["command"].split()
        if len(words) > 1 and str(words[0], "ascii", "replace").upper() == "EVALSHA":
            sha = str(words[1], "ascii", "replace")
            micros[names.get(sha, sha[:10])] += int(entry["duration"])
    total = sum(micros.values()) or 1
    return {name: us / total for name, us in micros.items()}


def command_stats(client: Any, n: int) -> dict[str, dict[str, float]]:
    """``INFO commandstats`` per task: calls and µs of each command, largest first."""
    stats = client.info("commandstats")
    rows = {name.removeprefix("cmdstat_"): {"calls_per_task": row["calls"] / n,
                                            "us_per_call": row["usec_per_call"],
                                            "us_per_task": row["usec"] / n}
            for name, row in stats.items()}
    return dict(sorted(rows.items(), key=lambda kv: -kv[1]["us_per_task"]))


def measure(make: Callable[[], ifn.Pipeline], n: int, conn: ifn.Connection,
            names: dict[str, str]) -> dict[str, Any]:
    """Two runs of the pipeline ``make`` builds: tasks/s, CPU per task by role and
    commandstats from the first; the scripts' shares of EVALSHA time from the second's
    SLOWLOG."""
    client = conn.config.client()
    pipeline = make()
    client.config_resetstat()
    before, start = cpu_by_role(), time.perf_counter()
    run = pipeline.submit().wait()
    took = time.perf_counter() - start
    after = cpu_by_role()
    commands = command_stats(client, n)
    pipeline = make()
    client.config_set("slowlog-max-len", str(40 * n + 10_000))
    client.config_set("slowlog-log-slower-than", "0")
    client.slowlog_reset()
    second = pipeline.submit().wait()
    client.config_set("slowlog-log-slower-than", "10000")
    shares = script_shares(client.slowlog_get(40 * n + 10_000), names)
    client.slowlog_reset()
    for r in (run, second):
        if r.status is not ifn.RunStatus.SUCCEEDED:
            raise RuntimeError(f"run {r.id} ended {r.status}")
    evalsha = commands.get("evalsha", {"us_per_task": 0.0})["us_per_task"]
    cpu = {role: (after[role] - before[role]) / n * 1e6 for role in ROLES}
    return {"tasks": n, "tasks_per_s": n / took, "cpu_us_per_task": cpu,
            "cpu_us_per_task_total": sum(cpu.values()), "commands": commands,
            "scripts_us_per_task": {name: share * evalsha for name, share in
                                    sorted(shares.items(), key=lambda kv: -kv[1])}}


# ---------------------------------------------------------------------- report


def report(out: dict[str, Any]) -> str:
    floor = out["round_trip"]
    lines = [
        "## Where the time goes", "",
        f"PING round trip on this machine: {floor['blocking_us']:.1f} µs waiting in a "
        f"blocking recv, {floor['spinning_us']:.1f} µs spinning on poll (client CPU "
        f"{floor['blocking_cpu_us']:.1f} / {floor['spinning_cpu_us']:.1f} µs per PING); "
        f"{describe(out.get('idle', {}))}.", "",
        "| shape | tasks/s | CPU µs per task: " + " / ".join(ROLES) + " = total |",
        "|---|---:|---|"]
    for shape, row in out["shapes"].items():
        cpu = row["cpu_us_per_task"]
        lines.append(f"| {shape} | {row['tasks_per_s']:,.0f} | "
                     + " / ".join(f"{cpu[r]:.0f}" for r in ROLES)
                     + f" = {row['cpu_us_per_task_total']:.0f} |")
    for shape, row in out["shapes"].items():
        lines += ["", f"Server side of {shape}: Redis µs per task", "",
                  "| command (commandstats) | calls per task | µs per call | µs per task |",
                  "|---|---:|---:|---:|"]
        lines += [f"| {name} | {r['calls_per_task']:.3f} | {r['us_per_call']:.1f} | "
                  f"{r['us_per_task']:.1f} |" for name, r in list(row["commands"].items())[:6]]
        lines += ["", "EVALSHA by script (shares from the SLOWLOG run): " + ", ".join(
            f"{name} {us:.1f} µs" for name, us in list(row["scripts_us_per_task"].items())[:4])]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a tenth of the sizes")
    parser.add_argument("--output", type=Path, default=RESULTS, help="JSON file to write")
    args = parser.parse_args()
    scale = 10 if args.quick else 1
    shapes: dict[str, tuple[Callable[[], ifn.Pipeline], int]] = {
        "WIDE": (lambda: wide_pipeline(10_000 // scale), 10_000 // scale + 1),
        "CHAIN": (lambda: chain_pipeline(1_000 // scale), 1_000 // scale),
        "LAYERED": (lambda: layered_pipeline(100 // scale, 100), 10_000 // scale),
    }
    out: dict[str, Any] = {
        "started": time.strftime("%Y-%m-%d %H:%M:%S"), "loadavg_start": os.getloadavg(),
        "command": " ".join(["benchmarks/bench_breakdown.py", *sys.argv[1:]]),
        "idle": idle_state(), "round_trip": ping_floor(PINGS // scale), "shapes": {}}
    names = script_names()
    with temporary_home():
        conn = ifn.connect(workers=2)
        try:
            wide_pipeline(300).submit().wait()  # warm-up: executors forked, scripts loaded
            for shape, (make, n) in shapes.items():
                out["shapes"][shape] = measure(make, n, conn, names)
                print(f"  {shape}: {out['shapes'][shape]['tasks_per_s']:,.0f} tasks/s",
                      flush=True)
        finally:
            conn.close()
    out["loadavg_end"] = os.getloadavg()
    print(report(out))
    args.output.write_text(json.dumps(out, indent=2) + "\n")
    print(f"\nsaved {args.output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
