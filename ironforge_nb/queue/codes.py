"""The error codes of the Lua scripts, named once, and the one place they become exceptions.

A script that refuses a transition returns ``{code, detail}`` with a negative ``code`` (see each
script's header); `check` turns that reply into the matching exception from `ironforge_nb.errors`,
naming the script and the job. Success replies never start with a negative integer.
"""

from __future__ import annotations

from enum import IntEnum
from typing import Any

from ironforge_nb.errors import (
    JobNotFoundError,
    JobStateError,
    LeaseLost,
    QueueError,
    ScriptError,
)

__all__ = ["ErrorCode", "check", "error_for"]


class ErrorCode(IntEnum):
    """Negative codes returned by the queue's Lua scripts."""

    JOB_NOT_FOUND = -1  # no meta hash for this id (never created, purged or trimmed)
    LEASE_LOST = -2  # the caller's token is not the job's: the lease expired, the job moved on
    BAD_STATE = -3  # the job's status does not allow this transition (detail: the status)
    WRONG_QUEUE = -4  # the job belongs to another queue (detail: that queue)
    RUN_TASK = -5  # the job is a task of a DAG run, which handles it (detail: the run id)
    # The same numbers as the run and webhook scripts use them (aliases: one value, one code)
    NOT_FOUND = -1  # no such run, delivery or endpoint
    NOT_ENDED = -2  # delete_runs: the run has not ended (detail: its status)
    STALE_TOKEN = -2  # settle_delivery: the delivery was claimed again (detail: its status)
    RUN_BUSY = -3  # a walk or skips are still pending on the run: finish them first


# script name -> the verb used in "cannot <verb> job ..." messages
_ACTIONS = {
    "complete_job": "complete",
    "fail_job": "fail",
    "heartbeat_job": "heartbeat",
    "update_progress": "update the progress of",
    "cancel_job": "cancel",
    "requeue_job": "requeue",
    "release_job": "release",
    "stall_job": "record a stall of",
}


def error_for(script: str, code: int, job_id: str, detail: str = "") -> QueueError:
    """The exception for error ``code`` returned by ``script`` about ``job_id``."""
    action = _ACTIONS.get(script, script)
    if code == ErrorCode.JOB_NOT_FOUND:
        return JobNotFoundError(job_id, script)
    if code == ErrorCode.LEASE_LOST:
        return LeaseLost(job_id, script)
    if code == ErrorCode.BAD_STATE:
        return JobStateError(job_id, detail, action, script)
    if code == ErrorCode.WRONG_QUEUE:
        return JobStateError(job_id, f"in queue {detail!r}", action, script)
    if code == ErrorCode.RUN_TASK:
        return JobStateError(job_id, f"a task of run {detail!r}: use "
                             f"ifn.Run({detail!r}).retry_failed(), which re-runs the run's "
                             "failed and skipped tasks and keeps its completed results",
                             action, script)
    return ScriptError(script, code, job_id)


def check(reply: Any, script: str, job_id: str) -> Any:
    """Return ``reply`` unchanged unless it is an error reply, which is raised."""
    if type(reply) is list and reply and type(reply[0]) is int and reply[0] < 0:
        detail = reply[1] if len(reply) > 1 else b""
        text = detail.decode() if isinstance(detail, bytes) else str(detail)
        raise error_for(script, reply[0], job_id, text)
    return reply
