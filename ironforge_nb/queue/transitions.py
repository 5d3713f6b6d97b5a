"""The per-queue transitions: one typed wrapper for each of the queue's Lua scripts
(``queue/lua/``, assembled and called by `queue.scripting`).

Every script is a `scripting.LuaScript`: EVALSHA, and on NOSCRIPT (script cache flushed, Redis
restarted, failover to a new node) one EVAL of the source, which cannot lose a race with
another flush (P1-2). No wrapper uses a redis-py pipeline: those check scripts with an extra
SCRIPT EXISTS round trip and cannot reload one flushed between that check and EXEC; one script
call per chunk is both faster and safe. Calls go through a `Link` (one held connection per
thread, see link.py); the one two-command write, BLPOP then the claim, handles NOSCRIPT on the
claim's own reply (`LuaScript.after`). Every reply goes through `codes.check`, the one place
error codes become exceptions. Key names come from `QueueKeys`; per-job keys are derived inside
the scripts from `Keys.job_prefix` and the suffixes of `keys.py`, passed as ARGV.
Safe resends: the claims (claim_jobs, complete_job's fetch), requeue_job and cancel_job get a
request id made here once per call (`options.new_request_id`), which redis-py's retry after a
lost reply sends again unchanged; the script answers that resend as it answered the first.
A claim whose reply was lost on every try (the connection error reached the caller) may still
have run: its request id is kept, per worker, and the same worker's next claim in this queue
(a claim, or a completion that fetches) is sent with it, so that Redis answers it from the
lost claim's receipt: the worker gets those jobs instead of leaving them active with nobody
holding them until their leases run out.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from typing import Any

import redis.exceptions

from ironforge_nb.queue.codes import check
from ironforge_nb.queue.config import RedisConfig
from ironforge_nb.queue.keys import JOB_LOGS_SUFFIX, JOB_PAYLOAD_SUFFIX, JOB_RESULT_SUFFIX
from ironforge_nb.queue.link import Link
from ironforge_nb.queue.options import DEFAULT_MAX_STALLS, new_request_id
from ironforge_nb.queue.scripting import LuaScript

__all__ = ["MAX_BACKOFF_MS", "PROMOTE_LIMIT", "QueueTransitions"]

PROMOTE_LIMIT = 1000  # due scheduled jobs promoted per claim at most (bounds one script's work)
MAX_BACKOFF_MS = 3_600_000  # one retry delay is capped at an hour
_TRIM_LIMIT = 100  # dead jobs purged per purge_dead call


class QueueTransitions:
    """The Lua scripts of one queue, bound to a client, a namespace and a queue name."""

    def __init__(self, client: Any, config: RedisConfig, queue: str) -> None:
        keys = config.keys
        qk = keys.queue(queue)
        self.queue = queue
        self._keys = keys
        self._qk = qk
        self._maxlen = config.events_maxlen
        self._retention = config.completed_retention
        self._result_ttl_ms = max(1, int(config.result_ttl * 1000))
        self._prefix = keys.job_prefix
        # prefixes the run helpers derive run and queue keys from (DAG runs, run_helpers.lua)
        self._run_args = [keys.job_prefix, keys.run_prefix, keys.queue_prefix]
        self._run_tail = (JOB_LOGS_SUFFIX, keys.run_prefix, keys.queue_prefix)
        link = Link.of(client)
        self._scripts = {
            name: LuaScript(link, name)
            for name in ("enqueue_jobs", "claim_jobs", "complete_job", "fail_job",
                         "heartbeat_job", "update_progress", "reap_expired", "cancel_job",
                         "requeue_job", "purge_dead", "release_job", "stall_job",
                         "start_jobs", "save_logs", "release_dead", "release_claim")
        }
        s = self._scripts
        # Bound callables and constant KEYS/ARGV heads, built once: the hot paths only add
        # the per-call arguments.
        self._enqueue = s["enqueue_jobs"]
        self._enqueue_keys = [qk.wait, qk.scheduled, qk.wake, qk.events, qk.seq, keys.queues]
        self._enqueue_head = [self._prefix, JOB_PAYLOAD_SUFFIX, queue, self._maxlen]
        self._claim = s["claim_jobs"]
        self._claim_keys = [qk.wait, qk.scheduled, qk.active, qk.events, qk.seq]
        self._claim_head = [self._prefix, JOB_PAYLOAD_SUFFIX, queue, self._maxlen]
        self._claim_tail = [PROMOTE_LIMIT, JOB_RESULT_SUFFIX, keys.run_prefix]
        self._complete = s["complete_job"]
        self._complete_keys = [qk.active, qk.completed, qk.events, qk.wait, qk.scheduled, qk.seq]
        self._complete_head = [self._prefix, JOB_PAYLOAD_SUFFIX, JOB_RESULT_SUFFIX, queue,
                               self._maxlen, self._result_ttl_ms, self._retention]
        self._receipts: dict[str, str] = {}  # worker -> its receipt key in this queue
        self._lost: dict[str, str] = {}  # worker -> request id of a claim whose reply was lost

    def _receipt(self, worker: str) -> str:
        key = self._receipts.get(worker)
        if key is None:
            if len(self._receipts) > 64:  # a process uses a few worker names, not thousands
                self._receipts.clear()
            key = self._receipts[worker] = self._keys.receipt(self.queue, worker)
        return key

    def enqueue_jobs(self, options: Sequence[Any], jobs: Sequence[Any]) -> int:
        """Create the jobs given as id, payload pairs in ``jobs``, all with ``options`` (priority,
        delay_ms, max_attempts, backoff_ms, n_meta, meta pairs: see enqueue_jobs.lua);
        returns how many were new."""
        created: int = self._enqueue(self._enqueue_keys, [*self._enqueue_head, *options, *jobs])
        return created

    def claim_jobs(self, worker: str, lease_ms: int, n: int, start: int) -> list[Any]:
        """Raw claim reply: ``[wait_ms, (id, token, attempt, deadline, payload, meta,
        inputs)*]``; the first ``start`` jobs start now, the others are held."""
        rid = self._claim_id(worker)
        reply: list[Any] = self._claiming(worker, rid, lambda: self._claim(
            [*self._claim_keys, self._receipt(worker)],
            [*self._claim_head, worker, lease_ms, n, *self._claim_tail, start, rid]))
        return reply

    def _claim_id(self, worker: str) -> str:
        """The request id of ``worker``'s next claim: that of its last claim if that one's
        reply was lost (see the module docstring), else a new one."""
        return self._lost.pop(worker, None) or new_request_id()

    def _claiming(self, worker: str, rid: str, call: Callable[[], Any]) -> Any:
        """``call()``; if its reply never came (a connection error past the client's
        retries), ``rid`` goes with ``worker``'s next claim."""
        try:
            return call()
        except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError):
            self._lost[worker] = rid
            raise

    def claim_after_wait(self, wake: str, seconds: float, worker: str, lease_ms: int,
                         n: int, start: int) -> list[Any]:
        """`claim_jobs` run by Redis as soon as a BLPOP on ``wake`` returns (a hint came or
        ``seconds`` passed), sent with it in one write: a woken worker needs no second trip."""
        rid = self._claim_id(worker)
        reply: list[Any] = self._claiming(worker, rid, lambda: self._claim.after(
            ("BLPOP", wake, seconds), [*self._claim_keys, self._receipt(worker)],
            [*self._claim_head, worker, lease_ms, n, *self._claim_tail, start, rid]))
        return reply

    def complete_jobs(self, items: Sequence[tuple[str, str, bytes | None]], worker: str,
                      lease_ms: int, fetch_n: int, start_n: int = 0,
                      start: tuple[str, str] | None = None, receipt: str | None = None,
                      request_id: str | None = None) -> tuple[list[Any], list[Any]]:
        """Complete jobs given as (id, token, result); returns the raw claim reply of the
        ``fetch_n`` next jobs (the first ``start_n`` started now, the rest held) and one raw
        outcome per job (1, 0 or ``[code, detail]``). ``start`` (id, token) is a held lease
        of the caller's that starts now. ``receipt``: whose receipt the claim leaves (default
        ``worker``'s); ``request_id``: the claim's id, chosen by the caller (then a lost reply
        is the caller's to deal with: see `release_claim`)."""
        owner = worker if receipt is None else receipt
        keys = [*self._complete_keys, self._receipt(owner)]
        if request_id is not None:
            was_lost, rid = False, request_id
        else:
            was_lost = fetch_n > 0 and owner in self._lost
            rid = self._claim_id(owner) if fetch_n > 0 else new_request_id()
        args = [*self._complete_head, worker, lease_ms, fetch_n, PROMOTE_LIMIT, start_n,
                *(start or ("", "")), rid]
        prefix = self._prefix  # Keys.job(id) is job_prefix + id; result adds its suffix
        for job_id, token, result in items:
            jk = prefix + job_id
            keys += (jk, jk + JOB_RESULT_SUFFIX)
            if result is None:
                args += (job_id, token, 0, b"")
            else:
                args += (job_id, token, 1, result)
        args += self._run_tail  # logs suffix (retention), then the DAG runs' prefixes, last
        if fetch_n <= 0 or request_id is not None:
            reply, outcomes = self._complete(keys, args)
            return reply, outcomes
        reply, outcomes = self._claiming(owner, rid, lambda: self._complete(keys, args))
        if was_lost and any(type(o) is list for o in outcomes):
            self._lost[owner] = rid  # a refusal: no claim ran, the lost one waits again
        return reply, outcomes

    def release_claim(self, receipt: str, request_id: str, lease_ms: int) -> int:
        """Hand back for free the jobs that the claim ``request_id`` left in ``receipt``'s
        receipt (its caller died before running them), and make that claim, should it arrive
        only now, claim nothing (see release_claim.lua); returns how many went back."""
        qk = self._qk
        keys = [self._receipt(receipt), qk.active, qk.wait, qk.wake, qk.events]
        args = [request_id, lease_ms, self._prefix, self.queue, self._maxlen,
                self._keys.run_prefix]
        released: int = self._scripts["release_claim"](keys, args)
        return released

    def complete_job(self, job_id: str, token: str, result: bytes | None, worker: str,
                     lease_ms: int, fetch_n: int) -> list[Any]:
        """Complete one job (raising on refusal); the reply is a claim reply for the
        ``fetch_n`` next jobs (claimed only when the completion was accepted, all started)."""
        reply, (outcome,) = self.complete_jobs([(job_id, token, result)], worker, lease_ms,
                                               fetch_n, fetch_n)
        check(outcome, "complete_job", job_id)
        return reply

    def fail_job(self, job_id: str, token: str, error: str, retry: bool) -> tuple[str, int]:
        """Record a failed attempt; returns the new status and, when scheduled, its due time."""
        qk = self._qk
        keys = [self._keys.job(job_id), qk.active, qk.scheduled, qk.dead, qk.events]
        args = [job_id, token, error, 1 if retry else 0, self.queue, self._maxlen,
                random.random(), MAX_BACKOFF_MS, *self._run_args]
        status, due = check(self._scripts["fail_job"](keys, args), "fail_job", job_id)
        return status.decode(), int(due)

    def heartbeat_job(self, job_id: str, token: str, lease_ms: int) -> int:
        """Extend the lease; returns the new deadline (ms)."""
        keys = [self._keys.job(job_id), self._qk.active]
        reply = self._scripts["heartbeat_job"](keys, [job_id, token, lease_ms])
        deadline: int = check(reply, "heartbeat_job", job_id)[0]
        return deadline

    def update_progress(self, job_id: str, token: str, progress: float,
                        message: str | None) -> None:
        """Set progress (and message) on the job's meta hash."""
        keys = [self._keys.job(job_id), self._qk.events]
        args = [job_id, token, repr(float(progress)), 0 if message is None else 1,
                message or "", self.queue, self._maxlen]
        check(self._scripts["update_progress"](keys, args), "update_progress", job_id)

    def save_logs(self, job_id: str, attempt: int, text: str) -> None:
        """Store ``text`` as the output of the job's attempt ``attempt`` (replacing it)."""
        keys = [self._keys.job(job_id), self._keys.logs(job_id)]
        check(self._scripts["save_logs"](keys, [attempt, text, self._result_ttl_ms]),
              "save_logs", job_id)

    def reap_expired(self, limit: int) -> int:
        """End up to ``limit`` expired leases (held: released, started: stalled); returns how
        many."""
        qk = self._qk
        keys = [qk.active, qk.wait, qk.dead, qk.events, qk.wake]
        args = [self._prefix, self.queue, self._maxlen, limit, self._keys.run_prefix,
                self._keys.queue_prefix, DEFAULT_MAX_STALLS]
        reaped: int = self._scripts["reap_expired"](keys, args)
        return reaped

    def release_dead(self, worker: str, reason: str, limit: int) -> int:
        """End the leases of ``worker``, known to be gone, among the first ``limit`` entries
        of the active ZSET (see release_dead.lua); returns how many."""
        qk = self._qk
        keys = [qk.active, qk.wait, qk.dead, qk.events, qk.wake]
        args = [self._prefix, self.queue, self._maxlen, limit, self._keys.run_prefix,
                self._keys.queue_prefix, DEFAULT_MAX_STALLS, worker, reason]
        ended: int = self._scripts["release_dead"](keys, args)
        return ended

    def stall_job(self, job_id: str, token: str, reason: str) -> str:
        """Charge the job a stall (its executor died under it); returns its new status."""
        qk = self._qk
        keys = [self._keys.job(job_id), qk.active, qk.wait, qk.dead, qk.events, qk.wake]
        args = [job_id, token, reason, self.queue, self._maxlen, DEFAULT_MAX_STALLS,
                *self._run_args]
        (status,) = check(self._scripts["stall_job"](keys, args), "stall_job", job_id)
        return str(status.decode())

    def start_jobs(self, items: Sequence[tuple[str, str]]) -> Callable[[], int]:
        """Send the start mark of the held leases given as (id, token); returns the function
        that waits for the answer: how many still were held (`LuaScript.send`)."""
        keys = [self._keys.job(job_id) for job_id, _ in items]
        result: Callable[[], int] = self._scripts["start_jobs"].send(
            keys, [token for _, token in items])
        return result

    def cancel_job(self, job_id: str) -> bool:
        """Cancel the job; False when it had already ended."""
        qk = self._qk
        keys = [self._keys.job(job_id), qk.wait, qk.scheduled, qk.active, qk.cancelled, qk.events]
        args = [self._prefix, JOB_PAYLOAD_SUFFIX, JOB_RESULT_SUFFIX, self.queue, self._maxlen,
                job_id, self._retention, self._keys.run_prefix, self._keys.queue_prefix,
                JOB_LOGS_SUFFIX, new_request_id()]
        done, _status = check(self._scripts["cancel_job"](keys, args), "cancel_job", job_id)
        return bool(done)

    def requeue_job(self, job_id: str) -> None:
        """Move a dead job back to the wait ZSET."""
        qk = self._qk
        keys = [self._keys.job(job_id), qk.dead, qk.wait, qk.seq, qk.wake, qk.events]
        check(self._scripts["requeue_job"](
            keys, [job_id, self.queue, self._maxlen, new_request_id()]), "requeue_job", job_id)

    def release_job(self, job_id: str, token: str, held_only: bool = False) -> bool:
        """Hand an active job back to the front of the wait ZSET (see release_job.lua); with
        ``held_only``, only if its lease is held, not started. True when released."""
        qk = self._qk
        keys = [self._keys.job(job_id), qk.active, qk.wait, qk.wake, qk.events]
        args = [job_id, token, self.queue, self._maxlen, self._keys.run_prefix,
                "1" if held_only else "0"]
        (done,) = check(self._scripts["release_job"](keys, args), "release_job", job_id)
        return bool(done)

    def purge_dead(self) -> int:
        """Empty the dead-letter queue, one bounded call at a time; returns how many entries
        it removed. Jobs are deleted with their keys, except tasks of DAG runs, whose keys
        live as long as their run (see purge_dead.lua)."""
        total = 0
        while True:
            n: int = self._scripts["purge_dead"](
                [self._qk.dead],
                [self._prefix, JOB_PAYLOAD_SUFFIX, JOB_RESULT_SUFFIX, _TRIM_LIMIT,
                 JOB_LOGS_SUFFIX])
            total += n
            if n < _TRIM_LIMIT:
                return total
