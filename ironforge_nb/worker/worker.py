"""`Worker`: claims jobs from one or more queues and runs them in a pool of executor processes.

The worker's main process never runs user code. It is a single-threaded event loop that claims
jobs in batches (one claim for all idle executors; then each completion, or batch of
completions, claims that executor's next jobs in the same round trip:
``complete_many(fetch_next=k)``; only a worker with an idle executor blocks on the wake list),
hands leases to forked executors (`executor.py`; fast ones prefetch, see `slots.py`),
heartbeats every held lease every third of its length, kills an executor whose task outlives
its ``timeout`` and fails that attempt, reaps expired leases of its queues, and refreshes its
entry in the worker registry. It waits on executor pipes, executor deaths, a BLPOP on the
queues' wake lists (`wake.py`) and a self-pipe for stop requests, all at once.

Stopping (SIGTERM, SIGINT or `Worker.stop`): claim nothing more, let running tasks finish
within ``grace`` seconds (prefetched jobs go back at once), then kill the executors still
busy and hand their jobs back with `Queue.release`, so other workers take them at once. A
second stop request skips the grace. If the worker is SIGKILLed, its executors die with it and
the engine redelivers its jobs once their leases expire (at-least-once).
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
from ironforge_nb.queue.options import seconds_to_ms, validate_count, validate_worker
from ironforge_nb.worker.executor import Executor, ExecutorProcess, Outcome, runs_executor
from ironforge_nb.worker.registry import BEAT_INTERVAL, Registry
from ironforge_nb.worker.slots import (
    PREFETCH,
    RETURN_AFTER,
    REVOKE_WAIT,
    Slot,
    Task,
    task_timeout,
)
from ironforge_nb.worker.wake import Waker
from ironforge_nb.worker.wire import Readiness

__all__ = ["Worker"]

log = logging.getLogger("ironforge_nb.worker")

REAP_INTERVAL = 1.0  # seconds between two reaps of each queue by one worker
_MOVED_ON = (LeaseLost, JobStateError, JobNotFoundError)  # the job is no longer ours
_REDIS_DOWN = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError)


class Worker:
    """A worker serving ``queues`` of ``config``'s namespace with ``concurrency`` executors.

    ``executor`` runs one lease and returns its encoded result (default: the runs layer's
    `execute_task`, with ``secret`` and ``json_only``). ``lease`` is the lease length in
    seconds, ``timeout`` the default per-task limit (None: none; a job's own ``timeout`` meta
    field wins), ``grace`` how long running tasks may finish after a stop request,
    ``prefetch`` how many extra leases an executor of short tasks holds (see `slots.py`).
    With ``parent_pid``, the worker stops by itself once that process is gone (local workers
    watch their notebook kernel this way too, besides ``PR_SET_PDEATHSIG``).
    `run` blocks; call it from a process of its own (the CLI, `ifn.connect`'s local workers).
    """

    def __init__(self, config: RedisConfig | None = None, queues: Sequence[str] = ("default",),
                 *, concurrency: int = 1, name: str | None = None,
                 executor: Executor | None = None, secret: bytes | None = None,
                 json_only: bool = False, lease: float = 30.0, timeout: float | None = None,
                 grace: float = 10.0, prefetch: int = PREFETCH,
                 parent_pid: int | None = None) -> None:
        self.config = config if config is not None else default_config()
        if isinstance(queues, str) or not queues:
            raise InvalidOptionError("queues", queues, "a non-empty list of queue names")
        self.queue_names = tuple(validate_name(q, "queue") for q in queues)
        self.concurrency = validate_count("concurrency", concurrency)
        self.name = validate_worker(name or f"{socket.gethostname()}-{os.getpid()}")
        self.lease = seconds_to_ms("lease", lease, positive=True) / 1000
        self.timeout = (None if timeout is None
                        else seconds_to_ms("timeout", timeout, positive=True) / 1000)
        self.grace = seconds_to_ms("grace", grace) / 1000
        self.prefetch = validate_count("prefetch", prefetch, 0)
        self._execute = executor if executor is not None else runs_executor(secret, json_only)
        self.jobs_done = 0
        self._parent_pid = parent_pid
        self._slots: list[Slot] = []
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
        self._slots = [Slot(self._spawn(), self.prefetch) for _ in range(self.concurrency)]
        previous = self._install_signals()
        self._queues = {q: Queue(q, self.config) for q in self.queue_names}
        self._registry = Registry(self.config, self.name, self.queue_names, self.concurrency)
        self._waker = Waker(self.config, [self.config.keys.queue(q).wake
                                          for q in self.queue_names])
        self._readiness = Readiness()
        self._handlers_key: tuple[Any, ...] = ()
        self._handlers_cache: dict[int, Callable[[], None]] = {}
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
        """How many claimed jobs this worker holds now (running or prefetched)."""
        return sum(len(s.tasks) for s in self._slots)

    # -- the loop --------------------------------------------------------------------------

    def _serve_safely(self) -> bool:
        try:
            return self._serve_once()
        except _REDIS_DOWN as exc:
            log.warning("worker %s: Redis unavailable (%s); retrying in 1 s", self.name, exc)
            self._waker.close()
            self._want_claim = True  # whatever was interrupted, claim again once it is back
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
        else:
            self._waker.due(now, idle=any(not s.tasks for s in self._slots))
        self._periodic(now)
        self._wait_and_handle(self._next_wakeup(now))
        return True

    def _begin_stop(self, now: float) -> None:
        self._grace_deadline = now + self.grace
        self._waker.close()
        for slot in self._slots:  # prefetched jobs go back now; running ones get the grace
            self._hand_back(slot, [t for t in list(slot.tasks)[1:] if not t.dropped])
        log.info("worker %s stopping: %d running task(s), grace %g s", self.name,
                 self.running, self.grace)

    def _claim(self) -> None:
        """Claim jobs for the idle executors (queues in the order given), one script each.

        Busy executors are left out: each completion claims their next jobs in the same round
        trip (`_complete`), so a claim for them here would cost one more script call per task.
        Only a worker with an idle executor blocks on the wake list, so that a wake-up hint
        goes to a worker that can use it.
        """
        self._want_claim = False
        idle = [s for s in self._slots if not s.tasks]
        most = max((s.free for s in idle), default=0)
        free = [s for k in range(most) for s in idle if k < s.free]  # round robin over idle
        wanted = len(free)
        for name in self.queue_names:
            if not free:
                break
            queue = self._queues[name]
            for lease in queue.dequeue_many(self.name, len(free), self.lease, timeout=0):
                self._dispatch(free.pop(0), queue, lease)
        self._waker.claimed(wanted, wanted - len(free))
        if any(not s.tasks for s in self._slots):
            self._waker.block()

    def _dispatch(self, slot: Slot, queue: Queue, lease: Lease) -> None:
        task = Task(lease, queue, task_timeout(lease, self.timeout),
                    time.monotonic() + self.lease / 3)
        try:
            slot.push(task)
        except OSError:  # the executor died: a new one takes its tasks, this one included
            self._lost_executor(slot, spare=task)

    def _periodic(self, now: float) -> None:
        for slot in self._slots:
            head = slot.head
            if head is not None and head.deadline is not None and now >= head.deadline:
                self._time_out(slot)
            if slot.stale_head(now):  # a cancelled job's task got started: stop it
                self._settle(slot, self._drain(slot))
                if slot.stale_head(time.monotonic()):
                    self._respawn(slot, drop_head=True)
            for task in list(slot.tasks):
                if now >= task.next_beat and not task.dropped:
                    self._heartbeat(task, now)
            if stuck := slot.waiting(now):
                self._hand_back(slot, stuck)
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
            due.extend(t.next_beat for t in slot.tasks)
            head = slot.head
            if head is not None and head.deadline is not None:
                due.append(head.deadline)
            if head is not None and head.dropped and head.started is not None:
                due.append(head.started + REVOKE_WAIT if head.revoked else now)
            if head is not None and head.started is not None and any(
                    not t.dropped for t in list(slot.tasks)[1:]):
                due.append(head.started + RETURN_AFTER)
        if self._grace_deadline is not None:
            due.append(self._grace_deadline)
        elif self._want_claim:
            due.append(now)
        elif self._waker.arm_at is not None:
            due.append(self._waker.arm_at)
        return max(0.0, min(due) - now)

    def _wait_and_handle(self, timeout: float) -> None:
        handlers = self._handlers()
        ready = self._readiness.ready(timeout)
        for fd, handler in handlers.items():  # messages before deaths: a result sent just
            if fd in ready:                   # before exit counts
                handler()

    def _handlers(self) -> dict[int, Callable[[], None]]:
        """What to wait on, by file descriptor: built again only when an executor was
        replaced or the wake-list BLPOP was sent or answered."""
        key = (self._waker.pending, *(id(s.proc) for s in self._slots),
               *(s.proc.conn.closed for s in self._slots))
        if key == self._handlers_key:
            return self._handlers_cache
        handlers: dict[int, Callable[[], None]] = {self._stop_r: self._drain_stop_pipe}
        for slot in self._slots:
            if not slot.proc.conn.closed:
                handlers[slot.proc.conn.fileno()] = functools.partial(self._on_message, slot)
            handlers[slot.proc.sentinel] = functools.partial(self._on_death, slot)
        if self._waker.pending:
            handlers[self._waker.fileno()] = self._on_wake
        self._readiness.watch(handlers)
        self._handlers_key, self._handlers_cache = key, handlers
        return handlers

    def _drain_stop_pipe(self) -> None:
        with contextlib.suppress(BlockingIOError):
            os.read(self._stop_r, 1024)

    def _on_wake(self) -> None:
        self._waker.collect()
        self._want_claim = True

    # -- task outcomes ---------------------------------------------------------------------

    def _on_message(self, slot: Slot) -> None:
        self._settle(slot, self._drain(slot))

    def _drain(self, slot: Slot) -> list[tuple[Task, Outcome]]:
        """Every outcome the executor has sent so far, with its task (now off the slot)."""
        done: list[tuple[Task, Outcome]] = []
        while slot.tasks and slot.proc.ready():
            outcome = slot.proc.receive()
            if outcome is None:
                break  # EOF: the executor died, handled by _lost_executor
            done.append((slot.finish(), outcome))
        return done

    def _settle(self, slot: Slot, done: list[tuple[Task, Outcome]]) -> None:
        """Record finished tasks in Redis: failures one by one, successes in one call that
        also claims the slot's next jobs. A slot left idle claims again, or, when that call
        found the queue empty, waits for a wake-up hint."""
        if not done:
            return
        self.jobs_done += len(done)
        ok = [(t, o) for t, o in done if o.ok and not t.dropped]
        for task, outcome in done:
            if not outcome.ok and not task.dropped:
                self._fail(task, outcome.error, outcome.retry)
        drained = self._complete(slot, ok) if ok else False
        if not slot.tasks and self._grace_deadline is None:
            if drained:
                self._waker.block()
            else:
                self._want_claim = True

    def _complete(self, slot: Slot, done: list[tuple[Task, Outcome]]) -> bool:
        """Complete the finished tasks and refill the slot in the same round trip; True when
        that claim found nothing left in the worker's only queue."""
        queue = done[-1][0].queue
        fetch = 0 if self._grace_deadline is not None else max(slot.free, 0)
        same = [(t, o) for t, o in done if t.queue is queue]
        for task, outcome in done:
            if task.queue is not queue:
                self._complete_one(task, outcome)
        try:
            leases, refused = queue.complete_many(
                [t.lease for t, _ in same], [o.result for _, o in same], fetch_next=fetch)
        except SizeLimitError:  # isolate the oversized result(s): one call each
            for task, outcome in same:
                self._complete_one(task, outcome)
            return False
        for job_id, exc in refused.items():
            log.warning("worker %s: result of job %s discarded: %s", self.name, job_id, exc)
        slot.confirmed += [t.lease.job_id for t, _ in same if t.lease.job_id not in refused]
        for lease in leases:
            self._dispatch(slot, queue, lease)
        return (fetch > 0 and len(leases) < fetch and not refused
                and len(self.queue_names) == 1)

    def _complete_one(self, task: Task, outcome: Outcome) -> None:
        try:
            task.queue.complete(task.lease, outcome.result)
        except SizeLimitError as exc:
            self._fail(task, str(exc), retry=False)
        except _MOVED_ON as exc:
            log.warning("worker %s: result of job %s discarded: %s", self.name,
                        task.lease.job_id, exc)

    def _fail(self, task: Task, error: str, retry: bool = True) -> None:
        try:
            status = task.queue.fail(task.lease, error, retry)
        except _MOVED_ON as exc:
            log.warning("worker %s: failure of job %s not recorded: %s", self.name,
                        task.lease.job_id, exc)
            return
        log.warning("worker %s: job %s attempt %d failed (%s): %s", self.name,
                    task.lease.job_id, task.lease.attempt, status.value,
                    error.strip().splitlines()[-1] if error.strip() else error)

    def _on_death(self, slot: Slot) -> None:
        if not slot.proc.alive():
            self._lost_executor(slot)

    def _lost_executor(self, slot: Slot, spare: Task | None = None) -> None:
        """The executor died: count what it finished, fail what it was running, replace it.

        ``spare`` is a task just handed to it, which never started: the new executor runs it.
        """
        slot.proc.process.join(1)  # let the exit code settle before describing it
        done = self._drain(slot)  # outcomes it sent before dying still count
        how = slot.proc.exit_description()
        running = slot.head is not None and slot.head is not spare
        head = self._respawn(slot, drop_head=running)
        self._settle(slot, done)
        if head is not None and not head.dropped:
            self.jobs_done += 1
            self._fail(head, f"the executor process {how} while running the task")

    def _time_out(self, slot: Slot) -> None:
        self._settle(slot, self._drain(slot))  # it may have finished just in time
        head = slot.head
        if head is None or head.deadline is None or time.monotonic() < head.deadline:
            return
        self._respawn(slot, drop_head=True)
        if not head.dropped:
            self.jobs_done += 1
            self._fail(head, f"timeout after {head.timeout:g} s")

    def _heartbeat(self, task: Task, now: float) -> None:
        task.next_beat = now + self.lease / 3
        try:
            task.queue.heartbeat(task.lease)
        except _MOVED_ON as exc:  # expired, cancelled or deleted: stop working on it
            log.warning("worker %s: stopping job %s: %s", self.name, task.lease.job_id, exc)
            task.dropped = True
            for slot in self._slots:
                if slot.head is task:  # running: kill it
                    self._respawn(slot, drop_head=True)
                elif task in slot.tasks:  # prefetched: must not start (outcome ignored)
                    self._revoke(slot, task)

    def _hand_back(self, slot: Slot, tasks: list[Task]) -> None:
        """Revoke prefetched ``tasks`` (not started) and release their jobs to the queue."""
        self._settle(slot, self._drain(slot))  # some may have run meanwhile
        for task in tasks:
            if task not in slot.tasks or task is slot.head or task.dropped:
                continue
            task.dropped = True  # its "revoked" outcome will be ignored
            self._revoke(slot, task)
            try:
                task.queue.release(task.lease)
            except _MOVED_ON as exc:
                log.warning("worker %s: job %s not handed back: %s", self.name,
                            task.lease.job_id, exc)

    @staticmethod
    def _revoke(slot: Slot, task: Task) -> None:
        task.revoked = True
        with contextlib.suppress(OSError):  # a dead executor is replaced without it anyway
            slot.proc.revoke(task.lease.job_id)

    # -- executors and shutdown ------------------------------------------------------------

    def _spawn(self) -> ExecutorProcess:
        return ExecutorProcess(self.config, self._execute)

    def _respawn(self, slot: Slot, *, drop_head: bool) -> Task | None:
        """Replace the slot's executor; returns the running task when ``drop_head``."""
        self._want_claim = True
        head = slot.drop_head() if drop_head else None
        for attempt in range(3):
            try:
                slot.replace(self._spawn())
                break
            except OSError:  # the new one died at once: try again with the same tasks
                if attempt == 2:
                    raise
        return head

    def _release_running(self) -> None:
        """Kill the executors still busy and hand their jobs back to the queue now."""
        for slot in self._slots:
            if not slot.tasks:
                continue
            slot.proc.kill()
            tasks, slot.tasks = list(slot.tasks), type(slot.tasks)()
            for task in (t for t in tasks if not t.dropped):
                try:
                    task.queue.release(task.lease)
                    log.info("worker %s: job %s handed back", self.name, task.lease.job_id)
                except _MOVED_ON as exc:
                    log.warning("worker %s: job %s not handed back: %s", self.name,
                                task.lease.job_id, exc)

    def _shutdown(self) -> None:
        for slot in self._slots:
            if slot.tasks:
                slot.proc.kill()  # only after an unexpected error: its leases will expire
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
