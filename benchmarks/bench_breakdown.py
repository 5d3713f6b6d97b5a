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
2. **Per process and per script**, for the shapes of bench_runs.py (WIDE 10,000 tasks + a
   gather, CHAIN 1,000 hops, LAYERED 100x100 with 2 parents each; ``--quick``: a tenth), on 2
   local workers as ``ifn.connect()`` starts them (1 executor each, default options) in a
   temporary home, after a 301-task warm-up, one run each:
   - tasks/s from submit to `Run.wait` returning;
   - CPU per task (user + system, from ``/proc`` through psutil) of each kind of process: this
     client (the submit and the wait), the redis-server, the worker processes, their executors
     and their webhook dispatchers (told apart by the names they give themselves: ifn-worker,
     ifn-executor, ifn-webhooks);
   - the server's side, from its SLOWLOG (threshold 0 during the run: every command, with the
     µs Redis spent in it; a command a script calls is logged too): for each Lua script (named
     by its SHA), calls per task and µs per call and per task, and the plain commands. Logging
     every command costs the server about a µs each: the run is a little slower than in
     bench_runs.py, whose figures are the reference.

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


def server_side(entries: list[dict[str, Any]], n: int, names: dict[str, str]
                ) -> list[dict[str, Any]]:
    """SLOWLOG entries summed by script (EVALSHA by SHA, EVAL as "EVAL <first words>") or
    plain command: calls per task, µs per call, µs per task, largest first."""
    calls: dict[str, int] = defaultdict(int)
    micros: dict[str, int] = defaultdict(int)
    for entry in entries:
        words = entry["command"].split()
        head = (words[0].decode(errors="replace") if isinstance(words[0], bytes)
                else str(words[0])).upper()
        if head == "EVALSHA" and len(words) > 1:
            sha = words[1].decode() if isinstance(words[1], bytes) else str(words[1])
            head = f"script {names.get(sha, sha[:10])}"
        elif head == "EVAL":
            head = "EVAL: submit_run (sent whole), or a first call"
        calls[head] += 1
        micros[head] += int(entry["duration"])
    rows = [{"what": k, "calls_per_task": calls[k] / n, "us_per_call": micros[k] / calls[k],
             "us_per_task": micros[k] / n} for k in calls]
    return sorted(rows, key=lambda r: -r["us_per_task"])


def measure(label: str, make: Callable[[], ifn.Pipeline], n: int, conn: ifn.Connection,
            names: dict[str, str]) -> dict[str, Any]:
    """One run of the pipeline ``make`` builds: tasks/s, CPU per task by role, server side."""
    client = conn.config.client()
    pipeline = make()
    client.config_set("slowlog-max-len", str(40 * n + 10_000))
    client.config_set("slowlog-log-slower-than", "0")
    client.slowlog_reset()
    before, start = cpu_by_role(), time.perf_counter()
    run = pipeline.submit().wait()
    took = time.perf_counter() - start
    after = cpu_by_role()
    client.config_set("slowlog-log-slower-than", "10000")
    entries = client.slowlog_get(40 * n + 10_000)
    client.slowlog_reset()
    if run.status is not ifn.RunStatus.SUCCEEDED:
        raise RuntimeError(f"{label} ended {run.status}")
    cpu = {role: (after[role] - before[role]) / n * 1e6 for role in ROLES}
    return {"tasks": n, "tasks_per_s": n / took, "cpu_us_per_task": cpu,
            "cpu_us_per_task_total": sum(cpu.values()),
            "server": server_side(entries, n, names)}


# ---------------------------------------------------------------------- report


def report(out: dict[str, Any]) -> str:
    floor = out["round_trip"]
    lines = [
        "## Where the time goes", "",
        f"PING round trip on this machine: {floor['blocking_us']:.1f} µs waiting in a "
        f"blocking recv, {floor['spinning_us']:.1f} µs spinning on poll (client CPU "
        f"{floor['blocking_cpu_us']:.1f} / {floor['spinning_cpu_us']:.1f} µs per PING).", "",
        "| shape | tasks/s | CPU µs per task: " + " / ".join(ROLES) + " = total |",
        "|---|---:|---|"]
    for shape, row in out["shapes"].items():
        cpu = row["cpu_us_per_task"]
        lines.append(f"| {shape} | {row['tasks_per_s']:,.0f} | "
                     + " / ".join(f"{cpu[r]:.0f}" for r in ROLES)
                     + f" = {row['cpu_us_per_task_total']:.0f} |")
    for shape, row in out["shapes"].items():
        lines += ["", f"Server side of {shape} (SLOWLOG), the 8 largest:", "",
                  "| script or command | calls per task | µs per call | µs per task |",
                  "|---|---:|---:|---:|"]
        lines += [f"| {r['what']} | {r['calls_per_task']:.3f} | {r['us_per_call']:.1f} | "
                  f"{r['us_per_task']:.1f} |" for r in row["server"][:8]]
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
        "round_trip": ping_floor(PINGS // scale), "shapes": {}}
    names = script_names()
    with temporary_home():
        conn = ifn.connect(workers=2)
        try:
            wide_pipeline(300).submit().wait()  # warm-up: executors forked, scripts loaded
            for shape, (make, n) in shapes.items():
                out["shapes"][shape] = measure(shape, make, n, conn, names)
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
