"""Executor processes: the forked children of a worker that run user code, one task at a time.

User code may hold the GIL or block for minutes; it runs here, in a child process, so that the
worker's main process keeps heartbeating leases and can enforce timeouts by killing the child.
The worker forks its executors before it starts any thread or opens any Redis connection, and
feeds each over a pipe: it sends a `Lease`, the executor answers with an `Outcome` (both as
plain tuples, see `wire.py`). An executor dies with its worker (``PR_SET_PDEATHSIG`` on Linux,
SIGKILL: user code cannot ignore it), and the worker respawns any executor that died or was
killed.
"""

from __future__ import annotations

import contextlib
import copy
import multiprocessing
import os
import signal
import sys
import traceback
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any

from ironforge_nb.errors import InvalidOptionError, SignatureError
from ironforge_nb.queue import Lease, Queue, RedisConfig
from ironforge_nb.worker.context import reporting
from ironforge_nb.worker.logs import install, start_capture, stop_capture
from ironforge_nb.worker.results import CACHE
from ironforge_nb.worker.wire import Readiness, decode, encode, lease_from, lease_tuple

__all__ = ["Executor", "ExecutorProcess", "Outcome", "load_executor", "run_lease",
           "task_executor"]

# (config, lease) -> encoded result for Queue.complete; raises to fail the attempt
Executor = Callable[[RedisConfig, Lease], "bytes | None"]
_PR_SET_PDEATHSIG = 1


@dataclass(frozen=True)
class Outcome:
    """What an executor reports for one lease: a result, or an error and whether to retry."""

    ok: bool
    result: bytes | None = None
    error: str = ""
    retry: bool = True


def run_lease(execute: Executor, config: RedisConfig, queue: Queue, lease: Lease) -> Outcome:
    """Run one lease with ``execute``, progress bound to it; every exception becomes an Outcome.

    `SignatureError` (a payload that must never be unpickled) fails the job for good; any other
    error fails the attempt, which the queue retries while attempts remain.
    """
    start_capture(queue, lease)  # what it prints: stored before the outcome is sent
    try:
        with reporting(queue, lease):
            result = execute(config, lease)
    except SignatureError as exc:
        return Outcome(False, error=f"SignatureError: {exc}", retry=False)
    except BaseException:  # user code may raise anything, even SystemExit
        return Outcome(False, error=traceback.format_exc().rstrip())
    finally:
        stop_capture()
    if result is not None and not isinstance(result, bytes):
        return Outcome(False, error=f"the executor returned {type(result).__name__}, "
                                    "expected bytes or None (an encoded result)", retry=False)
    return Outcome(True, result)


def load_executor(path: str) -> Executor:
    """The callable named ``"package.module:function"`` (a custom executor for the CLI)."""
    import importlib

    module, _, attr = path.partition(":")
    if not module or not attr:
        raise InvalidOptionError("executor", path, "'package.module:function'")
    try:
        found = getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError) as exc:
        raise InvalidOptionError("executor", path, f"an importable callable ({exc})") from exc
    if not callable(found):
        raise InvalidOptionError("executor", path, "a callable (config, lease) -> bytes | None")
    executor: Executor = found
    return executor


def _die_with_parent(parent: int) -> None:
    """Ask Linux for SIGKILL when the worker dies; exit now if it already has."""
    if sys.platform.startswith("linux"):
        import ctypes
        import ctypes.util

        with contextlib.suppress(OSError, AttributeError):
            libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
            libc.prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)
    if os.getppid() != parent:
        os._exit(1)


def _executor_main(conn: Connection, config: RedisConfig, execute: Executor,
                   parent: int) -> None:
    """Body of an executor process: run the leases received on ``conn`` until None or EOF."""
    _die_with_parent(parent)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the worker's to handle
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    config = copy.copy(config)  # settings only (see RedisConfig.__reduce__): a client of our own
    install(config)  # print() and logging of tasks go to their job's logs (worker/logs.py)
    queues: dict[str, Queue] = {}
    inbox = _Inbox(conn)
    while (lease := inbox.next()) is not None:
        if lease.job_id in inbox.revoked:  # handed back by the worker before it started
            inbox.revoked.discard(lease.job_id)
            conn.send_bytes(encode((False, None, "revoked", True)))
            continue
        queue = queues.get(lease.queue)
        if queue is None:
            queue = queues[lease.queue] = Queue(lease.queue, config)
        outcome = run_lease(execute, config, queue, lease)
        conn.send_bytes(encode((outcome.ok, outcome.result, outcome.error, outcome.retry)))


class _Inbox:
    """The executor's side of the pipe: leases in order, revocations, and the stop message.

    Before each task, every message already sent is read, so that a revocation of a
    prefetched lease is seen before that lease would start.
    """

    def __init__(self, conn: Connection) -> None:
        self._conn = conn
        self._readiness = Readiness([conn.fileno()])
        self._leases: deque[Lease] = deque()
        self._stop = False
        self.revoked: set[str] = set()

    def next(self) -> Lease | None:
        """The next lease to run, or None when told to stop (or the worker is gone)."""
        try:
            if not self._leases and not self._stop:
                self._take(decode(self._conn.recv_bytes()))
            while not self._stop and self._readiness.ready(0):
                self._take(decode(self._conn.recv_bytes()))
        except (EOFError, OSError):
            return None
        if self._stop or not self._leases:
            return None
        return self._leases.popleft()

    def _take(self, message: Any) -> None:
        if message is None:
            self._stop = True
        elif len(message) == 2:  # ("revoke", job_id)
            self.revoked.add(message[1])
        else:  # a lease, and the jobs whose completion the worker has confirmed since
            CACHE.confirm(message[-1])
            self._leases.append(lease_from(message[:-1]))


class ExecutorProcess:
    """One forked executor and the worker's end of its pipe."""

    def __init__(self, config: RedisConfig, execute: Executor) -> None:
        ctx = multiprocessing.get_context("fork")
        self.conn, child = ctx.Pipe(duplex=True)
        self.process: Any = ctx.Process(
            target=_executor_main, args=(child, config, execute, os.getpid()),
            name="ironforge-executor", daemon=True)
        self.process.start()
        child.close()
        self._readiness = Readiness([self.conn.fileno()])

    @property
    def pid(self) -> int:
        """Process id of the executor."""
        pid: int = self.process.pid
        return pid

    @property
    def sentinel(self) -> int:
        """A descriptor that becomes readable when the process ends (the worker polls it)."""
        sentinel: int = self.process.sentinel
        return sentinel

    def alive(self) -> bool:
        """True while the process runs."""
        return bool(self.process.is_alive())

    def send(self, lease: Lease, confirmed: Sequence[str] = ()) -> None:
        """Hand ``lease`` to the executor, with the ids of the jobs it ran whose completion
        was accepted since the last lease (their results may feed their children)."""
        self.conn.send_bytes(encode((*lease_tuple(lease), tuple(confirmed))))

    def revoke(self, job_id: str) -> None:
        """Tell the executor not to start the prefetched lease of ``job_id``."""
        self.conn.send_bytes(encode(("revoke", job_id)))

    def ready(self) -> bool:
        """True when an outcome (or the end of the pipe) can be read without blocking."""
        return not self.conn.closed and bool(self._readiness.ready(0))

    def receive(self) -> Outcome | None:
        """The executor's outcome, or None if it died before answering."""
        try:
            ok, result, error, retry = decode(self.conn.recv_bytes())
        except (EOFError, OSError):
            return None
        return Outcome(ok, result, error, retry)

    def kill(self) -> None:
        """SIGKILL the executor (timeout, cancelled job, shutdown) and reap it."""
        with contextlib.suppress(OSError):
            self.process.kill()
        self.process.join(5)
        self.conn.close()

    def stop(self, timeout: float = 2.0) -> None:
        """Ask an idle executor to exit; kill it if it does not within ``timeout``."""
        with contextlib.suppress(OSError, ValueError):
            self.conn.send_bytes(encode(None))
        self.process.join(timeout)
        if self.process.is_alive():
            self.kill()
        else:
            self.conn.close()

    def exit_description(self) -> str:
        """How the process ended, for the job's error: exit code or signal name."""
        code = self.process.exitcode
        if code is None:
            return "is still running"
        if code < 0:
            with contextlib.suppress(ValueError):
                return f"was killed by {signal.Signals(-code).name}"
        return f"exited with code {code}"


def task_executor(secret: bytes | None, json_only: bool = False) -> Executor:
    """The default executor: the orchestrator's `execute_task` with this worker's secret; its
    own confirmed recent results spare children a read (`results.CACHE`)."""
    from ironforge_nb.orchestrator.execute import execute_task

    def execute(config: RedisConfig, lease: Lease) -> bytes | None:
        blob = execute_task(config, lease, secret, json_only=json_only, known=CACHE)
        CACHE.add(lease.job_id, blob)
        return blob

    return execute
