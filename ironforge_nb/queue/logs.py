"""Reading what a job's attempts printed and logged (`Queue.logs`, `Run.logs`).

The executor that runs an attempt stores the tail of its output (stdout, stderr and log records,
interleaved in the order written) in the job's logs HASH, field = attempt number, at most about
once a second while it runs and when it ends (``ironforge_nb.worker.logs``; the write is
lua/save_logs.lua). The HASH has the result TTL and is deleted with its job (queue retention,
a purge of the dead-letter queue, its run's deletion).
"""

from __future__ import annotations

from ironforge_nb.errors import InvalidOptionError, JobNotFoundError
from ironforge_nb.names import validate_name
from ironforge_nb.queue.config import RedisConfig

__all__ = ["read_logs"]


def read_logs(config: RedisConfig, job_id: str, attempt: int | None = None) -> str:
    """The output of one attempt of ``job_id``: by default the latest (the running try, else
    one a stall or a shutdown interrupted, else the last that ended; "" when it printed nothing
    or none has started), else attempt ``attempt`` (1 = the first). One round trip.

    Attempt numbers start again at 1 when a job is requeued from the dead-letter queue or its
    run's failed tasks are retried; a new attempt's output replaces the old one of that number.
    Raises `JobNotFoundError` for an unknown job, `InvalidOptionError` for an attempt that is
    not an int >= 1.
    """
    jid = validate_name(job_id, "job id")
    if attempt is not None and (isinstance(attempt, bool) or not isinstance(attempt, int)
                                or attempt < 1):
        raise InvalidOptionError("attempt", attempt, "an attempt number >= 1, or None for "
                                 "the latest")
    keys = config.keys
    pipe = config.client().pipeline(transaction=False)
    pipe.hmget(keys.job(jid), "status", "attempts")
    pipe.hgetall(keys.logs(jid))
    (status, attempts), texts = pipe.execute()
    if status is None:
        raise JobNotFoundError(jid)
    if attempt is None:  # `attempts` counts the tries that ended; the next one is + 1
        ended = int(attempts or 0)
        running = status == b"active" or str(ended + 1).encode() in texts  # or interrupted
        attempt = ended + 1 if running else ended
    raw = texts.get(str(attempt).encode())
    return "" if raw is None else bytes(raw).decode("utf-8", "replace")
