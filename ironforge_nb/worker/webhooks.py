"""`DispatcherProcess`: the webhook dispatcher every worker runs beside its executors.

The worker's main process keeps no threads (it forks executors at any time), and its loop must
never wait on a receiver; so the dispatcher (`ironforge_nb.webhooks.Dispatcher`, with its own
threads and connections) runs in a process of its own, forked like the executors. It dies with
the worker (``PR_SET_PDEATHSIG``) and the worker replaces it if it dies on its own.
"""

from __future__ import annotations

import contextlib
import copy
import multiprocessing
import os
import signal
from typing import Any

from ironforge_nb.pdeathsig import set_process_name
from ironforge_nb.queue import RedisConfig
from ironforge_nb.worker.executor import _die_with_parent

__all__ = ["DispatcherProcess"]


def _dispatcher_main(config: RedisConfig, name: str, parent: int,
                     options: dict[str, Any]) -> None:
    """Body of a worker's dispatcher process: deliver until SIGTERM or the worker's death."""
    from ironforge_nb.webhooks.dispatcher import Dispatcher

    _die_with_parent(parent)
    set_process_name("ifn-webhooks")  # as top and ps -o comm show it
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the worker's to handle
    dispatcher = Dispatcher(copy.copy(config), name=name, **options)
    signal.signal(signal.SIGTERM, lambda signum, frame: dispatcher.stop())
    dispatcher.run()


class DispatcherProcess:
    """A worker's dispatcher process (``options`` go to `Dispatcher`)."""

    def __init__(self, config: RedisConfig, name: str, **options: Any) -> None:
        self._args = (config, name, os.getpid(), options)
        self.process: Any = None

    def start(self) -> DispatcherProcess:
        """Fork the dispatcher process."""
        ctx = multiprocessing.get_context("fork")
        self.process = ctx.Process(target=_dispatcher_main, args=self._args,
                                   name="ironforge-webhooks", daemon=True)
        self.process.start()
        return self

    def alive(self) -> bool:
        """True while the process runs."""
        return self.process is not None and bool(self.process.is_alive())

    def stop(self, timeout: float = 5.0) -> None:
        """SIGTERM (attempts in flight end, bounded by their timeout), then SIGKILL."""
        if self.process is None:
            return
        with contextlib.suppress(OSError):
            self.process.terminate()
        self.process.join(timeout)
        if self.process.is_alive():
            with contextlib.suppress(OSError):
                self.process.kill()
            self.process.join(5)
