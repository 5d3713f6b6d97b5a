"""`Worker`: claims jobs from one or more queues and runs them in a pool of executor processes.

The worker's main process never runs user code. It is a single-threaded event loop that claims
jobs in batches (one claim for all idle executors; then each completion, or batch of
completions, claims that executor's next jobs in the same round trip:
``complete_many(fetch_next=k)``; an executor whose success leaves it nothing to run makes
that call itself and tells the worker, `executor.py`; only a worker with an idle executor
blocks on the wake list),
hands leases to forked executors (`executor.py`; fast ones prefetch, see `slots.py`) and
records their outcomes (`settling.py`; an executor that dies under its task is a stall, not an
attempt), heartbeats every lease it holds (prefetched ones too) every third of its length,
kills an executor whose task outlives its ``timeout`` and fails that attempt, reaps expired
leases of its queues, and refreshes its entry in the worker registry (`housekeeping.py`). It
waits on executor pipes (one read late while its executor runs short leases it claimed itself,
and the pipe on which an executor calls it back: `executor.py`), executor deaths, a BLPOP on
the queues' wake lists (`wake.py`) and a self-pipe for stop requests, all at once.

Stopping (SIGTERM, SIGINT or `Worker.stop`): claim nothing more, let running tasks finish
within ``grace`` seconds (prefetched jobs go back at once), then kill the executors still
busy and hand their jobs back (`Queue.stall`: a stall if their code had begun, else free), so
other workers take them at once. A
second stop request skips the grace. If the worker is SIGKILLed, its executors die with it and
the engine redelivers its jobs once their leases expire (at-least-once): the running ones as
stalls, the prefetched ones at no charge (`slots.py`). See `stopping.py`.

`Worker` holds the options and the loop; each concern is an object of its own, which the worker
makes and wires together and which keeps its own state behind a few public methods:

- `ExecutorPool` (`pool.py`): the slots and their executor processes; dispatches leases to
  them, drains their outcomes, replaces an executor;
- `Settler` (`settling.py`): records outcomes in Redis (complete, fail, stall, time out, hand
  back), deferred completions included, and refills a slot in the same call;
- `Claimer` (`claiming.py`): the claim for idle executors, and the wake-up hints;
- `Housekeeper` (`housekeeping.py`): heartbeats, timeouts, reaping, the registry entry, gone
  workers, the webhook dispatcher process;
- `Stopper` (`stopping.py`): stop requests, signals, the grace period;
- `Waker` (`wake.py`): the BLPOP the loop polls, shared by the parts that claim, settle, stop.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import socket
import time
from collections.abc import Callable, Sequence
from typing import Any

from ironforge_nb.errors import InvalidOptionError
from ironforge_nb.names import validate_name
from ironforge_nb.queue import Queue, RedisConfig, default_config
from ironforge_nb.queue.options import seconds_to_ms, validate_count, validate_worker
from ironforge_nb.worker.claiming import Claimer
from ironforge_nb.worker.executor import REDIS_DOWN, Executor, task_executor
from ironforge_nb.worker.housekeeping import Housekeeper, start_dispatcher
from ironforge_nb.worker.pool import ExecutorPool
from ironforge_nb.worker.settling import Settler
from ironforge_nb.worker.slots import PREFETCH, Slot
from ironforge_nb.worker.stopping import Stopper
from ironforge_nb.worker.wake import Waker
from ironforge_nb.worker.wire import Readiness

__all__ = ["Worker"]

log = logging.getLogger("ironforge_nb.worker")


class Worker:
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
        self.webhooks = bool(webhooks)
        self._parent_pid = parent_pid
        # the parts that need no connection and fork nothing yet (`stop` works before `run`)
        self._pool = ExecutorPool(
            self.config, executor if executor is not None else task_executor(secret, json_only),
            self.concurrency, prefetch=self.prefetch, lease=self.lease, timeout=self.timeout)
        self._waker = Waker(self.config, [self.config.keys.queue(q).wake
                                          for q in self.queue_names])
        self._settler = Settler(self.name, self._pool, self._waker,
                                single_queue=len(self.queue_names) == 1)
        self._stopper = Stopper(self.name, self.grace, self._pool, self._settler, self._waker)
        # the loop's poll set, rebuilt only when what it watches changed (see _handlers)
        self._readiness = Readiness()
        self._handlers_key: tuple[Any, ...] = ()
        self._handlers_cache: dict[int, Callable[[], None]] = {}

    def __repr__(self) -> str:
        return (f"Worker({self.name!r}, namespace={self.config.namespace!r}, "
                f"queues={list(self.queue_names)}, concurrency={self.concurrency})")

    # -- public ----------------------------------------------------------------------------

    @property
    def running(self) -> int:
        """How many claimed jobs this worker holds now (running or prefetched)."""
        return self._pool.running

    @property
    def jobs_done(self) -> int:
        """How many tasks ran to an outcome (or died or timed out trying) so far."""
        return self._settler.jobs_done

    def stop(self) -> None:
        """Ask the worker to stop (safe from a signal handler or another thread).

        The first request lets running tasks finish within the grace period; a second one
        hands them back to the queue at once.
        """
        self._stopper.stop()

    def run(self) -> None:
        """Serve until a stop request, then shut down gracefully; returns when done."""
        # fork the executors and the webhook dispatcher first, before any thread or Redis
        # connection exists here
        self._pool.start()
        hooks = start_dispatcher(self.config, self.name) if self.webhooks else None
        self._stopper.install_signals()
        queues = {q: Queue(q, self.config) for q in self.queue_names}
        self._housekeeper = Housekeeper(
            self.config, self.name, queues, pool=self._pool, settler=self._settler,
            lease=self.lease, hooks=hooks, parent_pid=self._parent_pid, stop=self.stop)
        self._claimer = Claimer(self.name, list(queues.values()), self.lease, pool=self._pool,
                                settler=self._settler, waker=self._waker)
        log.info("worker %s serving %s (concurrency %d, pid %d)", self.name,
                 ",".join(self.queue_names), self.concurrency, os.getpid())
        try:
            while self._serve_safely():
                pass
        finally:
            self._shutdown()

    # -- the loop --------------------------------------------------------------------------

    def _serve_safely(self) -> bool:
        try:
            return self._serve_once()
        except REDIS_DOWN as exc:
            log.warning("worker %s: Redis unavailable (%s); retrying in 1 s", self.name, exc)
            self._waker.close()
            self._pool.claim_due = True  # whatever was interrupted, claim again once it is back
            time.sleep(1.0)
            return True

    def _serve_once(self) -> bool:
        """One turn of the loop; False once the worker has nothing left to do."""
        now = time.monotonic()
        stopper = self._stopper
        if not stopper.serving(now):
            return False
        if stopper.deadline is None:
            if self._pool.claim_due:
                self._claimer.claim()
            else:
                self._claimer.idle(now)
        self._settler.flush_deferred(now)
        self._housekeeper.periodic(now)
        self._wait_and_handle(self._next_wakeup(now))
        return True

    def _next_wakeup(self, now: float) -> float:
        """Seconds until the next chore, deferred completion, claim or end of the grace."""
        due = min(self._housekeeper.next_due(now), self._settler.next_due())
        if self._stopper.deadline is not None:
            due = min(due, self._stopper.deadline)
        elif self._pool.claim_due:
            due = now
        elif self._waker.arm_at is not None:  # a BLPOP delayed by its cooldown
            due = min(due, self._waker.arm_at)
        return max(0.0, due - now)

    def _wait_and_handle(self, timeout: float) -> None:
        now = time.monotonic()
        late = frozenset(s for s in self._pool.slots if s.read_after > now)  # see Slot.read_after
        if late:
            timeout = min(timeout, max(0.0, min(s.read_after for s in late) - now))
        handlers = self._handlers(late)
        ready = self._readiness.ready(timeout)
        for fd, handler in handlers.items():  # messages before deaths: a result sent just
            if fd in ready:                   # before exit counts
                handler()

    def _handlers(self, late: frozenset[Slot] = frozenset()) -> dict[int, Callable[[], None]]:
        """What to wait on, by file descriptor: built again only when an executor was
        replaced, the wake-list BLPOP was sent or answered, or the slots whose pipe is read
        late (``late``, not watched: `Slot.read_after`) changed. The key holds the executor
        objects themselves (compared by identity): an ``id()`` could be reused by a
        replacement once the old object is freed, and stale descriptors would be watched."""
        slots = self._pool.slots
        key = (self._waker.pending, late, *(s.proc for s in slots),
               *(s.proc.conn.closed for s in slots))
        if key == self._handlers_key:
            return self._handlers_cache
        settler = self._settler
        handlers: dict[int, Callable[[], None]] = {self._stopper.fileno(): self._stopper.drain}
        for slot in slots:
            if not slot.proc.conn.closed:
                if slot not in late:
                    handlers[slot.proc.conn.fileno()] = functools.partial(settler.on_message,
                                                                          slot)
                handlers[slot.proc.alert_fd] = functools.partial(settler.on_alert, slot)
            handlers[slot.proc.sentinel] = functools.partial(settler.on_death, slot)
        if self._waker.pending:
            handlers[self._waker.fileno()] = self._claimer.on_wake
        self._readiness.watch(handlers)
        self._handlers_key, self._handlers_cache = key, handlers
        return handlers

    def _shutdown(self) -> None:
        self._pool.close()
        with contextlib.suppress(Exception):
            self._waker.close()
        self._housekeeper.close()
        self._stopper.close()
        log.info("worker %s stopped after %d job(s)", self.name, self.jobs_done)
