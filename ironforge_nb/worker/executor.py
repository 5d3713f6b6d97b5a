"""Executor processes: the forked children of a worker that run user code, one task at a time.

User code may hold the GIL or block for minutes; it runs here, in a child process, so that the
worker's main process keeps heartbeating leases and can enforce timeouts by killing the child.
The worker forks its executors before it starts any thread or opens any Redis connection, and
feeds each over a pipe: it sends a `Lease`, the executor answers with an `Outcome` (both as
plain tuples, see `wire.py`). An executor dies with its worker (``PR_SET_PDEATHSIG`` on Linux,
SIGKILL: user code cannot ignore it), and the worker respawns any executor that died or was
killed.

Start marks: an executor never runs a lease's code before Redis has recorded that lease as
started. A lease arrives either already started (the claim that brought it marked it: the
first job of an idle executor) or HELD (prefetched, see `slots.py`); before running a held one,
the executor marks it started itself (`Queue.start`, one round trip on its own connection,
fenced by the lease token) and waits for the answer. If the job moved on meanwhile (the worker
handed it back, it was cancelled, its lease expired), the mark is refused and the executor
skips the lease, answering "not run". So when a worker dies, Redis knows exactly which of its
jobs began (they stall) and which never did (they go back for free).
"""

from __future__ import annotations

import contextlib
import copy
import multiprocessing
import os
import signal
import time
import traceback
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any

import redis.exceptions

from ironforge_nb.errors import InvalidOptionError, SignatureError
from ironforge_nb.pdeathsig import set_pdeathsig
from ironforge_nb.queue import Lease, Queue, RedisConfig
from ironforge_nb.worker.context import start_reporting, stop_reporting
from ironforge_nb.worker.logs import install, start_capture, stop_capture
from ironforge_nb.worker.wire import Readiness, decode, encode, lease_from, lease_tuple

__all__ = ["REDIS_DOWN", "Executor", "ExecutorProcess", "Outcome", "load_executor", "run_lease",
           "task_executor"]

# (config, lease) -> encoded result for Queue.complete; raises to fail the attempt
Executor = Callable[[RedisConfig, Lease], "bytes | None"]
# Redis cannot answer now: unreachable, too slow, or a cluster whose master serving our slot is
# down or rejoining (CLUSTERDOWN, until the cluster agrees again): wait and retry, never exit
REDIS_DOWN = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError,
              redis.exceptions.ClusterDownError)
MARK_RETRY = 0.5  # seconds between two tries of a start mark while Redis is unreachable


@dataclass(frozen=True)
class Outcome:
    """What an executor reports for one lease: a result, or an error and whether to retry;
    ``ran`` False when it did not run the lease at all (revoked, or its start mark was
    refused: the job had moved on), ``error`` then saying why."""

    ok: bool
    result: bytes | None = None
    error: str = ""
    retry: bool = True
    ran: bool = True


def run_lease(execute: Executor, config: RedisConfig, queue: Queue, lease: Lease) -> Outcome:
    """Run one lease with ``execute``, progress bound to it; every exception becomes an Outcome.

    `SignatureError` (a payload that must never be unpickled) fails the job for good; any other
    error fails the attempt, which the queue retries while attempts remain.
    """
    start_capture(queue, lease)  # what it prints: stored before the outcome is sent
    start_reporting(queue, lease)
    try:
        try:
            result = execute(config, lease)
        finally:
            stop_reporting()  # its last progress update is written before the outcome
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
    set_pdeathsig(signal.SIGKILL)
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
    while (item := inbox.next()) is not None:
        lease, marked = item
        queue = queues.get(lease.queue)
        if queue is None:
            queue = queues[lease.queue] = Queue(lease.queue, config)
        skipped = "" if marked else _take_up(queue, lease, inbox)
        if skipped:
            conn.send_bytes(encode((False, None, skipped, True, False)))
            continue
        outcome = run_lease(execute, config, queue, lease)
        conn.send_bytes(encode((outcome.ok, outcome.result, outcome.error, outcome.retry,
                                True)))


def _take_up(queue: Queue, lease: Lease, inbox: _Inbox) -> str:
    """Mark the held ``lease`` started in Redis before its code runs (see the module
    docstring); returns why it must not run ("" when it may): revoked by the worker, or
    refused by Redis because the job moved on. While Redis cannot be reached, tries again
    every `MARK_RETRY` seconds (the worker may revoke the lease or kill this process
    meanwhile)."""
    while True:
        if (lease.job_id, lease.token) in inbox.revoked:  # handed back by the worker
            inbox.revoked.discard((lease.job_id, lease.token))
            return "revoked"
        try:
            if queue.start([lease]):
                return ""
            return "not started: the job moved on before its executor took it up"
        except REDIS_DOWN:
            time.sleep(MARK_RETRY)
            inbox.poll()


class _Inbox:
    """The executor's side of the pipe: leases in order, revocations, and the stop message.

    Before each task, every message already sent is read, so that a revocation of a
    prefetched lease is seen before that lease would start.
    """

    def __init__(self, conn: Connection) -> None:
        self._conn = conn
        self._readiness = Readiness([conn.fileno()])
        self._leases: deque[tuple[Lease, bool]] = deque()
        self._stop = False
        self.revoked: set[tuple[str, str]] = set()  # (job id, lease token)

    def next(self) -> tuple[Lease, bool] | None:
        """The next lease to run and whether Redis already counts it started, or None when
        told to stop (or the worker is gone)."""
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

    def poll(self) -> None:
        """Read every message already sent (revocations), without waiting."""
        with contextlib.suppress(EOFError, OSError):
            while not self._stop and self._readiness.ready(0):
                self._take(decode(self._conn.recv_bytes()))

    def _take(self, message: Any) -> None:
        if message is None:
            self._stop = True
        elif len(message) == 3:  # ("revoke", job_id, token)
            self.revoked.add((message[1], message[2]))
        else:  # a lease, and whether the claim marked it started
            self._leases.append((lease_from(message[:-1]), message[-1]))


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

    def send(self, lease: Lease, marked: bool = False) -> None:
        """Hand ``lease`` to the executor, with whether Redis already counts it started
        (``marked``: else the executor marks it before running it, see the module
        docstring)."""
        self.conn.send_bytes(encode((*lease_tuple(lease), marked)))

    def revoke(self, lease: Lease) -> None:
        """Tell the executor not to start the prefetched ``lease``."""
        self.conn.send_bytes(encode(("revoke", lease.job_id, lease.token)))

    def ready(self) -> bool:
        """True when an outcome (or the end of the pipe) can be read without blocking."""
        return not self.conn.closed and bool(self._readiness.ready(0))

    def receive(self) -> Outcome | None:
        """The executor's outcome, or None if it died before answering."""
        try:
            ok, result, error, retry, ran = decode(self.conn.recv_bytes())
        except (EOFError, OSError):
            return None
        return Outcome(ok, result, error, retry, ran)

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
    """The default executor: the orchestrator's `execute_task` with this worker's secret
    (a task's parents' results come with its lease, or in one read)."""
    from ironforge_nb.orchestrator.execute import execute_task

    def execute(config: RedisConfig, lease: Lease) -> bytes | None:
        return execute_task(config, lease, secret, json_only=json_only)

    return execute
