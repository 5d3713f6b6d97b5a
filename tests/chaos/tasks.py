"""What the chaos suite's jobs do: write one ledger line per execution, then return a result.

A line is ``key pid time`` (time: seconds since the epoch), written with one ``write(2)`` on a
file opened in append mode for that execution alone, so two executions of one job give two
lines and a SIGKILL tears at most the line being written (`harness.Ledger` skips it).

Pipeline tasks (`item_task`, `held_task`) are shipped by value, as a notebook's functions are
(`harness` registers this module with cloudpickle). Plain queue jobs run through `execute`, the
custom executor the workers load with ``--executor tests.chaos.tasks:execute``; its payload is
JSON: ``{"key", "ledger", "work"}``, plus ``"hold"`` for the job a test stops its worker on.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from ironforge_nb.errors import QueueError
from ironforge_nb.queue import Lease, Queue, RedisConfig

EXECUTOR = "tests.chaos.tasks:execute"


def note(ledger: str, key: str) -> None:
    """Append this execution's line to ``ledger``."""
    fd = os.open(ledger, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, f"{key} {os.getpid()} {time.time():.3f}\n".encode())
    finally:
        os.close(fd)


def item_task(ledger: str, work: float, prefix: str = "") -> Any:
    """A map member: ``fn(item)`` notes ``prefix + item`` and returns ``item * 2`` after
    ``work`` s."""
    def fn(item: int) -> int:
        note(ledger, f"{prefix}{item}")
        time.sleep(work)
        return item * 2
    return fn


def named_task(ledger: str, key: str, value: Any) -> Any:
    """A task taking any upstream results: notes ``key``, returns ``value``."""
    def fn(*_: Any, **__: Any) -> Any:
        note(ledger, key)
        return value
    return fn


def sleeper_task(ledger: str, key: str, seconds: float) -> Any:
    """A task that notes ``key``, sleeps ``seconds`` and returns ``key``."""
    def fn() -> str:
        note(ledger, key)
        time.sleep(seconds)
        return key
    return fn


def gather_task(ledger: str, key: str) -> Any:
    """The task after a map named ``items``: notes ``key``, returns the sum of its results."""
    def fn(items: list[int]) -> int:
        note(ledger, key)
        return sum(items)
    return fn


def result_of(key: str) -> bytes:
    """What `execute` returns for the job ``key``."""
    return f"done:{key}".encode()


def execute(config: RedisConfig, lease: Lease) -> bytes:
    """The custom executor of plain queue jobs (see the module docstring).

    A ``hold`` job is held by its first execution until the file ``hold`` exists; that execution
    then tries a heartbeat and a progress update with its (by then stale) lease and writes their
    outcomes to ``hold + ".calls"`` before returning; later executions do not wait.
    """
    job = json.loads(lease.payload)
    note(job["ledger"], job["key"])
    hold = job.get("hold")
    if hold and _first(hold):
        while not os.path.exists(hold):
            time.sleep(0.01)
        queue = Queue(lease.queue, config)
        outcomes = {"heartbeat": _outcome(lambda: queue.heartbeat(lease)),
                    "progress": _outcome(lambda: queue.progress(lease, 0.5, "late"))}
        Path(hold + ".calls").write_text(json.dumps(outcomes))
    time.sleep(job.get("work", 0.0))
    return result_of(job["key"]) + f"@{lease.worker}".encode()


def _first(hold: str) -> bool:
    """True for the first execution that asks (it creates ``hold + ".taken"``)."""
    try:
        os.close(os.open(hold + ".taken", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644))
    except FileExistsError:
        return False
    return True


def _outcome(call: Any) -> str:
    try:
        call()
    except QueueError as err:
        return type(err).__name__
    return "ok"
