"""Redis CPU per call of the hot scripts, one call at a time: enqueue_jobs, claim_jobs and
complete_job, as `Queue.enqueue`, `Queue.dequeue` and `Queue.complete` send them, and the
``chain_hop``: the complete_job call of one hop of a DAG run's CHAIN, as a worker sends it
(`Queue.complete_many` of the running task with ``fetch_next=1, started=1``: the completion,
the run's bookkeeping, the release of the child and its claim, in one script).

Starts its own redis-server through `ironforge_nb.local` (never the machine's 6379). Each round
enqueues N jobs one at a time, claims them one at a time, then completes them one at a time
(no result, no fetch), then walks CHAIN runs of `CHAIN` tasks (submitted before the phase, each
in a queue of its own, roots claimed; JSON mode, import-path tasks that never run) one hop
per call; before each phase ``CONFIG RESETSTAT``, after it ``INFO commandstats``:
``usec_per_call`` of EVALSHA is the time Redis spent inside that phase's script (a phase sends
nothing else, bar a rare reap of expired leases, which `calls` shows). Also the CPU time of
redis-server over the phase (``/proc/<pid>/schedstat``, Linux), per call: the script plus
reading the request and writing the reply.

``--compare REF`` (repeatable) runs the same rounds against the code of git commit REF too
(its tree is exported to a temp dir and this file runs there as a subprocess on the same
server, FLUSHALLed between rounds), alternating the trees round by round so that the machine's
load moves them alike; it prints the medians side by side, and the median of each round's
difference from the first tree.

``--interleave REF`` (repeatable) is finer: one process, one server, and the scripts of each
REF (assembled by that commit's own code) loaded next to this tree's; the calls of each phase
take the versions in turn, call by call (``LuaScript``'s SHA and source swapped between calls),
and the server's SLOWLOG (threshold 0: each call's µs, per SHA) times each version. What a
loaded machine does to one call it does alike to the next one's neighbours.

``--callgrind REF`` (repeatable) counts instructions instead, which load does not move: for
this tree and each REF a redis-server runs under ``valgrind --tool=callgrind``, collecting only
inside ``evalGenericCommand`` (EVALSHA: the Lua VM and the commands the script calls), the
REF's scripts swapped in as above, and ``callgrind_control`` dumps the count after each phase
(``--jobs`` calls; 2,000 take about a minute).

Usage: ``python benchmarks/bench_lua_calls.py [--jobs 5000] [--rounds 5] [--compare REF ...]
[--interleave REF ...] [--callgrind REF ...]``. Figures, never assertions.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
PHASES = ("enqueue_jobs", "claim_jobs", "complete_job", "chain_hop")
SCRIPTS = ("enqueue_jobs", "claim_jobs", "complete_job")
CHAIN = 1000  # tasks per CHAIN run of the chain_hop phase (bench_runs.py's CHAIN)


def script_of(phase: str) -> str:
    """The script a phase calls."""
    return "complete_job" if phase == "chain_hop" else phase


def _cpu_ns(pid: int) -> int:
    with open(f"/proc/{pid}/schedstat") as fh:
        return int(fh.read().split()[0])


def one_round(url: str, pid: int, jobs: int) -> dict[str, dict[str, float]]:
    """Enqueue, claim and complete ``jobs`` jobs one at a time on the server at ``url``;
    returns phase -> {usec_per_call, cpu_us_per_call, calls}."""
    import redis

    from ironforge_nb.queue import Queue, RedisConfig

    config = RedisConfig(url=url)
    client = redis.Redis.from_url(url)
    client.flushall()
    queue = Queue("bench", config)
    leases: list[Any] = []
    hops: list[Callable[[], Any]] = []  # made just before its phase (submits, root claims)
    steps = {
        "enqueue_jobs": lambda: [queue.enqueue(b"x") for _ in range(jobs)],
        "claim_jobs": lambda: leases.extend(queue.dequeue("w", timeout=0) for _ in range(jobs)),
        "complete_job": lambda: [queue.complete(lease) for lease in leases],
        "chain_hop": lambda: [hops[0]() for _ in range(jobs)],
    }
    queue.enqueue(b"warm")  # load the scripts outside the measured phases
    queue.complete(queue.dequeue("w", timeout=0))  # type: ignore[arg-type]
    out = {}
    for phase in PHASES:
        if phase == "chain_hop":
            hops.append(_chain_hops(config, jobs))
        client.config_resetstat()
        cpu = _cpu_ns(pid)
        steps[phase]()
        cpu = _cpu_ns(pid) - cpu
        stat = client.info("commandstats").get("cmdstat_evalsha", {})
        calls = int(stat.get("calls", 0))
        out[phase] = {"usec_per_call": float(stat.get("usec_per_call", 0.0)),
                      "cpu_us_per_call": cpu / 1000 / max(calls, 1), "calls": calls}
    return out


def _chain_hops(config: Any, hops: int, script: Any = None) -> Callable[[], Any]:
    """Submit enough CHAIN runs of `CHAIN` tasks for ``hops`` hops (each in its own queue, so
    that a hop's claim takes its child, not another run's root) and claim their roots; returns
    a function that makes the next hop (one complete_job call, as a worker of the chain makes
    it: complete the running task with its result, fetch and start the next one). With
    ``script``, every hop calls that `LuaScript` (whose version a benchmark swaps)."""
    from ironforge_nb import Pipeline
    from ironforge_nb.orchestrator import submit
    from ironforge_nb.queue import Queue

    running: list[tuple[Any, Any]] = []
    for k in range(hops // (CHAIN - 1) + 1):
        p = Pipeline(f"hop{k}")
        p.task("c0", "operator:pos")
        for i in range(1, CHAIN):
            p.task(f"c{i}", "operator:pos", after=f"c{i - 1}")
        submit(p, config=config, queue=f"hop{k}")
        queue = Queue(f"hop{k}", config)
        if script is not None:
            queue._scripts._complete = script
        running.append((queue, queue.dequeue("w", lease=3600.0, timeout=0)))
    running.reverse()

    def hop() -> None:
        queue, lease = running[-1]
        nxt, _refused = queue.complete_many([lease], [b"0"], fetch_next=1, started=1)
        if nxt:
            running[-1] = (queue, nxt[0])
        else:
            running.pop()

    return hop


def _sources(tree: Path) -> dict[str, str]:
    """The assembled text of each script of `SCRIPTS` as the code in ``tree`` makes it."""
    code = ("import json, importlib\n"
            "for m in ('ironforge_nb.queue.scripting', 'ironforge_nb.queue.lua'):\n"
            "    try:\n"
            "        mod = importlib.import_module(m)\n"
            "        if hasattr(mod, 'lua_source'): break\n"
            "    except ImportError: pass\n"
            f"print(json.dumps({{n: mod.lua_source(n) for n in {list(SCRIPTS)!r}}}))\n")
    out = subprocess.run([sys.executable, "-c", code], cwd=tree, check=True, text=True,
                         capture_output=True, env=dict(os.environ, PYTHONPATH=str(tree)))
    return dict(json.loads(out.stdout))


def _steps(queue: Any, hops: int) -> dict[str, Callable[[], Any]]:
    """One call of each phase's script on ``queue`` (one job at a time); the chain hops' runs
    (``hops`` of them) are submitted here, before any phase."""
    leases: list[Any] = []
    return {"enqueue_jobs": lambda: queue.enqueue(b"x"),
            "claim_jobs": lambda: leases.append(queue.dequeue("w", timeout=0)),
            "complete_job": lambda: queue.complete(leases.pop()),
            "chain_hop": _chain_hops(queue.config, hops, queue._scripts._scripts["complete_job"])}


def interleaved(refs: list[str], jobs: int, rounds: int) -> None:
    """The ``--interleave`` measurement (see the module doc)."""
    import hashlib

    from ironforge_nb.local import RedisServer
    from ironforge_nb.queue import Queue, RedisConfig

    # a comment naming the ref: the same code twice (an A/A check) gets two SHAs
    versions = {ref: {name: f"{src}\n-- {ref}\n"
                      for name, src in _sources(export_tree(ref)).items()}
                for ref in refs}
    names = [*refs, "this tree"]
    durations: dict[str, dict[str, list[int]]] = {n: {p: [] for p in PHASES} for n in names}
    with RedisServer() as server:
        import redis

        client = redis.Redis.from_url(server.url)
        client.config_set("slowlog-log-slower-than", 0)
        client.config_set("slowlog-max-len", 64 * jobs)  # commands inside scripts too
        for r in range(rounds):
            client.flushall()
            queue = Queue("bench", RedisConfig(url=server.url))
            scripts = queue._scripts._scripts  # a benchmark swaps versions
            shas: dict[str, dict[str, tuple[str, str]]] = {"this tree": {}}
            for name in SCRIPTS:
                own = scripts[name]
                shas["this tree"][name] = (own._sha, own._source)
                for ref in refs:
                    src = versions[ref][name]
                    shas.setdefault(ref, {})[name] = (client.script_load(src), src)
                    assert shas[ref][name][0] == hashlib.sha1(src.encode()).hexdigest()
            steps = _steps(queue, jobs)
            queue.enqueue(b"warm")
            queue.complete(queue.dequeue("w", timeout=0))  # type: ignore[arg-type]
            for phase in PHASES:
                name = script_of(phase)
                script = scripts[name]
                client.slowlog_reset()
                for i in range(jobs):
                    turn = names[(i + r) % len(names)]  # each round another order
                    script._sha, script._source = shas[turn][name]
                    steps[phase]()
                by_sha = {shas[n][name][0]: n for n in names}
                for entry in client.slowlog_get(64 * jobs):
                    args = entry["command"].split()
                    if args[:1] == [b"EVALSHA"] and args[1].decode() in by_sha:
                        durations[by_sha[args[1].decode()]][phase].append(entry["duration"])
    print(f"{rounds} rounds of {jobs:,} calls per phase, the versions in turn call by call "
          "(SLOWLOG, us per call: mean of the fastest 90% [preempted calls left out] / "
          "median / mean):")
    for phase in PHASES:
        cells = []
        for n in names:
            got = sorted(durations[n][phase])
            fast = statistics.fmean(got[:max(1, len(got) * 9 // 10)])
            cells.append(f"{n} {fast:6.2f} / {statistics.median(got):4.1f} / "
                         f"{statistics.fmean(got):6.2f} ({len(got):,} calls)")
        print(f"  {phase:<13} " + "   ".join(cells))


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def callgrind_redis(out: Path) -> Iterator[tuple[Any, int]]:
    """A redis-server under ``valgrind --tool=callgrind`` collecting only inside
    ``evalGenericCommand`` (EVALSHA: the Lua VM and the commands the script calls), its dumps
    in ``out``: (a client with a long timeout, its pid for ``callgrind_control``)."""
    import time

    import redis

    port = _free_port()
    server = subprocess.Popen(
        ["valgrind", "--tool=callgrind", "--toggle-collect=evalGenericCommand",
         f"--callgrind-out-file={out}/cg.out", "redis-server", "--port", str(port),
         "--save", "", "--appendonly", "no", "--dir", str(out)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        client = redis.Redis(port=port, socket_timeout=600)
        for _ in range(600):  # valgrind starts redis-server slowly
            try:
                client.ping()
                break
            except redis.ConnectionError:
                time.sleep(0.1)
        yield client, server.pid
    finally:
        server.terminate()
        server.wait(timeout=300)


def dumps(out: Path) -> dict[str, int]:
    """Instructions of each ``callgrind_control -d <name>`` dump in ``out``, by name."""
    import re

    got = {}
    for dump in out.glob("cg.out.*"):
        text = dump.read_text()
        phase_of = re.search(r"^desc: Trigger: dump (\w+)", text, re.M)
        total = re.search(r"^summary: (\d+)", text, re.M)
        if phase_of and total:
            got[phase_of.group(1)] = int(total.group(1))
    return got


def _counted(sources: dict[str, str], jobs: int) -> dict[str, float]:
    """Instructions per call of each phase's script (``sources``), on a redis-server under
    callgrind collecting inside EVALSHA only."""
    from ironforge_nb.queue import Queue, RedisConfig

    out = Path(tempfile.mkdtemp(prefix="bench-lua-cg-"))
    with callgrind_redis(out) as (client, pid):
        port = client.connection_pool.connection_kwargs["port"]
        queue = Queue("bench", RedisConfig(url=f"redis://127.0.0.1:{port}/0",
                                           socket_timeout=300))
        scripts = queue._scripts._scripts  # a benchmark swaps versions
        for name in SCRIPTS:
            scripts[name]._source = sources[name]
            scripts[name]._sha = client.script_load(sources[name])
        steps = _steps(queue, jobs)
        queue.enqueue(b"warm")
        queue.complete(queue.dequeue("w", timeout=0))  # type: ignore[arg-type]
        subprocess.run(["callgrind_control", "-z", str(pid)], check=True, capture_output=True)
        for phase in PHASES:
            for _ in range(jobs):
                steps[phase]()
            subprocess.run(["callgrind_control", "-d", phase, str(pid)], check=True,
                           capture_output=True)
        return {phase: total / jobs for phase, total in dumps(out).items()}


def counted(refs: list[str], jobs: int) -> None:
    """The ``--callgrind`` measurement (see the module doc)."""
    trees = {**{ref: export_tree(ref) for ref in refs}, "this tree": ROOT}
    got = {name: _counted(_sources(tree), jobs) for name, tree in trees.items()}
    print(f"instructions per call inside EVALSHA (callgrind), {jobs:,} calls per phase:")
    for phase in PHASES:
        print(f"  {phase:<13} " + "   ".join(f"{name} {got[name].get(phase, 0):>9,.0f}"
                                            for name in trees))


def export_tree(ref: str, *benchmarks: str) -> Path:
    """The tree of commit ``ref`` in a temp dir, with this tree's ``benchmarks/bench_lua_calls.py``
    and ``benchmarks/<name>`` for each of ``benchmarks`` copied in: the old code, measured by
    today's benchmark (used by every ``--callgrind REF`` / ``--compare REF``)."""
    dest = Path(tempfile.mkdtemp(prefix="bench-tree-"))
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", ref], check=True,
                             capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(dest)], input=archive, check=True)
    for name in (Path(__file__).name, *benchmarks):
        (dest / "benchmarks" / name).write_text((ROOT / "benchmarks" / name).read_text())
    return dest


def _run_in(tree: Path, url: str, pid: int, jobs: int) -> dict[str, dict[str, float]]:
    env = dict(os.environ, PYTHONPATH=str(tree))
    proc = subprocess.run([sys.executable, str(tree / "benchmarks" / Path(__file__).name),
                           "--child", url, str(pid), str(jobs)],
                          env=env, check=True, capture_output=True, text=True)
    return json.loads(proc.stdout)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--jobs", type=int, default=5000)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--compare", action="append", default=[],
                    help="a git commit to measure too (repeatable)")
    ap.add_argument("--interleave", action="append", default=[],
                    help="a git commit whose scripts take turns with this tree's (repeatable)")
    ap.add_argument("--callgrind", action="append", default=[],
                    help="a git commit whose scripts' instructions are counted too (repeatable)")
    ap.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.callgrind:
        counted(args.callgrind, args.jobs)
        return
    if args.interleave:
        interleaved(args.interleave, args.jobs, args.rounds)
        return
    if args.child:
        url, pid, jobs = args.child
        print(json.dumps(one_round(url, int(pid), int(jobs))))
        return

    from ironforge_nb.local import RedisServer

    trees = {**{ref: export_tree(ref) for ref in args.compare}, "this tree": ROOT}
    rounds: dict[str, list[dict[str, dict[str, float]]]] = {name: [] for name in trees}
    with RedisServer() as server:
        assert server.pid is not None
        for r in range(args.rounds):
            for name, tree in trees.items():
                rounds[name].append(_run_in(tree, server.url, server.pid, args.jobs))
                got = rounds[name][-1]
                print(f"round {r + 1} {name:>12}: " + ", ".join(
                    f"{p} {got[p]['usec_per_call']:.2f} us ({got[p]['cpu_us_per_call']:.2f} cpu)"
                    for p in PHASES), flush=True)
    print(f"\nmedians of {args.rounds} rounds of {args.jobs:,} calls each "
          "(INFO commandstats usec_per_call of EVALSHA; redis-server CPU us per call):")
    for phase in PHASES:
        cells = []
        for name in trees:
            usec = statistics.median(x[phase]["usec_per_call"] for x in rounds[name])
            cpu = statistics.median(x[phase]["cpu_us_per_call"] for x in rounds[name])
            cells.append(f"{name} {usec:6.2f} us ({cpu:6.2f} cpu)")
        print(f"  {phase:<13} " + "   ".join(cells))
    if len(trees) > 1:  # the same round's figures differ by less than the rounds' spread
        base = next(iter(trees))
        print(f"\nmedian of the rounds' differences from {base} (usec_per_call; cpu):")
        for phase in PHASES:
            cells = []
            for name in list(trees)[1:]:
                pairs = list(zip(rounds[name], rounds[base], strict=True))
                usec = statistics.median(a[phase]["usec_per_call"] - b[phase]["usec_per_call"]
                                         for a, b in pairs)
                cpu = statistics.median(a[phase]["cpu_us_per_call"] - b[phase]["cpu_us_per_call"]
                                        for a, b in pairs)
                cells.append(f"{name} {usec:+6.2f} us ({cpu:+6.2f} cpu)")
            print(f"  {phase:<13} " + "   ".join(cells))


if __name__ == "__main__":
    main()
