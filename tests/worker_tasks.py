"""A test executor for worker tests: each payload is a JSON command saying what the task does.

Worker processes started by the tests load it with ``--executor tests.worker_tasks:run``, so the
worker is tested on its own, independently of the orchestrator's job format.
"""

from __future__ import annotations

import json
import os
import signal
import time
from typing import Any

import ironforge_nb as ifn
from ironforge_nb.errors import SignatureError
from ironforge_nb.queue import Lease, RedisConfig

EXECUTOR = "tests.worker_tasks:run"


def command(op: str, **args: Any) -> bytes:
    """The payload of a job that runs ``op`` with ``args``."""
    return json.dumps({"op": op, **args}).encode()


def run(config: RedisConfig, lease: Lease) -> bytes | None:
    """Execute the command in ``lease.payload``; returns its encoded result."""
    cmd = json.loads(lease.payload)
    if "record" in cmd:  # one line per execution, to count how often a job really ran
        with open(cmd["record"], "a") as fh:
            fh.write(f"{lease.job_id} {lease.attempt} {os.getpid()}\n")
    result = _OPS[cmd["op"]](cmd, lease)
    return None if result is None else json.dumps(result).encode()


def _echo(cmd: dict[str, Any], lease: Lease) -> Any:
    return cmd.get("value")


def _sleep(cmd: dict[str, Any], lease: Lease) -> Any:
    time.sleep(cmd["seconds"])
    return "slept"


def _busy(cmd: dict[str, Any], lease: Lease) -> Any:
    """A pure-Python loop that keeps the interpreter busy (never sleeps, never does I/O)."""
    end = time.monotonic() + cmd["seconds"]
    n = 0
    while time.monotonic() < end:
        n += 1
    return "busy"


def _fail(cmd: dict[str, Any], lease: Lease) -> Any:
    if lease.attempt < cmd.get("until_attempt", 10**9):
        raise RuntimeError(cmd.get("message", "boom"))
    return f"ok at attempt {lease.attempt}"


def _signature(cmd: dict[str, Any], lease: Lease) -> Any:
    raise SignatureError(lease.job_id, "no signature")


def _exit(cmd: dict[str, Any], lease: Lease) -> Any:
    os._exit(cmd.get("code", 3))


def _kill(cmd: dict[str, Any], lease: Lease) -> Any:
    """SIGKILL the executor running the task (as the OOM killer would), every time."""
    os.kill(os.getpid(), signal.SIGKILL)


def _sleep_once(cmd: dict[str, Any], lease: Lease) -> Any:
    """Sleep on the first attempt only (for timeout-then-retry tests)."""
    if lease.attempt == 1:
        time.sleep(cmd["seconds"])
    return f"attempt {lease.attempt}"


def _sleep_first(cmd: dict[str, Any], lease: Lease) -> Any:
    """Sleep on the first execution only (a flag file marks it), whatever the attempt count."""
    if not os.path.exists(cmd["flag"]):
        with open(cmd["flag"], "w") as fh:
            fh.write(str(os.getpid()))
        time.sleep(cmd["seconds"])
        return "first run"
    return "second run"


def _progress(cmd: dict[str, Any], lease: Lease) -> Any:
    for value, message in cmd["steps"]:
        ifn.progress(value, message)
    time.sleep(cmd.get("hold", 0))
    return "progressed"


def _track(cmd: dict[str, Any], lease: Lease) -> Any:
    total = 0
    for item in ifn.track(range(cmd["n"]), message=cmd.get("message")):
        time.sleep(cmd.get("delay", 0))
        total += item
    time.sleep(cmd.get("hold", 0))
    return total


def _pid(cmd: dict[str, Any], lease: Lease) -> Any:
    return os.getpid()


_OPS = {
    "echo": _echo, "sleep": _sleep, "busy": _busy, "fail": _fail, "signature": _signature,
    "kill": _kill,
    "exit": _exit, "sleep_once": _sleep_once, "progress": _progress, "track": _track,
    "pid": _pid, "sleep_first": _sleep_first,
}


# -- pipeline tasks (imported by reference on the workers) -------------------------------------


def source() -> int:
    """The pipeline's input."""
    return 21


def slow_double(source: int) -> int:
    """Twice the input, slowly (time to kill the worker running it)."""
    time.sleep(2)
    return source * 2


def plus_one(source: int) -> int:
    """The input plus one."""
    return source + 1


def total(slow_double: int, plus_one: int) -> int:
    """Both branches added."""
    return slow_double + plus_one


def _say(cmd: dict[str, Any], lease: Lease) -> Any:
    """Print ``lines`` (stdout) and ``errors`` (stderr), then fail on attempts below
    ``fail_until`` (a test of what each attempt's output keeps)."""
    import sys

    print(f"attempt {lease.attempt}")
    for line in cmd.get("lines", []):
        print(line)
    for line in cmd.get("errors", []):
        print(line, file=sys.stderr)
    if lease.attempt < cmd.get("fail_until", 0):
        raise RuntimeError(f"failing attempt {lease.attempt}")
    return "said"


_OPS["say"] = _say
