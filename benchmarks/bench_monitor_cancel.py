"""The monitor's cancel button on a big run, in a real kernel: how long the click takes and
how late the kernel's event loop runs meanwhile.

``python benchmarks/bench_monitor_cancel.py [--tasks 100000]``

A kernel (the ipykernel this project installs) connects with ``ifn.connect(workers=0,
home=None)`` (a throwaway server, no workers: every task stays queued), submits a map of
``--tasks`` tasks and a gather, attaches ``run.monitor()`` and clicks its "cancel run" button
from the kernel's loop, as a front end's click is handled. Until the monitor shows the
cancelled run, a loop task sleeps 10 ms again and again and records how late it wakes up:
the loop's lag (a cancel run on the loop itself froze it for the whole cancel, 5-7 s at
100,000 tasks). Prints one JSON line: the click's time, the notice shown right after it, the
time to the end, the lag's p50 / p99 / max, the final notice and counts, the load average.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

CELL_SETUP = """
import asyncio, json, os, time
import ironforge_nb as ifn
conn = ifn.connect(workers=0, home=None)
p = ifn.Pipeline("big")
p.map("sq", abs, over=list(range({tasks}))).task("total", sum, after="sq")
run = p.submit()
"""

CELL_CANCEL = """
m = run.monitor(interval=0.2)
await asyncio.sleep(0.5)
lags = []
t0 = time.perf_counter()
m._view.cancel.click()
click = time.perf_counter() - t0
first = m._view.notice.value
while not (m.done and not m._busy):
    t = time.perf_counter()
    await asyncio.sleep(0.01)
    lags.append(time.perf_counter() - t - 0.01)
total = time.perf_counter() - t0
lags.sort()
print(json.dumps({"click_ms": round(click * 1000, 1), "first_notice": first,
                  "until_done_s": round(total, 2),
                  "loop_lag_ms_p50": round(lags[len(lags) // 2] * 1000, 1),
                  "loop_lag_ms_p99": round(lags[int(len(lags) * 0.99)] * 1000, 1),
                  "loop_lag_ms_max": round(lags[-1] * 1000, 1), "wakeups": len(lags),
                  "notice": m._view.notice.value, "counts": m.counts,
                  "load": os.getloadavg()}))
m.close()
conn.close()
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tasks", type=int, default=100_000)
    args = parser.parse_args()
    from jupyter_client.manager import start_new_kernel

    manager, client = start_new_kernel(kernel_name="python3")

    def run(code: str) -> None:
        def hook(msg: dict[str, Any]) -> None:
            if msg["msg_type"] == "stream":
                sys.stdout.write(msg["content"]["text"])
            elif msg["msg_type"] == "error":
                sys.stdout.write("\n".join(msg["content"]["traceback"]))

        client.execute_interactive(code, timeout=900, output_hook=hook)

    try:
        run(CELL_SETUP.format(tasks=args.tasks))
        run(CELL_CANCEL)
    finally:
        client.stop_channels()
        manager.shutdown_kernel(now=True)


if __name__ == "__main__":
    main()
