"""The live monitor on a 10,000-task run: cost per refresh, Redis work per refresh, run slowdown.

``python benchmarks/bench_monitor.py [--rounds 3] [--layers 100] [--interval 0.2] [--quick]``

Set-up: ``ifn.connect(home=None)`` (a throwaway embedded redis-server, no AOF, and 2 local
worker processes, default options) runs LAYERED pipelines of no-op tasks: ``--layers`` (100)
layers x 100 tasks, 2 random parents each from the layer above, built as ``bench_runs.py``
builds them. A run's throughput is its task count over the time between its ``created`` and
``finished`` stamps, which Redis writes (so how fast this script notices the end does not
count).

Phases (figures only, never assertions):

* **throughput** (``--rounds`` rounds): each round runs the pipeline once bare (``run.wait``,
  no progress bar) and once with ``run.monitor()`` attached, whose ``refresh()`` this script
  calls every ``--interval`` seconds (0.2) until ``monitor.done``, in this process, as the
  kernel's loop would (and, as the loop does, at once again after a refresh that was behind:
  one reads at most ``EVENTS_PER_POLL`` events); the order alternates from round to round, as
  the 2 cores are shared and the load moves. Reported: the time of each refresh (p50 / p99 /
  max over every refresh of every round), the CPU it took in this process (every thread: the
  graph painter's too) and on the refreshing thread alone, the interpreter's full (generation
  2) garbage collections that fell inside a refresh (they walk every object of the process,
  not the monitor's work; p99 without them is shown too), the time to attach
  (``run.monitor()``: one whole read of the run and the first drawing) and both throughputs
  (median of the rounds, and the ratio per round).
* **accounting**: one monitored run of each size (the 10k run and a 1k run, 10 layers x 100)
  in which the worker processes (and their executors) are paused with SIGSTOP around each
  refresh, so that the ``INFO commandstats`` delta around it counts the monitor's commands
  only (``info`` itself left out; a blank window with no refresh between the two INFOs checks
  that nothing else ran: it must read 0). Reported per refresh: Redis commands, events read
  (all those added to the run's stream since the previous refresh, ``XINFO STREAM``
  ``entries-added``, or ``EVENTS_PER_POLL`` of them when it is behind), the
  data step and drawing step apart (a graph layout by ``dot`` is part of the data step, at
  most once a second), and the commands of a refresh once the run has ended (no new event).
  If the commands per refresh follow the events and not the run's size, the 1k and 10k rows
  agree per event and the idle refreshes cost the same.

Targets (issue 10): refresh p99 <= 50 ms; Redis work per refresh proportional to events, not
to the run's size; the monitor costs the run's throughput less than 5%. Prints a markdown
summary and saves every figure to ``benchmarks/results/monitor.json``.
"""

from __future__ import annotations

import argparse
import gc
import io
import json
import os
import statistics
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager, redirect_stdout, suppress
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_runs import layered_pipeline, wide_pipeline

import ironforge_nb as ifn

RESULTS = Path(__file__).resolve().parent / "results" / "monitor.json"
WIDTH = 100


GC_PAUSES: list[float] = []  # durations of the full (generation 2) collections since cleared
_gc_began = [0.0]


def _gc_timer(phase: str, info: dict[str, int]) -> None:
    if info["generation"] == 2:
        if phase == "start":
            _gc_began[0] = time.perf_counter()
        else:
            GC_PAUSES.append(time.perf_counter() - _gc_began[0])


gc.callbacks.append(_gc_timer)


def pct(values: list[float], q: float) -> float:
    """The ``q`` quantile (0..1) of ``values``, nearest rank."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * len(ordered)) - 1))]


def throughput(run: ifn.Run) -> float:
    """Tasks per second between the run's ``created`` and ``finished`` stamps (Redis time)."""
    info = run.info()
    if info["status"] != "succeeded":
        raise RuntimeError(f"run {run.id} ended {info['status']}: {run.counts()}")
    return float(info["total"]) / ((int(info["finished"]) - int(info["created"])) / 1000)


def commandstats(client: Any) -> Counter[str]:
    """Calls per command since the server started (``info`` itself left out), and under
    ``"usec"`` the server's microseconds spent in them."""
    stats = client.info("commandstats")
    out = Counter({name.removeprefix("cmdstat_"): int(row["calls"])
                   for name, row in stats.items() if name != "cmdstat_info"})
    out["usec"] = sum(int(row["usec"]) for name, row in stats.items()
                      if name != "cmdstat_info")
    return out


def entries_added(client: Any, stream: str) -> int:
    """Entries ever added to ``stream`` (trimming does not lower it)."""
    try:
        return int(client.xinfo_stream(stream)["entries-added"])
    except Exception:  # not created yet
        return 0


def ticks(interval: float) -> Iterator[None]:
    """Yields every ``interval`` seconds (a late tick is not made up for)."""
    due = time.perf_counter()
    while True:
        due += interval
        time.sleep(max(0.0, due - time.perf_counter()))
        due = max(due, time.perf_counter())
        yield


# ---------------------------------------------------------------------- throughput rounds


def run_bare(make: Callable[[], ifn.Pipeline]) -> dict[str, Any]:
    """One run followed by ``run.wait()`` only."""
    run = make().submit()
    run.wait(progress=False)
    return {"mode": "bare", "tasks_per_s": throughput(run)}


def run_monitored(make: Callable[[], ifn.Pipeline], interval: float) -> dict[str, Any]:
    """One run with a monitor refreshed every ``interval`` s until it shows the end."""
    p = make()
    run = p.submit()
    start, cpu_start = time.perf_counter(), time.process_time()
    with redirect_stdout(io.StringIO()):  # no kernel here: the monitor prints a text view
        monitor = run.monitor(interval=interval)
    attach, attach_cpu = time.perf_counter() - start, time.process_time() - cpu_start
    times, cpu, own, collected, behind = [], [], [], [], 0
    for _ in ticks(interval):
        while True:  # as the kernel's loop does: a refresh that is behind is followed at once
            GC_PAUSES.clear()
            wall, proc, thread = time.perf_counter(), time.process_time(), time.thread_time()
            monitor.refresh()
            times.append(time.perf_counter() - wall)
            cpu.append(time.process_time() - proc)
            own.append(time.thread_time() - thread)
            collected.append(sum(GC_PAUSES))
            if not monitor._tracker.behind or monitor.done:
                break
            behind += 1
        if monitor.done:
            break
    counts = monitor.counts
    monitor.close()
    if counts != {"completed": len(p)}:
        raise RuntimeError(f"the monitor showed {counts} at the end of run {run.id}")
    return {"mode": "monitor", "tasks_per_s": throughput(run), "attach_s": attach,
            "attach_cpu_s": attach_cpu,
            "refresh_s": times, "refresh_cpu_s": cpu, "refresh_thread_cpu_s": own,
            "refresh_full_gc_s": collected, "behind": behind}


def bench_throughput(make: Callable[[], ifn.Pipeline], rounds: int,
                     interval: float) -> list[dict[str, Any]]:
    """``rounds`` rounds of a bare run and a monitored run, the order alternating."""
    out = []
    for r in range(rounds):
        modes = ("bare", "monitor") if r % 2 == 0 else ("monitor", "bare")
        row: dict[str, Any] = {"round": r + 1}
        for mode in modes:
            row[mode] = run_bare(make) if mode == "bare" else run_monitored(make, interval)
        ratio = row["monitor"]["tasks_per_s"] / row["bare"]["tasks_per_s"]
        refresh = row["monitor"]["refresh_s"]
        print(f"  round {r + 1} ({modes[0]} first): bare {row['bare']['tasks_per_s']:,.0f} "
              f"tasks/s, monitored {row['monitor']['tasks_per_s']:,.0f} tasks/s "
              f"(x{ratio:.3f}); {len(refresh)} refreshes, p50 "
              f"{pct(refresh, 0.5) * 1000:.1f} ms, p99 {pct(refresh, 0.99) * 1000:.1f} ms, "
              f"max {max(refresh) * 1000:.1f} ms", flush=True)
        out.append(row)
    return out


# ---------------------------------------------------------------------- accounting


@contextmanager
def paused(pids: list[int]) -> Iterator[None]:
    """SIGSTOP the worker processes and their executors for the block, then SIGCONT."""
    import psutil

    procs = []
    for pid in pids:
        with_children = psutil.Process(pid)
        procs += [with_children, *with_children.children(recursive=True)]
    stopped = []
    for proc in procs:
        with suppress(psutil.NoSuchProcess):  # an executor may just have been replaced
            proc.suspend()
            stopped.append(proc)
    time.sleep(0.005)  # a command already on the wire reaches the server before we count
    try:
        yield
    finally:
        for proc in stopped:
            with suppress(psutil.NoSuchProcess):
                proc.resume()


def account(conn: Any, make: Callable[[], ifn.Pipeline], interval: float,
            idle: int = 5) -> dict[str, Any]:
    """A monitored run whose refreshes are counted in Redis with the workers paused."""
    client = conn.config.client()
    pids = list(conn.local_workers.pids)
    p = make()
    run = p.submit()
    stream = conn.config.keys.run(run.id).events
    with paused(pids), redirect_stdout(io.StringIO()):
        monitor = run.monitor(interval=interval)
        seen = entries_added(client, stream)  # what the monitor has read when attached
    rows: list[dict[str, Any]] = []
    blank: Counter[str] = Counter()
    for _ in ticks(interval):
        with paused(pids):
            before = commandstats(client)
            blank += commandstats(client) - before
            blank.pop("usec", None)
            while True:  # a refresh that is behind is followed at once, as in the kernel
                rows.append(counted_refresh(client, stream, monitor, seen, True))
                seen += rows[-1]["events"]
                if not rows[-1]["behind"] or monitor.done:
                    break
        if monitor.done:
            break
    for _ in range(idle):
        rows.append(counted_refresh(client, stream, monitor, seen, False))
    monitor.close()
    following = [r for r in rows if r["following"]]
    idle_rows = [r for r in rows if not r["following"]]
    per_event = [r["commands"] / r["events"] for r in following if r["events"]]
    used: Counter[str] = Counter()
    for r in following:
        used.update(r["by_command"])
    return {"tasks": len(p), "refreshes": len(following), "blank_window_commands": sum(
        blank.values()), "rows": rows,
        "commands_p50": pct([r["commands"] for r in following], 0.5),
        "commands_max": max(r["commands"] for r in following),
        "events_mean": statistics.mean(r["events"] for r in following),
        "commands_per_event": sum(r["commands"] for r in following) / max(
            1, sum(r["events"] for r in following)),
        "commands_per_event_p50": pct(per_event, 0.5) if per_event else 0.0,
        "redis_usec_per_event": sum(r["redis_usec"] for r in following) / max(
            1, sum(r["events"] for r in following)),
        "redis_usec_p50": pct([r["redis_usec"] for r in following], 0.5),
        "redis_usec_max": max(r["redis_usec"] for r in following),
        "idle_redis_usec": [r["redis_usec"] for r in idle_rows],
        "idle_commands": [r["commands"] for r in idle_rows],
        "by_command": dict(used.most_common()),
        "step_ms_p50": pct([r["step_s"] for r in following], 0.5) * 1000,
        "step_ms_max": max(r["step_s"] for r in following) * 1000,
        "draw_ms_p50": pct([r["draw_s"] for r in following], 0.5) * 1000,
        "draw_ms_max": max(r["draw_s"] for r in following) * 1000}


def counted_refresh(client: Any, stream: str, monitor: Any, seen: int,
                    following: bool) -> dict[str, Any]:
    """One refresh between two INFO commandstats; its data and drawing halves timed apart
    (``refresh()`` is exactly ``_step()`` then ``_draw()``)."""
    added = entries_added(client, stream)
    before = commandstats(client)
    draws = monitor._painter.draws
    t0 = time.perf_counter()
    monitor._step()
    t1 = time.perf_counter()
    monitor._draw()
    t2 = time.perf_counter()
    used = commandstats(client) - before
    usec = used.pop("usec", 0)
    # the events this refresh read: all those added since the last one, or EVENTS_PER_POLL
    # of them when it was behind (the rest are read by the next refreshes)
    return {"following": following, "added": added, "events": monitor._tracker.last_read,
            "backlog": added - seen, "behind": monitor._tracker.behind,
            "commands": sum(used.values()), "by_command": dict(used), "redis_usec": usec,
            "step_s": t1 - t0, "draw_s": t2 - t1,
            "graph_drawn": monitor._painter.draws != draws}


# ---------------------------------------------------------------------- report


def summary(out: dict[str, Any]) -> str:
    """The markdown figures."""
    rows = out["throughput"]
    refresh = [t for r in rows for t in r["monitor"]["refresh_s"]]
    cpu = [t for r in rows for t in r["monitor"]["refresh_cpu_s"]]
    own = [t for r in rows for t in r["monitor"]["refresh_thread_cpu_s"]]
    pauses = [t for r in rows for t in r["monitor"]["refresh_full_gc_s"]]
    gcs = [g for g in pauses if g]
    clean = [t for t, g in zip(refresh, pauses, strict=True) if not g] or [0.0]
    bare = statistics.median(r["bare"]["tasks_per_s"] for r in rows)
    mon = statistics.median(r["monitor"]["tasks_per_s"] for r in rows)
    ratios = [r["monitor"]["tasks_per_s"] / r["bare"]["tasks_per_s"] for r in rows]
    # what the monitor took from the 2 cores the workers and Redis run on: an upper bound of
    # its cost to the run, measured in CPU time (it does not move with the other jobs' load)
    shares = [(r["monitor"].get("attach_cpu_s", 0.0) + sum(r["monitor"]["refresh_cpu_s"]))
              / (out["tasks"] / r["monitor"]["tasks_per_s"] * 2) for r in rows]
    lines = [
        f"LAYERED {out['tasks']:,} tasks, 2 local workers, refresh every "
        f"{out['interval'] * 1000:.0f} ms, {len(rows)} rounds",
        "",
        "| figure | value | target |",
        "|---|---:|---|",
        f"| refresh time p50 / p99 / max | {pct(refresh, .5) * 1000:.1f} / "
        f"{pct(refresh, .99) * 1000:.1f} / {max(refresh) * 1000:.1f} ms | p99 <= 50 ms |",
        f"| refresh CPU in this process, p50 / p99 | {pct(cpu, .5) * 1000:.1f} / "
        f"{pct(cpu, .99) * 1000:.1f} ms | |",
        f"| refresh CPU of the refreshing thread, p50 / p99 / max | {pct(own, .5) * 1000:.1f}"
        f" / {pct(own, .99) * 1000:.1f} / {max(own) * 1000:.1f} ms | |",
        f"| refreshes that included a full GC (interpreter-wide): count, their GC time | "
        f"{len(gcs)} of {len(refresh)}; {', '.join(f'{g * 1000:.0f}' for g in gcs) or '-'} ms"
        f" | |",
        f"| refresh time p99 / max, refreshes without a full GC | "
        f"{pct(clean, .99) * 1000:.1f} / {max(clean) * 1000:.1f} ms | |",
        f"| refreshes that followed one at once (the previous was behind) | "
        f"{sum(r['monitor']['behind'] for r in rows)} | |",
        f"| attach (`run.monitor()`), median | "
        f"{statistics.median(r['monitor']['attach_s'] for r in rows) * 1000:.0f} ms | |",
        f"| throughput bare / monitored (medians) | {bare:,.0f} / {mon:,.0f} tasks/s | |",
        f"| monitored / bare, per round | {', '.join(f'{x:.3f}' for x in ratios)} "
        f"(median {statistics.median(ratios):.3f}) | >= 0.95 |",
        f"| the monitor's CPU (attach + refreshes, every thread) over the monitored run's "
        f"duration x 2 cores, per round | {', '.join(f'{x:.1%}' for x in shares)} | < 5% |",
    ]
    for acc in out["accounting"]:
        lines.append(
            f"| {acc['tasks']:,}-task run: Redis commands per refresh p50 / max; events per "
            f"refresh (mean); commands per event | {acc['commands_p50']} / "
            f"{acc['commands_max']}; {acc['events_mean']:.0f}; "
            f"{acc['commands_per_event']:.3f} | grows with events |")
        lines.append(
            f"| {acc['tasks']:,}-task run: Redis time per refresh p50 / max; per event | "
            f"{acc['redis_usec_p50']} / {acc['redis_usec_max']} us; "
            f"{acc['redis_usec_per_event']:.2f} us | grows with events |")
        idle = zip(acc["idle_commands"], acc["idle_redis_usec"], strict=True)
        lines.append(
            f"| {acc['tasks']:,}-task run: commands (Redis us) of a refresh with no new event | "
            f"{', '.join(f'{c} ({u})' for c, u in idle)} | same for any size |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--layers", type=int, default=100)
    parser.add_argument("--interval", type=float, default=0.2)
    parser.add_argument("--quick", action="store_true", help="20 layers, 1 round")
    args = parser.parse_args()
    layers, rounds = (20, 1) if args.quick else (args.layers, args.rounds)
    out: dict[str, Any] = {"tasks": layers * WIDTH, "interval": args.interval,
                           "load_start": os.getloadavg()}
    conn = ifn.connect(workers=2, home=None)  # a throwaway server: no AOF, nothing else on it
    try:
        wide_pipeline(300).submit().wait(progress=False)  # warm the workers and executors
        run_monitored(lambda: layered_pipeline(3, WIDTH), args.interval)  # warm the imports
        print(f"throughput: LAYERED {layers} x {WIDTH}, {rounds} rounds", flush=True)
        out["throughput"] = bench_throughput(lambda: layered_pipeline(layers, WIDTH), rounds,
                                             args.interval)
        print("accounting (workers paused around each refresh)", flush=True)
        out["accounting"] = [account(conn, lambda n=n: layered_pipeline(n, WIDTH),
                                     args.interval)
                             for n in (layers, max(1, layers // 10))]
    finally:
        conn.close()
    out["load_end"] = os.getloadavg()
    print(summary(out))
    if not args.quick:
        RESULTS.parent.mkdir(exist_ok=True)
        RESULTS.write_text(json.dumps(out, indent=1))
        print(f"saved to {RESULTS}")


if __name__ == "__main__":
    main()
