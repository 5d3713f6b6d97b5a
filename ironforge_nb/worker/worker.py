"""`Worker`: claims jobs from one or more queues and runs them in a pool of executor processes.

The worker's main process never runs user code. It is a single-threaded event loop that claims
jobs in batches (one claim for all idle executors; then each completion, or batch of
completions, claims that executor's next jobs in the same round trip:
``complete_many(fetch_next=k)``; only a worker with an idle executor blocks on the wake list),
hands leases to forked executors (`executor.py`; fast ones prefetch, see `slots.py`) and
records their outcomes (`outcomes.py`; an executor that dies under its task is a stall, not an
attempt), heartbeats every lease it holds (prefetched ones too) every third of its length,
kills an executor whose task outlives its ``timeout`` and fails that attempt, reaps expired
leases of its queues, and refreshes its entry in the worker registry (`housekeeping.py`). It
waits on executor pipes, executor deaths, a BLPOP on the queues' wake lists (`wake.py`) and a
self-pipe for stop requests, all at once.

Stopping (SIGTERM, SIGINT or `Worker.stop`): claim nothing more, let running tasks finish
within ``grace`` seconds (prefetched jobs go back at once), then kill the executors still
busy and hand their jobs back (`Queue.stall`: a stall if their code had begun, else free), so
other workers take them at once. A
second stop request skips the grace. If the worker is SIGKILLed, its executors die with it and
the engine redelivers its jobs once their leases expire (at-least-once): the running ones as
stalls, the prefetched ones at no charge (`slots.py`). See `stopping.py`.

`Worker` is one class split over modules, each a base class of the next (see `core.py`); this
module holds the options, `Worker.run` and the loop.
"""

from __future__ import annotations

import functools
import os
import signal
import socket
import time
from collections.abc import Callable, Sequence

from ironforge_nb.errors import InvalidOptionError
from ironforge_nb.names import validate_name
from ironforge_nb.queue import Queue, RedisConfig, default_config
from ironforge_nb.queue.options import seconds_to_ms, validate_count, validate_worker
from ironforge_nb.worker.core import REDIS_DOWN, log
from ironforge_nb.worker.executor import Executor, task_executor
from ironforge_nb.worker.housekeeping import GONE_INTERVAL, Housekeeping
from ironforge_nb.worker.registry import Registry
from ironforge_nb.worker.slots import PREFETCH, Slot
from ironforge_nb.worker.wake import Waker
from ironforge_nb.worker.wire import Readiness

__all__ = ["Worker"]


class Worker(Housekeeping):
    """A worker serving ``queues`` of ``config``'s namespace with ``concurrency`` executors.

    ``executor`` runs one lease and returns its encoded result (default: the orchestrator's
    `execute_task`, with ``secret`` and ``json_only``). ``lease`` is the lease length in
    seconds, ``timeout`` the default per-task limit (None: none; a job's own ``timeout`` meta
    field wins), ``grace`` how long running tasks may finish after a stop request,
    ``prefetch`` the most extra leases an executor of short tasks holds (see `slots.py`).
    With ``parent_pid``, the worker stops by itself once that process is gone (local workers
    watch their notebook kernel this way too, besides ``PR_SET_PDEATHSIG``). With
    ``webhooks`` (the default), a process of its own delivers the namespace's webhooks
    (`webhooks.DispatcherProcess`).
    `run` blocks; call it from a process of its own (the CLI, `ifn.connect`'s local workers).
    """

    def __init__(self, config: RedisConfig | None = None, queues: Sequence[str] = ("default",),
                 *, concurrency: int = 1, name: str | None = None,
                 executor: Executor | None = None, secret: bytes | None = None,
                 json_only: bool = False, lease: float = 30.0, timeout: float | None = None,
                 grace: float = 10.0, prefetch: int = PREFETCH,
                 parent_pid: int | None = None, webhooks: bool = True) -> None:
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
        self._execute = executor if executor is not None else task_executor(secret, json_only)
        self.webhooks = bool(webhooks)
        self._hooks = None
        self.jobs_done = 0
        self._parent_pid = parent_pid
        self._slots = []
        self._queues = {}
        self._stop_r, self._stop_w = os.pipe()
        os.set_blocking(self._stop_w, False)
        self._stop_requests = 0
        self._grace_deadline = None
        self._want_claim = True
        self._next_reap = self._next_beat = 0.0
        self._next_gone = time.monotonic() + GONE_INTERVAL

    def __repr__(self) -> str:
        return (f"Worker({self.name!r}, namespace={self.config.namespace!r}, "
                f"queues={list(self.queue_names)}, concurrency={self.concurrency})")

    # -- public ----------------------------------------------------------------------------

    def run(self) -> None:
        """Serve until a stop request, then shut down gracefully; returns when done."""
        # fork the executors first, before any thread or Redis connection exists here
        self._slots = [Slot(self._spawn(), self.prefetch) for _ in range(self.concurrency)]
        self._check_dispatcher()
        previous = self._install_signals()
        self._queues = {q: Queue(q, self.config) for q in self.queue_names}
        self._registry = Registry(self.config, self.name, self.queue_names, self.concurrency)
        self._waker = Waker(self.config, [self.config.keys.queue(q).wake
                                          for q in self.queue_names])
        self._readiness = Readiness()
        self._handlers_key = ()
        self._handlers_cache = {}
        log.info("worker %s serving %s (concurrency %d, pid %d)", self.name,
                 ",".join(self.queue_names), self.concurrency, os.getpid())
        try:
            while self._serve_safely():
                pass
        finally:
            self._shutdown()
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    # -- the loop --------------------------------------------------------------------------

    def _serve_safely(self) -> bool:
        try:
            return self._serve_once()
        except REDIS_DOWN as exc:
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
            heads = len({id(s) for s in free if not s.tasks})  # first in `free`: they start now
            for lease in queue.dequeue_many(self.name, len(free), self.lease, timeout=0,
                                            started=heads):
                # more than asked: a claim whose reply was lost, answered now (scripts.py)
                slot = free.pop(0) if free else min(self._slots, key=lambda s: len(s.tasks))
                self._dispatch(slot, queue, lease)
        self._waker.claimed(wanted, wanted - len(free))
        if any(not s.tasks for s in self._slots):
            self._waker.block()

    def _wait_and_handle(self, timeout: float) -> None:
        handlers = self._handlers()
        ready = self._readiness.ready(timeout)
        for fd, handler in handlers.items():  # messages before deaths: a result sent just
            if fd in ready:                   # before exit counts
                handler()

    def _handlers(self) -> dict[int, Callable[[], None]]:
        """What to wait on, by file descriptor: built again only when an executor was
        replaced or the wake-list BLPOP was sent or answered. The key holds the executor
        objects themselves (compared by identity): an ``id()`` could be reused by a
        replacement once the old object is freed, and stale descriptors would be watched."""
        key = (self._waker.pending, *(s.proc for s in self._slots),
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

    def _on_wake(self) -> None:
        self._waker.collect()
        self._want_claim = True
