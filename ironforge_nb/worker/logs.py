"""Capturing what a task prints and logs, per attempt, into Redis (executor side).

An executor process installs the capture once (`install`): ``sys.stdout`` and ``sys.stderr``
become streams that write to the running attempt's `Capture`, and the root logger gets a handler
doing the same for records at ``config.task_log_level`` and above; everything lands in one
buffer, interleaved in the order written. Between tasks the streams pass writes on to the
executor's own (the worker's log). Per attempt (`start_capture` .. `stop_capture`), only the
tail is kept: the last ``config.task_log_bytes`` bytes, the older output dropped and counted,
so that a chatty task cannot fill Redis; the stored text then starts with a marker saying how
much was dropped.

The tail is written to the job's logs HASH (`Queue.save_logs`) at most once per `INTERVAL`
while the task runs, so monitors show prints live, and once when it ends, before its outcome
is reported. A task that prints nothing costs well under a microsecond and writes nothing. A
failed write (Redis away) is retried an interval later and never changes the task's outcome;
it is logged to the worker's log. Output written straight to file descriptors 1 and 2 (C
extensions, subprocesses) bypasses ``sys.stdout`` and goes to the worker's log, as before. An
executor killed mid-task (timeout, cancel, crash) loses what was printed since the last
flush, at most about a second's worth.
"""

from __future__ import annotations

import functools
import io
import logging
import sys
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, TextIO

from ironforge_nb.errors import JobNotFoundError
from ironforge_nb.worker.coalesce import Coalescer, PerTask

if TYPE_CHECKING:
    from ironforge_nb.queue import Lease, Queue, RedisConfig

__all__ = ["INTERVAL", "Capture", "install", "marker", "start_capture", "stop_capture"]

INTERVAL = 1.0  # seconds between two writes of one attempt's output while it runs, at least
FORMAT = "%(levelname)s:%(name)s:%(message)s"  # log records, as logging.basicConfig writes them
log = logging.getLogger(__name__)  # to the worker's log only, never into a task's output


def marker(dropped: int, cap: int) -> str:
    """The first line of a tail that lost its start: how much output was dropped."""
    return (f"[ironforge: {dropped:,} bytes of earlier output dropped; the last {cap:,} "
            "are kept (RedisConfig.task_log_bytes)]\n")


class Capture(Coalescer):
    """The output of one attempt: a capped tail, written by ``send`` at most once per
    ``interval`` (from a timer thread) and by `close` (thread-safe). `close` returns once the
    last write is done, a timer's write in flight included: the attempt's outcome, reported
    next, never overtakes its output."""

    def __init__(self, send: Callable[[str], None], cap: int,
                 interval: float = INTERVAL) -> None:
        super().__init__(interval)
        self._send = send
        self._cap = cap
        self._buffer = bytearray()
        self._dropped = 0  # bytes cut from the front of the buffer
        self._dirty = False

    def write(self, text: str) -> None:
        """Append ``text``; a write to Redis follows within `INTERVAL`."""
        data = text.encode("utf-8", "replace")
        with self._lock:
            self._buffer += data
            if len(self._buffer) > 2 * self._cap:  # amortized: cut once it doubled
                cut = len(self._buffer) - self._cap
                del self._buffer[:cut]
                self._dropped += cut
            self._dirty = True
            self._schedule(self._wait())

    def text(self) -> str:
        """The tail as stored: the marker (if output was dropped), then the last bytes."""
        with self._lock:
            return self._text()

    def _text(self) -> str:
        tail = bytes(self._buffer[-self._cap:])
        dropped = self._dropped + len(self._buffer) - len(tail)
        body = tail.decode("utf-8", "replace")
        return marker(dropped, self._cap) + body if dropped else body

    def _has_pending(self) -> bool:
        return self._dirty

    def flush(self) -> None:
        """Write the tail now if anything was added since the last write."""
        with self._lock:  # held while sending: two writes never arrive out of order
            if not self._dirty:
                return
            self._dirty = False
            self._last = time.monotonic()
            try:
                self._send(self._text())
            except JobNotFoundError:
                pass  # the job is gone (trimmed, its run deleted): nothing to keep
            except Exception as exc:  # Redis away: the timer tries again an interval later
                self._dirty = True
                log.warning("could not store a task's output (%s); will retry", exc)


def _make_capture(queue: Queue, lease: Lease) -> Capture:
    return Capture(functools.partial(queue.save_logs, lease), queue.config.task_log_bytes)


_captures: PerTask[Capture] = PerTask(_make_capture)  # the running attempt's, on first write
_installed = False


class _Stream(io.TextIOBase):
    """``sys.stdout`` / ``sys.stderr`` of an executor: the running attempt's capture, else
    the original stream."""

    def __init__(self, original: TextIO) -> None:
        self._original = original

    def write(self, text: str) -> int:
        capture = _capture()
        if capture is None:
            return self._original.write(text)
        capture.write(text)
        return len(text)

    def flush(self) -> None:
        if _captures.task is None:
            self._original.flush()

    def writable(self) -> bool:
        return True

    def isatty(self) -> bool:
        return False

    def fileno(self) -> int:  # subprocess(stdout=sys.stdout), faulthandler: the real one
        return self._original.fileno()

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return "utf-8"


class _Handler(logging.Handler):
    """Root handler: log records of the running attempt go to its capture."""

    def emit(self, record: logging.LogRecord) -> None:
        capture = _capture()
        if capture is None or record.name == log.name:  # a capture's own warning: the
            return  # worker's log (writing it into the capture would deadlock a flush)
        try:
            capture.write(self.format(record) + "\n")
        except Exception:
            self.handleError(record)


def install(config: RedisConfig) -> None:
    """Capture task output in this (executor) process from now on (a no-op with
    ``config.task_log_bytes == 0``). The root logger's level is lowered to the capture level
    if needed; its other handlers keep the level they had in effect, so the worker's log does
    not get noisier."""
    global _installed
    if config.task_log_bytes == 0 or _installed:
        return
    _installed = True
    level = logging.getLevelName(config.task_log_level)
    root = logging.getLogger()
    before = root.getEffectiveLevel()
    if before > level:
        for handler in root.handlers:
            handler.setLevel(max(handler.level, before))
        root.setLevel(level)
    handler = _Handler(level)
    handler.setFormatter(logging.Formatter(FORMAT))
    root.addHandler(handler)
    sys.stdout = _Stream(sys.stdout)
    sys.stderr = _Stream(sys.stderr)


def start_capture(queue: Queue, lease: Lease) -> None:
    """Capture the output of ``lease``'s attempt from now on (see `install`). Its `Capture`
    is made by the first write: a task that prints nothing costs an assignment here and a
    lock in `stop_capture`."""
    if _installed:
        _captures.start(queue, lease)


def stop_capture() -> None:
    """End the capture: later output goes to the worker's log, and the attempt's output, if
    any, is written now."""
    _captures.stop()


def _capture() -> Capture | None:
    """The running attempt's capture (made on its first write), or None between tasks."""
    return _captures.get()
