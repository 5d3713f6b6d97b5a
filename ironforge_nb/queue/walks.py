"""`Walks`: the bounded steps that finish a run's cancel, retry or skip of descendants.

No script walks a whole run (Redis runs one script at a time, and a 100k-task walk would block
every client): ``cancel_run.lua`` and ``retry_run.lua`` begin a walk and take its first step,
a failure skips the first descendants in its own script, and the rest is left in Redis (the
run's ``walk`` and ``skips`` keys, the namespace's ``runs:walking`` ZSET) for ``walk_run.lua``,
one step of a few hundred tasks per call. Whoever needs a run settled calls `finish` (cancel,
retry, delete and `Run.wait` do), and every process that reaps a queue gives the walks of its
namespace a slice of time (`work`, from `Queue.reap_if_due`), so work left by a caller that
crashed between two steps is finished by the next one.
"""

from __future__ import annotations

import time
from typing import Any

from ironforge_nb.queue.config import RedisConfig
from ironforge_nb.queue.link import Link
from ironforge_nb.queue.scripting import LuaScript

__all__ = ["WALK_SLICE", "Walks"]

WALK_SLICE = 0.25  # seconds of walk steps one reap gives the namespace at most


class Walks:
    """The walk steps of one config's namespace."""

    def __init__(self, config: RedisConfig) -> None:
        keys = config.keys
        self._script = LuaScript(Link.of(config.client()), "walk_run")
        self._keys = [keys.runs_walking]
        self._head = [keys.job_prefix, keys.run_prefix, keys.queue_prefix, config.events_maxlen]

    def step(self, run_id: str = "") -> list[Any]:
        """One step of ``run_id``'s pending work ('' = of the run waiting longest); returns
        walk_run.lua's reply: [run id, busy (0/1), kind, counts...]."""
        reply: list[Any] = self._script(self._keys, [*self._head, run_id])
        return [reply[0].decode(), int(reply[1]), reply[2].decode(), *map(int, reply[3:])]

    def finish(self, run_id: str) -> list[Any]:
        """Steps until ``run_id`` has no work pending; returns the last step's reply."""
        reply = self.step(run_id)
        while reply[1]:
            reply = self.step(run_id)
        return reply

    def work(self, seconds: float = WALK_SLICE) -> int:
        """Steps of any pending walks of the namespace, oldest first, until none is left or
        ``seconds`` have passed; returns how many steps were taken."""
        give_up = time.monotonic() + seconds
        steps = 0
        while True:
            run, _busy, kind, *_ = self.step()
            if not run:
                return steps
            steps += int(kind != "none")
            if time.monotonic() >= give_up:
                return steps
