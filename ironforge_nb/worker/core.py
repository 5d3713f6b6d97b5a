"""`WorkerCore`: the state a `Worker` keeps, and the executor replacement every part needs.

`Worker` is one class split over modules along its responsibilities, each a base class of the
next: this core, then recording outcomes (`outcomes.py`), stop handling (`stopping.py`),
housekeeping (`housekeeping.py`), and the loop itself (`worker.py`). The state is set by
`Worker.__init__` and `Worker.run`; it is declared here so that each part is type-checked.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from ironforge_nb.errors import JobNotFoundError, JobStateError, LeaseLost
from ironforge_nb.queue import Queue, RedisConfig
from ironforge_nb.worker.executor import REDIS_DOWN, Executor, ExecutorProcess
from ironforge_nb.worker.registry import Registry
from ironforge_nb.worker.slots import Slot, Task
from ironforge_nb.worker.wake import Waker
from ironforge_nb.worker.webhooks import DispatcherProcess
from ironforge_nb.worker.wire import Readiness

__all__ = ["MOVED_ON", "REDIS_DOWN", "WorkerCore", "log"]

log = logging.getLogger("ironforge_nb.worker")

MOVED_ON = (LeaseLost, JobStateError, JobNotFoundError)  # the job is no longer ours


class WorkerCore:
    """The worker's state, and replacing an executor (the base of `Worker`)."""

    # options, validated by Worker.__init__
    config: RedisConfig
    queue_names: tuple[str, ...]
    concurrency: int
    name: str
    lease: float  # seconds
    timeout: float | None  # seconds
    grace: float  # seconds
    prefetch: int
    jobs_done: int
    _execute: Executor
    _parent_pid: int | None
    # state of a running worker
    _slots: list[Slot]
    _queues: dict[str, Queue]
    _stop_r: int
    _stop_w: int
    _stop_requests: int
    _grace_deadline: float | None  # monotonic; set once stopping
    _want_claim: bool
    _next_reap: float  # monotonic
    _next_beat: float  # monotonic
    webhooks: bool  # run a webhook dispatcher process
    _hooks: DispatcherProcess | None
    _next_gone: float  # monotonic: next look for gone workers
    # made by Worker.run, after the executors are forked
    _registry: Registry
    _waker: Waker
    _readiness: Readiness
    _handlers_key: tuple[Any, ...]
    _handlers_cache: dict[int, Callable[[], None]]

    @property
    def running(self) -> int:
        """How many claimed jobs this worker holds now (running or prefetched)."""
        return sum(len(s.tasks) for s in self._slots)

    def _check_dispatcher(self) -> None:
        """Start the webhook dispatcher process, or a new one if it died."""
        if not self.webhooks or (self._hooks is not None and self._hooks.alive()):
            return
        if self._hooks is not None:
            log.warning("worker %s: webhook dispatcher died; starting another", self.name)
        self._hooks = DispatcherProcess(self.config, f"{self.name}.webhooks").start()

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
