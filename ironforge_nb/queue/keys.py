"""Every Redis key name of IronForge NB, and nowhere else.

All keys of a namespace start with ``{<namespace>}:``. The braces are a Redis Cluster hash tag: a
whole namespace lives in one slot, so any Lua script may touch any key of its namespace, and many
namespaces spread over a cluster. Lua scripts that derive per-job keys (children released by a
completion, jobs trimmed from retention) receive `Keys.job_prefix` as an ARGV and append the job
id and the suffixes defined here (`JOB_PAYLOAD_SUFFIX`, `JOB_RESULT_SUFFIX`, `JOB_LOGS_SUFFIX`,
`JOB_BORROWERS_SUFFIX`; the prelude names them ``JobKey.X``, `scripting.constants`).
"""

from __future__ import annotations

from dataclasses import dataclass

from ironforge_nb.names import validate_name

__all__ = ["HOME_MARKER", "JOB_BORROWERS_SUFFIX", "JOB_LOGS_SUFFIX", "JOB_PAYLOAD_SUFFIX",
           "JOB_RESULT_SUFFIX", "RUNS", "RUNS_ENDED", "RUNS_WALKING", "WEBHOOKS", "Keys",
           "QueueKeys", "RunKeys", "WebhookKeys"]

JOB_PAYLOAD_SUFFIX = ":payload"
JOB_RESULT_SUFFIX = ":result"
JOB_LOGS_SUFFIX = ":logs"
# STRING "<job>,<job>,...,": the cache hits of other runs that read this job's result instead of
# a copy of their own (submit_run.lua); the job's deletion hands the result to the first of them
JOB_BORROWERS_SUFFIX = ":borrowers"
# STRING holding the id of the local home whose server this is (ironforge_nb.local.home): the
# one key outside every namespace, on the home's own server only
HOME_MARKER = "{ironforge}:home"
# Namespace keys that the run helpers (lua/run_helpers.lua) reach from `Keys.run_prefix`
# (``{ns}:run:``) minus its ``run:`` tail: every script that ends a task of a run gets that
# prefix, and these keys too, without one more ARGV each.
RUNS = "runs"
RUNS_ENDED = "runs:ended"
RUNS_WALKING = "runs:walking"
WEBHOOKS = "webhooks:"  # the webhook keys' prefix after {ns}: (run_helpers.lua derives it)


@dataclass(frozen=True)
class QueueKeys:
    """Keys of one queue."""

    wait: str  # ZSET job id -> priority/FIFO score
    scheduled: str  # ZSET job id -> due time (ms)
    active: str  # ZSET job id -> lease deadline (ms)
    dead: str  # ZSET job id -> time it failed for good (ms)
    completed: str  # ZSET job id -> time it completed (ms), bounded retention
    wake: str  # LIST idle workers block on (a hint only)
    events: str  # STREAM of transitions, capped
    seq: str  # STRING counter for FIFO order within a priority
    cancelled: str = ""  # ZSET job id -> time it was cancelled (ms), bounded retention


@dataclass(frozen=True)
class RunKeys:
    """Keys of one pipeline run."""

    meta: str  # HASH name, status, counters by status, times
    tasks: str  # HASH task id -> job id
    remaining: str  # HASH task id -> parents not yet completed
    children: str  # HASH task id -> child task ids (comma-separated)
    events: str  # STREAM of the run's transitions
    codes: str  # STRING the code keys its tasks use (comma-separated): released on deletion
    store: str = ""  # STRING root of the result store its big results went to (orchestrator.store)
    walk: str = ""  # HASH the bounded walk in progress over its tasks (cancel or retry)
    skips: str = ""  # LIST "<offset> <task>": tasks whose waiting descendants are to be skipped
    ready: str = ""  # LIST tasks a retry walk has reset and will queue (its last phase)
    # STRING "<job> <hit>\n" lines: the cache hits of later runs that read this run's jobs'
    # results (submit_run.lua, one APPEND per submit); filed under each job (`Keys.borrowers`)
    # when the run is deleted (delete_runs.lua), before its jobs are
    borrowers: str = ""
    # HASH a staged submit in progress (submit_run.lua): its token, chunks done, the queues of
    # its roots; the roots wait in "roots:<queue>" ZSETs beside it, scored for their queue
    staged: str = ""


@dataclass(frozen=True)
class WebhookKeys:
    """Keys of a namespace's webhooks. Lua scripts derive them (and ``delivery:<id>``) from
    `Keys.webhook_prefix`, passed as an ARGV, by appending the field names below."""

    routes: str  # HASH endpoint id -> its filter (JSON), enabled endpoints only: the
    #              transition scripts read it to decide which endpoints get an event
    outbox: str  # ZSET delivery id -> next attempt (ms), or lease deadline while being sent
    delivered: str  # ZSET delivery id -> time delivered (ms), bounded retention
    dead: str  # ZSET delivery id -> time it was given up (ms), bounded retention
    seq: str  # STRING event counter (the number in each ``webhook-id``)


@dataclass(frozen=True)
class Keys:
    """Builds key names for one namespace (validated once, here)."""

    namespace: str

    def __post_init__(self) -> None:
        validate_name(self.namespace, "namespace")

    @property
    def prefix(self) -> str:
        """``{ns}:``, the start of every key of this namespace."""
        return "{" + self.namespace + "}:"

    @property
    def job_prefix(self) -> str:
        """``{ns}:job:``; a job's meta hash is this plus its id."""
        return self.prefix + "job:"

    def job(self, job_id: str) -> str:
        """HASH of a job's metadata."""
        return self.job_prefix + job_id

    def payload(self, job_id: str) -> str:
        """STRING holding a job's payload, written once."""
        return self.job_prefix + job_id + JOB_PAYLOAD_SUFFIX

    def result(self, job_id: str) -> str:
        """STRING holding a job's result, with a TTL."""
        return self.job_prefix + job_id + JOB_RESULT_SUFFIX

    def borrowers(self, job_id: str) -> str:
        """STRING the jobs of other runs (cache hits) reading this job's result, comma-ended."""
        return self.job_prefix + job_id + JOB_BORROWERS_SUFFIX

    def logs(self, job_id: str) -> str:
        """HASH attempt number -> the tail of what that attempt printed and logged, with a TTL."""
        return self.job_prefix + job_id + JOB_LOGS_SUFFIX

    def queue(self, name: str) -> QueueKeys:
        """Keys of queue ``name`` (validated)."""
        q = self.prefix + "q:" + validate_name(name, "queue") + ":"
        return QueueKeys(
            wait=q + "wait",
            scheduled=q + "scheduled",
            active=q + "active",
            dead=q + "dead",
            completed=q + "completed",
            wake=q + "wake",
            events=q + "events",
            seq=q + "seq",
            cancelled=q + "cancelled",
        )

    def receipt(self, queue: str, worker: str) -> str:
        """STRING: the request id of ``worker``'s last claim in ``queue`` and the jobs and
        tokens it claimed, so that a resent claim answers with them (claim_helpers.lua);
        it expires with the lease. ``worker`` is any name (a value, not validated here)."""
        return self.prefix + "q:" + validate_name(queue, "queue") + ":receipt:" + worker

    @property
    def queue_prefix(self) -> str:
        """``{ns}:q:``; run scripts append ``<queue>:<suffix>`` (field names of `QueueKeys`) to
        reach the queue of a task released by a completion (see lua/run_helpers.lua)."""
        return self.prefix + "q:"

    @property
    def queues(self) -> str:
        """SET of the queue names used in this namespace."""
        return self.prefix + "queues"

    def run(self, run_id: str) -> RunKeys:
        """Keys of run ``run_id`` (validated)."""
        r = self.prefix + "run:" + validate_name(run_id, "run") + ":"
        return RunKeys(
            meta=r + "meta",
            tasks=r + "tasks",
            remaining=r + "remaining",
            children=r + "children",
            events=r + "events",
            codes=r + "codes",
            store=r + "store",
            walk=r + "walk",
            skips=r + "skips",
            ready=r + "ready",
            borrowers=r + "borrowers",
            staged=r + "staged",
        )

    @property
    def run_prefix(self) -> str:
        """``{ns}:run:``; scripts append ``<run id>:<suffix>`` (suffixes of `RunKeys`)."""
        return self.prefix + "run:"

    @property
    def runs(self) -> str:
        """ZSET run id -> creation time (ms), for listing recent runs."""
        return self.prefix + RUNS

    @property
    def runs_ended(self) -> str:
        """ZSET run id -> creation time (ms) of the runs that have ended: the retention of
        delete_runs.lua deletes the oldest beyond `RedisConfig.run_retention` from it."""
        return self.prefix + RUNS_ENDED

    @property
    def runs_walking(self) -> str:
        """ZSET run id -> time (ms) its bounded walk began: runs whose cancel, retry or skip
        of descendants is still to be finished, in steps, by the next caller or a reaper."""
        return self.prefix + RUNS_WALKING

    @property
    def runs_staging(self) -> str:
        """ZSET run id -> time (ms) after which its staged submit, if its client went quiet,
        is swept by delete_runs.lua (submit_run.lua, the 'stage' phase)."""
        return self.prefix + "runs:staging"

    @property
    def runs_deleting(self) -> str:
        """HASH run id -> HSCAN cursor of its tasks: runs being deleted in bounded steps."""
        return self.prefix + "runs:deleting"

    def code(self, digest: str) -> str:
        """STRING holding a signed pickled function, stored once per content hash."""
        return self.prefix + "code:" + digest

    @property
    def code_refs(self) -> str:
        """HASH code key -> how many runs use it: the last run's deletion deletes the code."""
        return self.prefix + "code-refs"

    @property
    def cache_entries(self) -> str:
        """HASH cache key -> its entry "<job> <origin> <created> <expires> <task> <pipeline>":
        the job holding the result, the run that computed it, when (ms), until when it may be
        reused (ms; 0: as long as the job's result lives), the task and its pipeline (see
        orchestrator.cache). Entries were
        one STRING each under ``{ns}:cache-entry:`` or a HASH each under ``{ns}:cache:``
        before: those are never read, and expire."""
        return self.prefix + "cache-entries"

    @property
    def result_pins(self) -> str:
        """HASH result file URL -> how many jobs of OTHER runs hold a reference to it (a cache
        hit's that was handed the result when the run that wrote the file was deleted):
        the owner run's deletion keeps a pinned file; the last holder's removes it."""
        return self.prefix + "result-pins"

    @property
    def cache_index(self) -> str:
        """ZSET cache key -> expiry time (ms): lists the entries (expired ones are pruned)."""
        return self.prefix + "cache-index"

    def lock(self, name: str) -> str:
        """STRING holding a lock owner's token."""
        return self.prefix + "lock:" + validate_name(name, "lock")

    @property
    def workers(self) -> str:
        """HASH worker id -> last heartbeat info (JSON)."""
        return self.prefix + "workers"

    @property
    def webhooks(self) -> str:
        """HASH endpoint id -> its settings, secrets included (JSON)."""
        return self.prefix + "webhooks"

    @property
    def webhook_prefix(self) -> str:
        """``{ns}:webhooks:``; scripts append the field names of `WebhookKeys`, or
        ``delivery:<id>``."""
        return self.prefix + WEBHOOKS

    @property
    def hooks(self) -> WebhookKeys:
        """Keys of the webhook outbox (see `WebhookKeys`)."""
        p = self.webhook_prefix
        return WebhookKeys(routes=p + "routes", outbox=p + "outbox", delivered=p + "delivered",
                           dead=p + "dead", seq=p + "seq")

    @property
    def webhook_outbox(self) -> str:
        """ZSET delivery id -> next attempt time (ms)."""
        return self.hooks.outbox

    @property
    def webhook_delivery_prefix(self) -> str:
        """``{ns}:webhooks:delivery:``; a delivery's hash is this plus its id."""
        return self.webhook_prefix + "delivery:"

    def webhook_delivery(self, delivery_id: str) -> str:
        """HASH of one webhook delivery (an event for one endpoint, with its attempts)."""
        return self.webhook_delivery_prefix + delivery_id
