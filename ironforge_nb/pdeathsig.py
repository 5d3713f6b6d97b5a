"""Linux's parent-death signal (``prctl(PR_SET_PDEATHSIG)``), written once; and process names.

Two kinds of child must not outlive the process that started them: a worker's executors
(SIGKILL: user code cannot ignore it, `worker.executor`) and a kernel's redis-server and local
workers (SIGTERM, set in a ``preexec_fn``, `local.server`). Elsewhere than Linux, or when libc
cannot be loaded, `pdeathsig_setter` returns None and the callers fall back on their own means
(a parent pid check, a watchdog process).

`set_process_name` names the calling process for ``top``, ``ps -o comm`` and ``/proc/<pid>/comm``
(``prctl(PR_SET_NAME)``): a worker's executors and webhook dispatcher are forks of the worker,
and would otherwise all show as ``python``.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable

__all__ = ["PR_SET_PDEATHSIG", "pdeathsig_setter", "set_pdeathsig", "set_process_name"]

PR_SET_PDEATHSIG = 1  # <linux/prctl.h>
PR_SET_NAME = 15  # <linux/prctl.h>: the name is cut at 15 bytes


def _prctl() -> Callable[..., int] | None:
    """libc's ``prctl``, or None elsewhere than Linux or when libc cannot be loaded."""
    if not sys.platform.startswith("linux"):
        return None
    import ctypes
    import ctypes.util

    try:
        prctl: Callable[..., int] = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6",
                                                use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    return prctl


def pdeathsig_setter() -> Callable[[int], None] | None:
    """A function that asks the kernel to send the calling process ``signum`` when its parent
    (the thread that forked it) dies, or None where unavailable.

    Resolve it before forking when it is to run in a ``preexec_fn``: loading libc after a fork
    is not safe in a multi-threaded parent.
    """
    prctl = _prctl()
    if prctl is None:
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


def set_process_name(name: str) -> bool:
    """Name the calling process ``name`` (at most 15 bytes are kept) as ``top`` and ``ps -o
    comm`` show it; False where unavailable."""
    prctl = _prctl()
    if prctl is None:
        return False
    import ctypes

    return prctl(PR_SET_NAME, ctypes.c_char_p(name.encode()[:15]), 0, 0, 0) == 0
