"""What every live view shares: the kernel's loop to follow on, and a client that fails fast.

Views follow Redis on the kernel's asyncio loop (ipykernel 7 drops display updates sent from
other threads), and read through a client of their own without retries and with short
timeouts, so that a Redis that went away shows as "connection lost, retrying" within seconds
instead of stalling the view.
"""

from __future__ import annotations

import asyncio
from dataclasses import replace
from typing import Any

from ironforge_nb.queue import RedisConfig
from ironforge_nb.widgets.text import in_kernel

__all__ = ["Following", "kernel_loop", "watching_config"]

_SOCKET_TIMEOUT = 5.0  # a view's own client: a hung Redis shows as lost within seconds
_CONNECT_TIMEOUT = 2.0


def kernel_loop() -> asyncio.AbstractEventLoop | None:
    """The running asyncio loop of a Jupyter kernel, or None (no kernel, no running loop)."""
    if not in_kernel():
        return None
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


def watching_config(config: RedisConfig) -> RedisConfig:
    """``config`` for a view's own client: no retries, timeouts of a few seconds at most."""
    return replace(config, retries=0,
                   socket_timeout=min(config.socket_timeout or _SOCKET_TIMEOUT, _SOCKET_TIMEOUT),
                   connect_timeout=min(config.connect_timeout, _CONNECT_TIMEOUT))


class Following:
    """The loop task of a live view (a base class): whether it runs, and stopping it."""

    _task: asyncio.Task[None] | None = None
    _closed = False
    _shut = False  # close() ran (closing the widgets calls it again: it must end there)

    def close(self) -> None:  # pragma: no cover - each view has its own
        raise NotImplementedError

    def _close_with(self, root: Any) -> None:
        """Run `close` when the view's root widget is closed: by ``root.close()`` in the
        kernel (its comm is dropped) or by the front end (a ``comm_close`` message), so that
        no loop task is left following Redis for a view nobody sees."""
        def dropped(change: dict[str, Any]) -> None:
            if change["new"] is None:
                self.close()

        root.observe(dropped, names="comm")
        if root.comm is not None:
            root.comm.on_close(lambda _msg: self.close())

    @property
    def following(self) -> bool:
        """Whether a loop task is following Redis now."""
        return self._task is not None and not self._task.done()

    def _stop_following(self) -> None:
        """Mark the view closed and cancel its loop task (no task is left on the loop)."""
        self._closed = True
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
