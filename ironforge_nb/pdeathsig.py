"""Linux's parent-death signal (``prctl(PR_SET_PDEATHSIG)``), written once.

Two kinds of child must not outlive the process that started them: a worker's executors
(SIGKILL: user code cannot ignore it, `worker.executor`) and a kernel's redis-server and local
workers (SIGTERM, set in a ``preexec_fn``, `local.server`). Elsewhere than Linux, or when libc
cannot be loaded, `pdeathsig_setter` returns None and the callers fall back on their own means
(a parent pid check, a watchdog process).
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable

__all__ = ["PR_SET_PDEATHSIG", "pdeathsig_setter", "set_pdeathsig"]

PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def pdeathsig_setter() -> Callable[[int], None] | None:
    """A function that asks the kernel to send the calling process ``signum`` when its parent
    (the thread that forked it) dies, or None where unavailable.

    Resolve it before forking when it is to run in a ``preexec_fn``: loading libc after a fork
    is not safe in a multi-threaded parent.
    """
    if not sys.platform.startswith("linux"):
        return None
    import ctypes
    import ctypes.util

    try:
        prctl = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True).prctl
    except (OSError, AttributeError):
        return None

    def set_signal(signum: int) -> None:
        prctl(PR_SET_PDEATHSIG, int(signum), 0, 0, 0)

    return set_signal


def set_pdeathsig(signum: int) -> bool:
    """Set the calling process's parent-death signal now; False where unavailable."""
    setter = pdeathsig_setter()
    if setter is None:
        return False
    with contextlib.suppress(OSError):
        setter(signum)
        return True
    return False
