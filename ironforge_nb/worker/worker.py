"""`Worker`: claims jobs from one or more queues and runs them in a pool of executor processes.

The worker's main process never runs user code. It is a single-threaded event loop that claims
jobs in batches (one claim for all free executors, then ``complete(..., fetch_next=1)`` so a
busy worker makes one round trip per job), hands each lease to a forked executor
(`executor.py`), heartbeats every running lease every third of its length, kills an executor
whose task outlives its ``timeout`` and fails that attempt, reaps expired leases of its queues,
and refreshes its entry in the worker registry. It waits on executor pipes, executor deaths, a
BLPOP on the queues' wake lists (`wake.py`) and a self-pipe for stop requests, all at once.

Stopping (SIGTERM, SIGINT or `Worker.stop`): claim nothing more, let running tasks finish
within ``grace`` seconds, then kill the executors still busy and hand their jobs back with
`Queue.release`, so other workers take them at once. A second stop request skips the grace.
If the worker is SIGKILLed, its executors die with it and the engine redelivers its jobs once
their leases expire (at-least-once).
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import signal
import socket
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from multiprocessing.connection import wait
from typing import Any

import redis.exceptions

from ironforge_nb.errors import (
    InvalidOptionError,
    JobNotFoundError,
    JobStateError,
    LeaseLost,
    SizeLimitError,
)
from ironforge_nb.names import validate_name
from ironforge_nb.queue import Lease, Queue, RedisConfig, default_config
from ironforge_nb.worker.executor import Executor, ExecutorProcess, Outcome
from ironforge_nb.worker.registry import BEAT_INTERVAL, Registry
from ironforge_nb.worker.wake import Waker

__all__ = ["Worker"]

log = logging.getLogger("ironforge_nb.worker")

REAP_INTERVAL = 1.0  # seconds between two reaps of each queue by one worker
IDLE_BLOCK = 0.5  # longest BLPOP of an idle worker: due retries are claimed this late at most
_MOVED_ON = (LeaseLost, JobStateError, JobNotFoundError)  # the job is no longer ours
_REDIS_DOWN = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError)


@dataclass
class _Task:
    """A lease being run by one executor."""

    lease: Lease
    queue: Queue
    timeout: float | None
    deadline: float | None  # monotonic
    next_beat: float  # monotonic


@dataclass
class _Slot:
    """One executor process and the task it runs, if any."""

    proc: ExecutorProcess
    task: _Task | None = None


def _job_timeout(lease: Lease, default: float | None) -> float | None:
    """The task's timeout: the job's ``timeout`` meta field (seconds), else the worker's."""
    raw = lease.meta.get("timeout")
    try:
        value = float(raw) if raw not in (None, "") else default
    except ValueError:
        value = default
    return value if value is not None and value > 0 else None


class Worker:
    """A worker serving ``queues`` of ``config``'s namespace with ``concurrency`` executors.

    ``executor`` runs one lease and returns its encoded result (default: the runs layer's
    `execute_task`, with ``secret`` and ``json_only``). ``lease`` is the lease length in
    seconds, ``timeout`` the default per-task limit (None: none; a job's own ``timeout`` meta
    field wins), ``grace`` how long running tasks may finish after a stop request.
    With ``parent_pid``, the worker stops by itself once that process is gone (local workers
    watch their notebook kernel this way too, besides ``PR_SET_PDEATHSIG``).
    `run` blocks; call it from a process of its own (the CLI, `ifn.connect`'s local workers).
    """

    def __init__(self, config: RedisConfig | None = None, queues: Sequence[str] = ("default",),
                 *, concurrency: int = 1, name: str | None = None,
                 executor: Executor | None = None, secret: bytes | None = None,
                 json_only: bool = False, lease: float = 30.0, timeout: float | None = None,
                 grace: float = 10.0, parent_pid: int | None = None) -> None:
        self.config = config if config is not None else default_config()
        if isinstance(queues, str) or not queues:
            raise InvalidOptionError("queues", queues, "a non-empty list of queue names")
        self.queue_names = tuple(validate_name(q, "queue") for q in queues)
        if isinstance(concurrency, bool) or not isinstance(concurrency, int) or concurrency < 1:
            raise InvalidOptionError("concurrency", concurrency, "an int >= 1")
        self.concurrency = concurrency
        self.name = name or f"{socket.gethostname()}-{os.getpid()}"
        self.lease = _seconds("lease", lease, positive=True)
        self.timeout = None if timeout is None else _seconds("timeout", timeout, positive=True)
        self.grace = _seconds("grace", grace)
        self._execute = executor if executor is not None else _runs_executor(secret, json_only)
        self.jobs_done = 0
        self._parent_pid = parent_pid
        self._slots: list[_Slot] = []
        self._queues: dict[str, Queue] = {}
        self._stop_r, self._stop_w = os.pipe()
        os.set_blocking(self._stop_w, False)
        self._stop_requests = 0
        self._grace_deadline: float | None = None
        self._want_claim = True
        self._next_reap = self._next_beat = 0.0

    def __repr__(self) -> str:
        return (f"Worker({self.name!r}, namespace={self.config.namespace!r}, "
                f"queues={list(self.queue_names)}, concurrency={self.concurrency})")

    # -- public ----------------------------------------------------------------------------

    def run(self) -> None:
        """Serve until a stop request, then shut down gracefully; returns when done."""
        # fork the executors first, before any thread or Redis connection exists here
        self._slots = [_Slot(self._spawn()) for _ in range(self.concurrency)]
        previous = self._install_signals()
        self._queues = {q: Queue(q, self.config) for q in self.queue_names}
        self._registry = Registry(self.config, self.name, self.queue_names, self.concurrency)
        self._waker = Waker(self.config, [self.config.keys.queue(q).wake
                                          for q in self.queue_names])
        log.info("worker %s serving %s (concurrency %d, pid %d)", self.name,
                 ",".join(self.queue_names), self.concurrency, os.getpid())
        try:
            while self._serve_safely():
                pass
        finally:
            self._shutdown()
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def stop(self) -> None:
        """Ask the worker to stop (safe from a signal handler or another thread).

        The first request lets running tasks finish within the grace period; a second one
        hands them back to the queue at once.
        """
        self._stop_requests += 1
        with contextlib.suppress(OSError):
            os.write(self._stop_w, b"x")

    @property
    def running(self) -> int:
        """How many tasks are running now."""
        return sum(1 for s in self._slots if s.task is not None)

    # -- the loop --------------------------------------------------------------------------

    def _serve_safely(self) -> bool:
        try:
            return self._serve_once()
        except _REDIS_DOWN as exc:
            log.warning("worker %s: Redis unavailable (%s); retrying in 1 s", self.name, exc)
            self._waker.close()
            time.sleep(1.0)
            return True

    def _serve_once(self) -> bool:
        """One turn of the loop; False once the worker has nothing left to do."""
        now = time.monotonic()
        if self._stop_requests and self._grace_deadline is None:
            self._begin_stop(now)
        if self._grace_deadline is not None:
            if self.running == 0:
                return False
            if now >= self._grace_deadline or self._stop_requests > 1:
                self._release_running()
                return False
        elif self._want_claim:
            self._claim()
        self._periodic(now)
        self._wait_and_handle(self._next_wakeup(now))
        return True

    def _begin_stop(self, now: float) -> None:
        self._grace_deadline = now + self.grace
        self._waker.close()
        log.info("worker %s stopping: %d running task(s), grace %g s", self.name,
                 self.running, self.grace)

    def _claim(self) -> None:
        """Claim jobs for every free executor (queues in the order given), one script each."""
        self._want_claim = False
        free = [s for s in self._slots if s.task is None]
        for name in self.queue_names:
            if not free:
                return
            queue = self._queues[name]
            for lease in queue.dequeue_many(self.name, len(free), self.lease, timeout=0):
                self._dispatch(free.pop(), queue, lease)
        if free:
            self._waker.arm(IDLE_BLOCK)

    def _dispatch(self, slot: _Slot, queue: Queue, lease: Lease) -> None:
        now = time.monotonic()
        timeout = _job_timeout(lease, self.timeout)
        slot.task = _Task(lease, queue, timeout, None if timeout is None else now + timeout,
                          now + self.lease / 3)
        try:
            slot.proc.send(lease)
        except OSError:  # the executor died while idle: a new one takes the task
            self._respawn(slot)
            slot.proc.send(lease)

    def _periodic(self, now: float) -> None:
        for slot in self._slots:
            task = slot.task
            if task is None:
                continue
            if task.deadline is not None and now >= task.deadline:
                self._time_out(slot, task)
            elif now >= task.next_beat:
                self._heartbeat(slot, task, now)
        if now >= self._next_reap:
            self._next_reap = now + REAP_INTERVAL
            for queue in self._queues.values():
                queue.reap()
        if now >= self._next_beat:
            self._next_beat = now + BEAT_INTERVAL
            self._registry.beat(self.jobs_done, self.running)
            if self._parent_pid is not None and os.getppid() != self._parent_pid:
                log.warning("worker %s: parent %d is gone", self.name, self._parent_pid)
                self.stop()

    def _next_wakeup(self, now: float) -> float:
        due = [self._next_reap, self._next_beat]
        for slot in self._slots:
            if slot.task is not None:
                due.append(slot.task.next_beat)
                if slot.task.deadline is not None:
                    due.append(slot.task.deadline)
        if self._grace_deadline is not None:
            due.append(self._grace_deadline)
        elif self._want_claim:
            due.append(now)
        return max(0.0, min(due) - now)

    def _wait_and_handle(self, timeout: float) -> None:
        handlers: dict[Any, Callable[[], None]] = {self._stop_r: self._drain_stop_pipe}
        for slot in self._slots:
            handlers[slot.proc.conn] = functools.partial(self._on_message, slot)
            handlers[slot.proc.sentinel] = functools.partial(self._on_death, slot)
        if self._waker.pending:
            handlers[self._waker] = self._on_wake
        ready = set(wait(list(handlers), timeout))
        for obj in handlers:  # messages before deaths: a result sent just before exit counts
            if obj in ready:
                handlers[obj]()

    def _drain_stop_pipe(self) -> None:
        with contextlib.suppress(BlockingIOError):
            os.read(self._stop_r, 1024)

    def _on_wake(self) -> None:
        self._waker.collect()
        self._want_claim = True

    # -- task outcomes ---------------------------------------------------------------------

    def _on_message(self, slot: _Slot) -> None:
        task = slot.task
        if task is None or slot.proc.conn.closed:
            return
        outcome = slot.proc.receive()
        if outcome is None:
            return  # EOF: the executor died, handled by _on_death
        slot.task = None
        self.jobs_done += 1
        self._want_claim = True
        if outcome.ok:
            self._complete(slot, task, outcome)
        else:
            self._fail(task, outcome.error, outcome.retry)

    def _complete(self, slot: _Slot, task: _Task, outcome: Outcome) -> None:
        fetch = 0 if self._grace_deadline is not None else 1
        try:
            leases = task.queue.complete(task.lease, outcome.result, fetch_next=fetch)
        except SizeLimitError as exc:
            self._fail(task, str(exc), retry=False)
            return
        except _MOVED_ON as exc:
            log.warning("worker %s: result of job %s discarded: %s", self.name,
                        task.lease.job_id, exc)
            return
        if leases:
            self._dispatch(slot, task.queue, leases[0])
            self._want_claim = False

    def _fail(self, task: _Task, error: str, retry: bool = True) -> None:
        try:
            status = task.queue.fail(task.lease, error, retry)
        except _MOVED_ON as exc:
            log.warning("worker %s: failure of job %s not recorded: %s", self.name,
                        task.lease.job_id, exc)
            return
        log.warning("worker %s: job %s attempt %d failed (%s): %s", self.name,
                    task.lease.job_id, task.lease.attempt, status.value,
                    error.strip().splitlines()[-1] if error.strip() else error)

    def _on_death(self, slot: _Slot) -> None:
        if slot.proc.alive():
            return
        if slot.task is not None and not slot.proc.conn.closed and slot.proc.conn.poll():
            self._on_message(slot)  # it answered before dying
        task, slot.task = slot.task, None
        how = slot.proc.exit_description()
        self._respawn(slot)
        if task is not None:
            self.jobs_done += 1
            self._fail(task, f"the executor process {how} while running the task")

    def _time_out(self, slot: _Slot, task: _Task) -> None:
        slot.task = None
        self._respawn(slot)
        self.jobs_done += 1
        self._fail(task, f"timeout after {task.timeout:g} s")

    def _heartbeat(self, slot: _Slot, task: _Task, now: float) -> None:
        task.next_beat = now + self.lease / 3
        try:
            task.queue.heartbeat(task.lease)
        except _MOVED_ON as exc:  # expired, cancelled or deleted: stop working on it
            log.warning("worker %s: stopping job %s: %s", self.name, task.lease.job_id, exc)
            slot.task = None
            self._respawn(slot)

    # -- executors and shutdown ------------------------------------------------------------

    def _spawn(self) -> ExecutorProcess:
        return ExecutorProcess(self.config, self._execute)

    def _respawn(self, slot: _Slot) -> None:
        slot.proc.kill()
        slot.proc = self._spawn()
        self._want_claim = True

    def _release_running(self) -> None:
        """Kill the executors still busy and hand their jobs back to the queue now."""
        for slot in self._slots:
            task, slot.task = slot.task, None
            if task is None:
                continue
            slot.proc.kill()
            try:
                task.queue.release(task.lease)
                log.info("worker %s: job %s handed back", self.name, task.lease.job_id)
            except _MOVED_ON as exc:
                log.warning("worker %s: job %s not handed back: %s", self.name,
                            task.lease.job_id, exc)

    def _shutdown(self) -> None:
        for slot in self._slots:
            if slot.task is not None:
                slot.proc.kill()  # only after an unexpected error: its lease will expire
            else:
                slot.proc.stop()
        with contextlib.suppress(Exception):
            self._waker.close()
        with contextlib.suppress(*_REDIS_DOWN):
            self._registry.remove()
        for fd in (self._stop_r, self._stop_w):
            with contextlib.suppress(OSError):
                os.close(fd)
        log.info("worker %s stopped after %d job(s)", self.name, self.jobs_done)

    def _install_signals(self) -> dict[int, Any]:
        if threading.current_thread() is not threading.main_thread():
            return {}
        previous: dict[int, Any] = {}
        for sig in (signal.SIGTERM, signal.SIGINT):
            previous[sig] = signal.signal(sig, lambda signum, frame: self.stop())
        return previous


def _seconds(option: str, value: object, *, positive: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0 or (
            positive and value == 0):
        raise InvalidOptionError(option, value, "a number of seconds " + (
            "> 0" if positive else ">= 0"))
    return float(value)


def _runs_executor(secret: bytes | None, json_only: bool) -> Executor:
    """The default executor: the runs layer's `execute_task` with this worker's secret."""
    from ironforge_nb.runs.execute import execute_task

    def execute(config: RedisConfig, lease: Lease) -> bytes | None:
        return execute_task(config, lease, secret, json_only=json_only)

    return execute
