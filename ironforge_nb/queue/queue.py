"""`Queue`: at-least-once job delivery on Redis, every transition one Lua script.

A producer enqueues bytes; a worker claims jobs under a lease (`dequeue`), keeps the lease alive
(`heartbeat`), reports `progress`, and ends each attempt with `complete` or `fail`, all fenced by
the lease token. Only the task's own outcome is an attempt: a failed attempt is retried with
exponential backoff and finally parked in the dead-letter queue. A lease whose worker died is
reaped: a STARTED one is a stall (queued again at once, no attempt charged, up to
``max_stalls`` times, then failed saying so), a HELD one (claimed ahead, `dequeue_many`'s
``started``, and never started) goes back for free. Every call is safe to resend after a
lost reply (redis-py does so on connection errors): it answers as the first call did. See
docs/design.md and the headers of ``lua/*.lua`` (lease_helpers.lua for stalls,
claim_helpers.lua for claim receipts).

Layout (key names from `keys.py`): a job is a meta HASH (readable fields: status, queue,
priority, attempts (tries ended by the task's own error, timeout or success), max_attempts,
backoff_ms, stalls, max_stalls, claims, stalled (the last stall), token, worker, lease_ms,
progress, message, created/enqueued/started/finished in Redis ms, error, error.<n> history,
run, task, user fields; counters are absent, read as 0, until they first move) plus a payload
STRING written once.
Per queue: wait ZSET scored ``-priority * 2**40 + seq`` (higher priority first, FIFO within
one), scheduled ZSET (due ms), active ZSET (lease deadline ms), dead, completed and cancelled
ZSETs (time ms; completed and cancelled trimmed to ``config.completed_retention``), a wake LIST
that idle workers block on, an events STREAM.
"""

from __future__ import annotations

import re
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from ironforge_nb.errors import InvalidOptionError, JobNotFoundError, QueueError
from ironforge_nb.names import validate_name
from ironforge_nb.queue.borrowing import read_results
from ironforge_nb.queue.codes import check
from ironforge_nb.queue.config import RedisConfig, default_config
from ironforge_nb.queue.logs import read_logs
from ironforge_nb.queue.options import (
    DEFAULT_MAX_STALLS,
    check_bytes,
    job_options,
    meta_args,
    new_job_id,
    seconds_to_ms,
    validate_count,
    validate_worker,
)
from ironforge_nb.queue.records import JobInfo, Lease, leases_from_reply
from ironforge_nb.queue.submitted import Absent, fill_in
from ironforge_nb.queue.transitions import QueueTransitions
from ironforge_nb.queue.walks import Walks
from ironforge_nb.status import Event, JobStatus

__all__ = ["Queue", "read_events"]

_STREAM_ID = re.compile(r"-|\d+(?:-\d+)?")
REAP_INTERVAL = 1.0  # seconds between two reaps of one queue by one process
# (Redis URL, namespace, queue) -> monotonic time this process next reaps that queue. Every
# Queue object and a worker's housekeeping go through it (`Queue.reap_if_due`), so a process
# reaps each queue once per interval, however many handles on it it holds.
_next_reap: dict[tuple[str, str, str], float] = {}
_MAX_BLOCK = 5.0  # longest single blocking wait on the wake list (well under socket timeouts)
_LIST_ORDER = {  # status -> (ZSET attribute of QueueKeys, newest first?)
    JobStatus.QUEUED: ("wait", False),
    JobStatus.SCHEDULED: ("scheduled", False),
    JobStatus.ACTIVE: ("active", False),
    JobStatus.COMPLETED: ("completed", True),
    JobStatus.FAILED: ("dead", True),
    JobStatus.CANCELLED: ("cancelled", True),
}


class Queue:
    """A named queue in a namespace: ``Queue("default", config)`` (config: `default_config()`).

    Producers call `enqueue` / `enqueue_batch`; workers `dequeue`, `heartbeat`, `progress`,
    `complete` / `fail`; anyone may read `info`, `counts`, `jobs`, `events`. Delivery is
    at-least-once: a job whose worker dies is delivered again once its lease expires.
    """

    def __init__(self, name: str = "default", config: RedisConfig | None = None) -> None:
        self.name = validate_name(name, "queue")
        self.config = config if config is not None else default_config()
        self._client = self.config.client()
        self._keys = self.config.keys
        self._qk = self._keys.queue(self.name)
        self._scripts = QueueTransitions(self._client, self.config, self.name)
        self._max_payload = self.config.max_payload_bytes
        self._reap_key = (self.config.url, self.config.namespace, self.name)

    def __repr__(self) -> str:
        return f"Queue({self.name!r}, namespace={self.config.namespace!r})"

    # -- producing -------------------------------------------------------------------------

    def enqueue(self, payload: bytes, *, priority: int = 0, delay: float = 0.0,
                max_attempts: int = 3, backoff: float = 1.0, job_id: str | None = None,
                meta: Mapping[str, str] | None = None,
                max_stalls: int = DEFAULT_MAX_STALLS) -> str:
        """Add one job; returns its id. The same ``job_id`` twice makes one job (idempotent).

        ``priority`` from -1000 to 1000 (higher first, FIFO within one), ``delay`` and
        ``backoff`` (base of the exponential retry delay) in seconds, ``meta`` your own fields
        of the job's meta hash (``run`` and ``task`` belong to pipeline runs and are refused),
        ``max_stalls`` how many times the job is queued again after its worker died under it
        before it fails (`DEFAULT_MAX_STALLS`). One round trip.
        """
        options = job_options(priority, delay, max_attempts, backoff)
        extra = meta_args(meta, max_stalls)
        jid = new_job_id() if job_id is None else validate_name(job_id, "job id")
        if type(payload) is not bytes or len(payload) > self._max_payload:
            check_bytes("payload", payload, self._max_payload)
        self._scripts.enqueue_jobs((*options, *extra), (jid, payload))
        return jid

    def enqueue_batch(self, payloads: Iterable[bytes], *, chunk_size: int = 1000,
                      priority: int = 0, delay: float = 0.0, max_attempts: int = 3,
                      backoff: float = 1.0, job_ids: Sequence[str] | None = None,
                      meta: Mapping[str, str] | None = None,
                      max_stalls: int = DEFAULT_MAX_STALLS) -> list[str]:
        """Add many jobs with the same options, one round trip per chunk; returns their ids.

        Every input is checked before the first write. Ids are chosen here (or given in
        ``job_ids``) before sending, so a chunk retried after a reconnect or NOSCRIPT cannot
        create a job twice. If Redis stays down beyond the reconnect budget the error is
        raised with the earlier chunks written; pass ``job_ids`` to make re-sending the whole
        batch safe (the error's notes say how many jobs were written).
        """
        validate_count("chunk_size", chunk_size)
        head = (*job_options(priority, delay, max_attempts, backoff),
                *meta_args(meta, max_stalls))
        data = list(payloads)
        limit = self._max_payload
        for p in data:
            if type(p) is not bytes or len(p) > limit:
                check_bytes("payload", p, limit)
        if job_ids is None:
            ids = [new_job_id() for _ in data]
        else:
            ids = [validate_name(j, "job id") for j in job_ids]
            if len(ids) != len(data):
                raise InvalidOptionError("job_ids", f"{len(ids)} ids",
                                         f"one id per payload ({len(data)})")
            if len(set(ids)) != len(ids):
                twice = sorted(j for j, n in Counter(ids).items() if n > 1)[:5]
                raise InvalidOptionError("job_ids", f"ids repeated: {twice}",
                                         "one distinct id per payload")
        for start in range(0, len(data), chunk_size):
            jobs: list[Any] = [None, None] * len(ids[start:start + chunk_size])
            jobs[0::2] = ids[start:start + chunk_size]
            jobs[1::2] = data[start:start + chunk_size]
            try:
                self._scripts.enqueue_jobs(head, jobs)
            except Exception as exc:
                exc.add_note(f"enqueue_batch: the first {start:,} of {len(ids):,} jobs were "
                             "written; re-send with the same job_ids to finish safely")
                raise
        return ids

    # -- working ---------------------------------------------------------------------------

    def dequeue(self, worker: str, lease: float = 30.0, timeout: float = 1.0) -> Lease | None:
        """Claim the best ready job, waiting up to ``timeout`` seconds (0: do not wait)."""
        leases = self.dequeue_many(worker, 1, lease, timeout)
        return leases[0] if leases else None

    def dequeue_many(self, worker: str, n: int, lease: float = 30.0, timeout: float = 1.0, *,
                     started: int | None = None) -> list[Lease]:
        """Claim up to ``n`` ready jobs in one script; waits like `dequeue` when none is ready.

        While idle, the worker blocks on the queue's wake list (enqueue pushes a hint there);
        a lost hint costs at most the wait, never a job, since every wake-up claims by script.
        The claim is sent with the BLPOP in one write, so Redis runs it the moment the BLPOP
        returns: a woken worker already holds its jobs, with no second round trip.
        Expired leases of the queue are reaped on the way, at most once per second.
        ``started`` (default: all) is how many of the jobs, the first ones, start now; the
        others are HELD for later (prefetch): if their lease expires before `start` marks them
        started (their worker died meanwhile), they go back to the queue at no charge.
        """
        validate_worker(worker)
        validate_count("n", n)
        start = n if started is None else validate_count("started", started, 0)
        lease_ms = seconds_to_ms("lease", lease, positive=True)
        give_up = time.monotonic() + _number_seconds("timeout", timeout)
        self.reap_if_due()
        reply = self._scripts.claim_jobs(worker, lease_ms, n, start)
        while len(reply) == 1:
            remaining = give_up - time.monotonic()
            if remaining <= 0:
                return []
            wait = min(remaining, _MAX_BLOCK)
            if reply[0] > 0:
                wait = min(wait, reply[0] / 1000)
            self.reap_if_due()
            reply = self._scripts.claim_after_wait(self._qk.wake, max(wait, 0.001), worker,
                                                   lease_ms, n, start)
        return leases_from_reply(reply, self.name, worker, lease_ms)

    def heartbeat(self, lease: Lease, extend: float | None = None) -> int:
        """Extend the lease to now + ``extend`` seconds (default: its length at claim time).

        Returns the new deadline (ms, Redis time). Raises `LeaseLost` if the job moved on and
        `JobStateError` if it is no longer active (e.g. cancelled: stop working on it).
        """
        self._own(lease)
        ms = lease.lease_ms if extend is None else seconds_to_ms("extend", extend, positive=True)
        return self._scripts.heartbeat_job(lease.job_id, lease.token, ms)

    def progress(self, lease: Lease, value: float, message: str | None = None) -> None:
        """Record progress (0 to 1) and an optional message; O(1) whatever the payload size."""
        self._own(lease)
        if (isinstance(value, bool) or not isinstance(value, int | float)
                or not 0.0 <= value <= 1.0):
            raise InvalidOptionError("value", value, "a number from 0 to 1")
        if message is not None and not isinstance(message, str):
            raise InvalidOptionError("message", message, "a str or None")
        self._scripts.update_progress(lease.job_id, lease.token, value, message)

    def complete(self, lease: Lease, result: bytes | None = None, *,
                 fetch_next: int = 0) -> list[Lease]:
        """End the attempt successfully, storing ``result`` (with the config's TTL).

        With ``fetch_next=k``, the same round trip claims up to k next jobs for the same worker
        and lease length, returned as leases (steady-state workers make one call per job).
        """
        self._own(lease)
        if result is not None:
            check_bytes("result", result, self.config.max_result_bytes)
        if fetch_next:
            validate_count("fetch_next", fetch_next, 0)
        reply = self._scripts.complete_job(
            lease.job_id, lease.token, result, lease.worker, lease.lease_ms, fetch_next)
        if len(reply) == 1:
            return []
        return leases_from_reply(reply, self.name, lease.worker, lease.lease_ms)

    def complete_many(self, leases: Sequence[Lease], results: Sequence[bytes | None] | None = None,
                      *, fetch_next: int = 0, started: int | None = None,
                      start: Lease | None = None, receipt: str | None = None,
                      request_id: str | None = None
                      ) -> tuple[list[Lease], dict[str, QueueError]]:
        """Complete several attempts in one round trip (for workers running small jobs).

        Returns the next leases (up to ``fetch_next``, claimed for the first lease's worker and
        lease length, and only when every completion was accepted; the first ``started`` of
        them, default all, start now, the rest are held as `dequeue_many` holds them) and the
        refusals by job id (`LeaseLost`, `JobStateError`...): a refused job does not stop the
        others. ``start``, a held lease of the same worker, is marked started (see `start`).
        ``receipt`` names the receipt the claim leaves (default: the worker's own) and
        ``request_id`` the claim's id, for a caller that claims beside its worker (an
        executor, see worker/executor.py) and may need `release_claim`.
        """
        if results is None:
            results = [None] * len(leases)
        if len(results) != len(leases):
            raise InvalidOptionError("results", f"{len(results)} results",
                                     f"one per lease ({len(leases)})")
        limit = self.config.max_result_bytes
        items = []
        for lease, result in zip(leases, results, strict=True):
            if type(lease) is not Lease or lease.queue != self.name:
                self._own(lease)
            if result is not None:
                check_bytes("result", result, limit)
            items.append((lease.job_id, lease.token, result))
        validate_count("fetch_next", fetch_next, 0)
        n_start = fetch_next if started is None else validate_count("started", started, 0)
        if start is not None:
            self._own(start)
        if not leases:
            return [], {}
        first = leases[0]
        reply, outcomes = self._scripts.complete_jobs(
            items, first.worker, first.lease_ms, fetch_next, n_start,
            None if start is None else (start.job_id, start.token), receipt, request_id)
        refused = {}
        for lease, outcome in zip(leases, outcomes, strict=True):
            if outcome != 1:  # 1 completed; 0 a replay; anything else a refusal
                try:
                    check(outcome, "complete_job", lease.job_id)
                except QueueError as err:
                    refused[lease.job_id] = err
        nxt = leases_from_reply(reply, self.name, first.worker, first.lease_ms)
        return nxt, refused

    def fail(self, lease: Lease, error: str, retry: bool = True) -> JobStatus:
        """End the attempt with ``error``: retried later (scheduled) or dead-lettered (failed).

        ``retry=False`` sends the job to the dead-letter queue whatever attempts remain.
        Returns the job's new status.
        """
        self._own(lease)
        if not isinstance(error, str):
            raise InvalidOptionError("error", type(error).__name__, "a str describing the error")
        status, _due = self._scripts.fail_job(lease.job_id, lease.token, error, bool(retry))
        return JobStatus(status)

    def save_logs(self, lease: Lease, text: str) -> None:
        """Store ``text`` as the output of the lease's attempt, replacing what was stored for it
        (executors call this, see ``ironforge_nb.worker.logs``). Not fenced: a late writer
        writes its own attempt. Raises `JobNotFoundError` once the job is gone."""
        self._own(lease)
        self._scripts.save_logs(lease.job_id, lease.attempt, text)

    def release(self, lease: Lease, *, held_only: bool = False) -> bool:
        """Hand the job back to the queue now, without waiting for the lease to expire.

        For a worker that stops before finishing: the job goes to the front of its priority
        level, nothing is charged (neither an attempt nor a stall), and this lease is refused
        from now on. With ``held_only``, a lease already marked started (`start`) is not
        released: the call returns False and the lease stays the caller's (a worker handing
        back a prefetched job its executor may have just taken up). Returns True when
        released. Raises `LeaseLost` if the job already moved on, `JobStateError` if it is
        not active.
        """
        self._own(lease)
        return self._scripts.release_job(lease.job_id, lease.token, held_only)

    def stall(self, lease: Lease, reason: str) -> JobStatus:
        """Record that the process running the job died under it (``reason``: how), which is
        a stall, not an attempt: the job is queued again at once, or failed once it stalled
        more than its ``max_stalls``. Returns the job's new status (queued or failed)."""
        self._own(lease)
        if not isinstance(reason, str):
            raise InvalidOptionError("reason", type(reason).__name__, "a str")
        return JobStatus(self._scripts.stall_job(lease.job_id, lease.token, reason))

    def start(self, leases: Sequence[Lease]) -> int:
        """Mark held leases (claimed ahead, see `dequeue_many`) started: from now on, their
        expiry is a stall rather than a free release. Returns how many were still held by
        their token (a job that moved on is left alone)."""
        return self.send_start(leases)()

    def send_start(self, leases: Sequence[Lease]) -> Callable[[], int]:
        """`start` in two steps: sends the mark now and returns the function that waits for
        Redis's answer, so that the caller works while Redis answers (an executor sends the
        next job's mark, then reports the last job's outcome: `worker/executor.py`). Any
        other call of this thread on the same client reads that answer first."""
        for lease in leases:
            self._own(lease)
        if not leases:
            return lambda: 0
        return self._scripts.start_jobs([(le.job_id, le.token) for le in leases])

    def release_claim(self, receipt: str, request_id: str, lease_ms: int) -> int:
        """Hand back for free the jobs of the claim ``request_id`` made under ``receipt``
        (`complete_many`) whose caller died before it ran them, and make that claim claim
        nothing should it reach Redis only now; returns how many went back."""
        validate_worker(receipt)
        return self._scripts.release_claim(receipt, request_id, lease_ms)

    def release_worker(self, worker: str, reason: str, limit: int = 1000) -> int:
        """End now, as if they had expired, the leases of ``worker``, known to be gone (its
        registry entry went stale: see the worker's housekeeping), among the ``limit`` oldest
        deadlines: a started one stalls with ``reason``, a held one goes back for free.
        Returns how many ended."""
        validate_worker(worker)
        if not isinstance(reason, str):
            raise InvalidOptionError("reason", type(reason).__name__, "a str")
        return self._scripts.release_dead(worker, reason, validate_count("limit", limit))

    def reap(self, limit: int = 100) -> int:
        """End up to ``limit`` expired leases (a started one stalls, a held one goes back for
        free: see the module docstring); returns how many."""
        return self._scripts.reap_expired(validate_count("limit", limit))

    def reap_if_due(self, now: float | None = None) -> int:
        """`reap` unless this process reaped the queue less than `REAP_INTERVAL` ago (by any
        handle: the schedule is per process); returns how many leases were reaped. A reap
        also gives the namespace's pending run walks a slice of time (`Walks.work`), so a walk
        left half done by a caller that crashed is finished."""
        now = time.monotonic() if now is None else now
        if now < _next_reap.get(self._reap_key, 0.0):
            return 0
        _next_reap[self._reap_key] = now + REAP_INTERVAL
        reaped = self.reap()
        Walks(self.config).work()
        return reaped

    def _own(self, lease: Lease) -> None:
        if not isinstance(lease, Lease) or lease.queue != self.name:
            raise InvalidOptionError("lease", lease, f"a Lease of queue {self.name!r}")

    # -- managing --------------------------------------------------------------------------

    def cancel(self, job_id: str) -> bool:
        """Cancel a job that has not ended; False if it already had. Its worker is refused."""
        return self._scripts.cancel_job(validate_name(job_id, "job id"))

    def requeue(self, job_id: str) -> None:
        """Queue a dead-lettered job again, with its attempts reset (its history is kept).

        A task of a DAG run is refused (`JobStateError` naming the fix): its run skipped its
        descendants, and only ``Run.retry_failed()`` puts them back.
        """
        self._scripts.requeue_job(validate_name(job_id, "job id"))

    def purge_dead(self) -> int:
        """Empty this queue's dead-letter queue; returns how many jobs it held.

        Jobs are deleted for good, except tasks of DAG runs: they leave the dead-letter queue,
        but their records live as long as their run (its table and retry read them).
        """
        return self._scripts.purge_dead()

    # -- reading ---------------------------------------------------------------------------

    def info(self, job_id: str) -> JobInfo:
        """A snapshot of the job's meta hash."""
        raw = self._client.hgetall(self._keys.job(validate_name(job_id, "job id")))
        if not raw:
            raise JobNotFoundError(job_id)
        return self._infos([(job_id, raw)])[0]

    def logs(self, job_id: str, attempt: int | None = None) -> str:
        """What an attempt of the job printed and logged: the latest by default ("" if it
        printed nothing yet), else attempt number ``attempt`` (see `read_logs`)."""
        return read_logs(self.config, job_id, attempt)

    def result(self, job_id: str) -> bytes | None:
        """The job's result, or None (no result stored, not completed yet, or expired). A
        pipeline's task served from the cross-run cache holds none of its own: its
        ``source_job`` does (submit_run.lua), and that one is returned."""
        [(_, value)] = read_results(self._client, self._keys, [validate_name(job_id, "job id")])
        return value

    def payload(self, job_id: str) -> bytes:
        """The job's payload, as enqueued."""
        value: bytes | None = self._client.get(
            self._keys.payload(validate_name(job_id, "job id")))
        if value is None:
            raise JobNotFoundError(job_id)
        return value

    def counts(self) -> dict[JobStatus, int]:
        """Jobs of this queue by status (queued, scheduled, active, completed, failed,
        cancelled), read in one round trip."""
        pipe = self._client.pipeline(transaction=False)
        for attr, _newest in _LIST_ORDER.values():
            pipe.zcard(getattr(self._qk, attr))
        return dict(zip(_LIST_ORDER, pipe.execute(), strict=True))

    def jobs(self, status: JobStatus | str, limit: int = 100, offset: int = 0) -> list[JobInfo]:
        """Jobs in ``status``: queued in claim order, scheduled by due time, active by deadline,
        completed/failed/cancelled newest first."""
        key = _status(status)
        validate_count("limit", limit)
        validate_count("offset", offset, 0)
        attr, newest_first = _LIST_ORDER[key]
        zset = getattr(self._qk, attr)
        read = self._client.zrevrange if newest_first else self._client.zrange
        ids = [i.decode() for i in read(zset, offset, offset + limit - 1)]
        pipe = self._client.pipeline(transaction=False)
        for jid in ids:
            pipe.hgetall(self._keys.job(jid))
        return self._infos([(jid, raw) for jid, raw in zip(ids, pipe.execute(), strict=True)
                            if raw])

    def _infos(self, found: Sequence[tuple[str, Mapping[bytes, bytes]]]) -> list[JobInfo]:
        """`JobInfo` of ``(job id, HGETALL reply)`` pairs, with the times a submit leaves out
        of a run's jobs filled in (`submitted.fill_in`)."""
        times = fill_in(self._client, self._keys, [_absent(raw) for _, raw in found])
        out = []
        for (jid, raw), (created, enqueued) in zip(found, times, strict=True):
            if created is not None or enqueued is not None:
                raw = dict(raw)
                if created is not None:
                    raw[b"created"] = created
                if enqueued is not None:
                    raw[b"enqueued"] = enqueued
            out.append(JobInfo.from_hash(jid, raw))
        return out

    def dead_letters(self, limit: int = 100, offset: int = 0) -> list[JobInfo]:
        """Jobs in the dead-letter queue, newest first."""
        return self.jobs(JobStatus.FAILED, limit, offset)

    def events(self, since: str = "0", count: int = 1000) -> list[Event]:
        """Events of this queue after stream id ``since`` ("0": from the oldest kept)."""
        return read_events(self._client, self._qk.events, since, count)


def read_events(client: Any, stream: str, since: str = "0", count: int = 1000) -> list[Event]:
    """The events of up to ``count`` entries of ``stream`` (a queue's or a run's) after entry id
    ``since`` ("0": from the oldest kept); a malformed id is an `InvalidOptionError`. A run's
    'cached' entry (a submit's cache hits) comes out as one COMPLETED event per task, with
    ``cached``, and a 'task_events' or 'job_events' entry (one script call's claimed,
    enqueued and completed events) as those events (`Event.expanded`), all with that entry's
    id: ``count`` counts entries."""
    validate_count("count", count)
    if not isinstance(since, str) or _STREAM_ID.fullmatch(since) is None:
        raise InvalidOptionError("since", since, "a stream id such as '0' or '1700000000000-0'")
    start = "-" if since in ("0", "0-0", "-") else "(" + since
    entries = client.xrange(stream, start, "+", count=count)
    return [event for eid, data in entries
            for event in Event.from_fields(eid.decode(), {k.decode(): v.decode()
                                                          for k, v in data.items()}).expanded()]


def _number_seconds(option: str, value: object) -> float:
    return seconds_to_ms(option, value) / 1000


def _status(status: JobStatus | str) -> JobStatus:
    for key in _LIST_ORDER:
        if status == key:
            return key
    listed = ", ".join(s.value for s in _LIST_ORDER)
    raise InvalidOptionError("status", status, f"one of {listed}")


def _absent(raw: Mapping[bytes, bytes]) -> Absent | None:
    """What a run's job hash leaves to its reader (`submitted.fill_in`); None for a plain
    job, or when neither time is missing."""
    run, task = raw.get(b"run"), raw.get(b"task")
    if run is None or task is None or (b"created" in raw and b"enqueued" in raw):
        return None
    return Absent(run.decode(), task.decode(), raw.get(b"status", b"").decode(),
                  b"source_job" in raw or b"source_run" in raw, b"created" not in raw,
                  b"enqueued" not in raw)
