"""A stand-in worker PROCESS for the queue fault tests (the real `ironforge_nb.worker` package
does not exist yet; replace this helper with it once it does).

A test starts it as a separate process with `spawn` and may SIGKILL it at any moment. It records
what it does in a log file of its own, one tab-separated line per step (``kind worker job
attempt [outcome]``) written with a single ``write(2)`` in append mode, so that a kill loses at
most the line being written; `read_log` skips a torn last line.

Modes:
  ``work``    claim up to ``--batch`` jobs, and for each: heartbeat, "work" ``--work`` seconds, log
              ``done`` (the work's side effect, before the acknowledgement), complete it with the
              result ``b"<worker>:<attempt>"``, log ``acked`` (or ``lost`` on LeaseLost). When idle
              it reaps expired leases, as every real worker will.
  ``zombie``  claim one job, log ``claimed``, then for each round r wait for the file
              ``<go>.<r>`` and try heartbeat, progress, complete and fail with the stale lease,
              logging each outcome (``ok`` or the exception class name).

Either mode exits when its parent process is gone, so a crashed test leaves no orphan behind.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from ironforge_nb.errors import LeaseLost, QueueError
from ironforge_nb.queue.config import RedisConfig
from ironforge_nb.queue.queue import Queue
from ironforge_nb.queue.records import Lease

__all__ = ["Entry", "read_log", "spawn", "wait_for_entries"]

ZOMBIE_CALLS = ("heartbeat", "progress", "complete", "fail")


@dataclass(frozen=True)
class Entry:
    """One log line: what ``worker`` did to attempt ``attempt`` of ``job``."""

    kind: str
    worker: str
    job: str
    attempt: int
    outcome: str = ""


def spawn(url: str, namespace: str, queue: str, log: Path, name: str, *args: str,
          ) -> subprocess.Popen[bytes]:
    """Start the stand-in worker as a separate process (extra ``args``: ``--mode`` etc.)."""
    cmd = [sys.executable, __file__, "--url", url, "--namespace", namespace, "--queue", queue,
           "--log", str(log), "--name", name, *args]
    return subprocess.Popen(cmd, stdin=subprocess.DEVNULL)


def read_log(path: Path) -> list[Entry]:
    """The complete lines of a worker's log (a line torn by SIGKILL is skipped)."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        return []
    out = []
    for line in text.split("\n")[:-1]:  # the part after the last newline is torn or empty
        kind, worker, job, attempt, *rest = line.split("\t")
        out.append(Entry(kind, worker, job, int(attempt), rest[0] if rest else ""))
    return out


def wait_for_entries(path: Path, ready: Callable[[list[Entry]], bool],
                     timeout: float = 15.0) -> list[Entry]:
    """Poll the log until ``ready(entries)``; AssertionError after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        entries = read_log(path)
        if ready(entries):
            return entries
        assert time.monotonic() < deadline, f"worker log {path} stalled at: {entries[-5:]}"
        time.sleep(0.01)


class _Log:
    """Append-only log file; each line goes out in one write(2)."""

    def __init__(self, path: str, worker: str) -> None:
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        self._worker = worker

    def __call__(self, kind: str, lease: Lease, outcome: str = "") -> None:
        fields = [kind, self._worker, lease.job_id, str(lease.attempt)]
        line = "\t".join([*fields, outcome] if outcome else fields) + "\n"
        os.write(self._fd, line.encode())


def _work(q: Queue, name: str, log: _Log, ns: argparse.Namespace, parent: int) -> None:
    while os.getppid() == parent:
        leases = q.dequeue_many(name, ns.batch, lease=ns.lease, timeout=0.05)
        if not leases:
            q.reap()
            continue
        for lease in leases:
            log("claimed", lease)
        for lease in leases:
            try:
                q.heartbeat(lease)
                time.sleep(ns.work)
                log("done", lease)
                q.complete(lease, f"{name}:{lease.attempt}".encode())
                log("acked", lease)
            except LeaseLost:
                log("lost", lease)


def _zombie(q: Queue, name: str, log: _Log, ns: argparse.Namespace, parent: int) -> None:
    lease = None
    while lease is None and os.getppid() == parent:
        lease = q.dequeue(name, lease=ns.lease, timeout=0.1)
    if lease is None:
        return
    log("claimed", lease)
    calls: dict[str, Callable[[Lease], object]] = {
        "heartbeat": q.heartbeat,
        "progress": lambda le: q.progress(le, 0.99, f"{name} was here"),
        "complete": lambda le: q.complete(le, f"{name}:{le.attempt}".encode()),
        "fail": lambda le: q.fail(le, f"{name} failed late"),
    }
    for round_ in range(1, ns.rounds + 1):
        go = Path(f"{ns.go}.{round_}")
        while not go.exists():
            if os.getppid() != parent:
                return
            time.sleep(0.005)
        for call in ZOMBIE_CALLS:
            try:
                calls[call](lease)
                outcome = "ok"
            except QueueError as err:
                outcome = type(err).__name__
            log(f"round{round_}:{call}", lease, outcome)


def main(argv: Sequence[str] | None = None) -> int:
    """Parse the command line and run one worker until its parent goes away (or it is done)."""
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--url", required=True)
    p.add_argument("--namespace", required=True)
    p.add_argument("--queue", required=True)
    p.add_argument("--log", required=True)
    p.add_argument("--name", required=True)
    p.add_argument("--mode", choices=("work", "zombie"), default="work")
    p.add_argument("--lease", type=float, default=0.4, help="lease length, seconds")
    p.add_argument("--batch", type=int, default=3, help="jobs claimed per call")
    p.add_argument("--work", type=float, default=0.02, help="seconds of 'work' per job")
    p.add_argument("--go", default="", help="zombie: path prefix of the go files")
    p.add_argument("--rounds", type=int, default=1, help="zombie: rounds of stale calls")
    ns = p.parse_args(argv)
    parent = os.getppid()
    config = RedisConfig(url=ns.url, namespace=ns.namespace)
    q = Queue(ns.queue, config)
    log = _Log(ns.log, ns.name)
    (_zombie if ns.mode == "zombie" else _work)(q, ns.name, log, ns, parent)
    config.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
