"""`Run.wait`: block until a run ends, following its event stream, with a progress bar.

The wait is a blocking XREAD on the run's stream: it costs nothing while the run is quiet, at
most one read per 5 ms while events keep coming, and returns as soon as the 'run_finished'
event is appended. A read whose connection keeps being cut (more often than the client's
retries ride out) is sent again as long as Redis answers a PING. It also takes the steps of
work still pending on the run (a cancel left half done, the skip of a failed task's many
descendants: `queue.walks`), so a waiting notebook never depends on a worker's reaper for
them. The progress bar is drawn by the waiting call itself (a notebook's kernel loop is
blocked meanwhile, so nothing else could draw it): after a batch of events it reads the
run's counters (one HMGET) at most
`_BAR_EVERY` seconds apart.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any, Protocol

import redis.exceptions

from ironforge_nb.errors import InvalidOptionError, RunFailedError, RunTimeoutError
from ironforge_nb.queue.walks import Walks
from ironforge_nb.status import EventType, JobStatus, RunStatus

if TYPE_CHECKING:
    from ironforge_nb.orchestrator.run import Run

__all__ = ["COUNTER_FIELDS", "Bar", "counters", "wait"]

_BLOCK = 5.0  # longest single XREAD BLOCK, well under the client's socket timeout
_PACE = 0.005  # seconds between two reads of a run's events while they keep coming: a run
# appends several events per task, and a read per event would cost the notebook (and Redis)
# a round trip per event on the cores the workers need; the price is <= 5 ms more latency
_RUN_FINISHED = EventType.RUN_FINISHED.value.encode()
_SKIPPED = EventType.SKIPPED.value.encode()
_BAR_EVERY = 0.2  # seconds between two redraws of the progress bar, at least
# the run meta fields a progress view needs, in HMGET order
COUNTER_FIELDS = ("name", "status", "total", "waiting", "completed", "failed", "skipped",
                  "cancelled", "created", "finished")
_FINISHED = ("completed", "failed", "skipped", "cancelled")
_CUT = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError)


class Bar(Protocol):
    """A progress view a wait draws on: `update` with the run's counters, then `close`."""

    def update(self, info: dict[str, Any]) -> None: ...

    def close(self, info: dict[str, Any]) -> None: ...


def counters(values: list[bytes | None]) -> dict[str, Any]:
    """The run's counters from an HMGET of `COUNTER_FIELDS`: numbers as ints, plus ``done``
    (tasks that have ended) and ``in_flight`` (queued, scheduled or active)."""
    info: dict[str, Any] = {}
    for name, raw in zip(COUNTER_FIELDS, values, strict=True):
        text = None if raw is None else raw.decode()
        info[name] = text if name in ("name", "status") else int(text or 0)
    info["done"] = sum(info[n] for n in _FINISHED)
    info["in_flight"] = info["total"] - info["done"] - info["waiting"]
    return info


def wait(run: Run, timeout: float | None, progress: bool, raise_on_failure: bool) -> None:
    """`Run.wait`'s body (see there)."""
    if timeout is not None and (isinstance(timeout, bool) or
                                not isinstance(timeout, int | float) or timeout < 0):
        raise InvalidOptionError("timeout", timeout, "a number of seconds >= 0, or None")
    for name, flag in (("progress", progress), ("raise_on_failure", raise_on_failure)):
        if not isinstance(flag, bool):
            raise InvalidOptionError(name, flag, "True or False")
    give_up = None if timeout is None else time.monotonic() + timeout
    client = run.config.client()
    keys = run.config.keys.run(run.id)
    Walks(run.config).finish(run.id)  # a cancel half done reads cancelled: finish it first
    pipe = client.pipeline(transaction=False)  # the cursor first: no event is missed
    pipe.xrevrange(keys.events, "+", "-", count=1)
    pipe.hmget(keys.meta, *COUNTER_FIELDS)
    last, values = pipe.execute()
    if values[1] is None:
        raise run._not_found()
    info = counters(values)
    bar = _bar(run.id, info) if progress else None
    try:
        info = _follow(run, last[0][0] if last else b"0-0", info, give_up, timeout, bar)
    finally:
        if bar is not None:
            bar.close(info)
    if raise_on_failure and info["status"] != RunStatus.SUCCEEDED.value:
        _raise_failed(run, info["status"])


def _follow(run: Run, cursor: bytes, info: dict[str, Any], give_up: float | None,
            timeout: float | None, bar: Bar | None) -> dict[str, Any]:
    """Read the run's events until it has ended; returns its last counters."""
    client = run.config.client()
    keys = run.config.keys.run(run.id)
    drawn = time.monotonic()
    while not RunStatus(info["status"]).terminal:
        left = _BLOCK if give_up is None else min(_BLOCK, give_up - time.monotonic())
        if left <= 0:
            raise RunTimeoutError(run.id, float(timeout or 0))
        try:
            reply = client.xread({keys.events: cursor}, count=1000,
                                 block=max(1, int(left * 1000)))
        except _CUT:
            # the blocked read lost its connection more often than the client retries (a
            # quiet run while connections keep being cut): Redis is there if it answers PING
            # (which raises once Redis is really gone), so read again rather than give up
            client.ping()
            continue
        ended = skipping = False
        for eid, fields in reply[0][1] if reply else ():
            cursor = eid
            kind = fields.get(b"type")
            ended = ended or kind == _RUN_FINISHED
            skipping = skipping or kind == _SKIPPED
        if skipping and not ended:  # a failure's skip of many descendants: take its steps
            Walks(run.config).finish(run.id)
        now = time.monotonic()
        # no reply: the stream may have been trimmed past our cursor, so read the status
        if ended or not reply or (bar is not None and now - drawn >= _BAR_EVERY):
            info = _read(run)  # after 'run_finished': a retry may have restarted it since
            if bar is not None:
                bar.update(info)
                drawn = now
        if reply and not ended:  # busy stream: let events gather rather than wake per event
            time.sleep(_PACE)
    return info


def _read(run: Run) -> dict[str, Any]:
    values = run.config.client().hmget(run.config.keys.run(run.id).meta, *COUNTER_FIELDS)
    if values[1] is None:
        raise run._not_found()
    return counters(values)


def _bar(run_id: str, info: dict[str, Any]) -> Bar | None:
    from ironforge_nb.widgets.waitbar import wait_bar

    return wait_bar(run_id, info)


def _raise_failed(run: Run, status: str) -> None:
    """Raise `RunFailedError` naming the run's failed tasks (read once, at the end)."""
    failed = [t for t in run.tasks() if t.status is JobStatus.FAILED]
    error = failed[0].error if failed else None
    raise RunFailedError(run.id, status, [t.name for t in failed], error)
