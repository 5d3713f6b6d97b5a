"""Job and run statuses and event shapes: the single source of truth.

The enum values are the exact strings stored in Redis (meta hashes, run hashes, event streams)
and read by every view. Other front ends get the same definitions through `json_schema()`
(``ironforge schema`` prints it), so they cannot drift from the engine.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from enum import StrEnum
from typing import Any

__all__ = ["DeliveryStatus", "Event", "EventType", "JobStatus", "RunStatus", "WebhookEvent",
           "json_schema"]


class JobStatus(StrEnum):
    """Where a job is in its life cycle (docs/design.md, "The life of a job")."""

    WAITING = "waiting"  # parents not done yet
    SCHEDULED = "scheduled"  # delayed, or backing off before a retry
    QUEUED = "queued"  # ready to be claimed
    ACTIVE = "active"  # claimed by a worker, under a lease
    COMPLETED = "completed"
    FAILED = "failed"  # attempts (or stalls) exhausted: in the dead-letter queue
    CANCELLED = "cancelled"
    SKIPPED = "skipped"  # an ancestor failed or was cancelled

    @property
    def terminal(self) -> bool:
        """True for statuses a job never leaves on its own."""
        return self in _TERMINAL_JOB


_TERMINAL_JOB = frozenset(
    {JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELLED, JobStatus.SKIPPED}
)


class RunStatus(StrEnum):
    """Status of a whole pipeline run. A run is running from the script that submits it (which
    creates the run and queues its first tasks at once) until it ends: there is no status
    before that."""

    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def terminal(self) -> bool:
        """True once the run has ended."""
        return self in (RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.CANCELLED)


class EventType(StrEnum):
    """What happened; the ``type`` field of every event in a queue or run stream."""

    ENQUEUED = "enqueued"  # -> queued
    WAITING = "waiting"  # created, waiting for parents
    SCHEDULED = "scheduled"  # -> scheduled (delay)
    CLAIMED = "claimed"  # -> active
    PROGRESS = "progress"  # progress/message changed
    COMPLETED = "completed"
    RETRYING = "retrying"  # attempt failed, -> scheduled for a retry
    STALLED = "stalled"  # its worker or executor died while it ran: -> queued (no attempt
    #                      charged), or -> failed once it stalled more than max_stalls times
    LEASE_EXPIRED = "lease_expired"  # written by older versions only (a reaped lease was then
    #                                  charged as a failed attempt); now a stall or a release
    FAILED = "failed"  # -> dead-letter queue
    REQUEUED = "requeued"  # taken out of the dead-letter queue by hand
    RELEASED = "released"  # handed back (a stopping worker, a prefetched job never started):
    #                        queued again, nothing charged
    CANCELLED = "cancelled"
    SKIPPED = "skipped"
    RUN_SUBMITTED = "run_submitted"
    RUN_FINISHED = "run_finished"
    CACHE_HITS = "cache_hits"  # in a run's stream only: up to 1000 of its tasks completed
    #                            from the cache by its submit (field `hits`); `read_events`
    #                            hands each out as a COMPLETED event with `cached` (`expanded`)
    TASK_EVENTS = "task_events"  # in a run's stream only: the claimed, enqueued and completed
    #                              events of its tasks that one script call wrote (field
    #                              `events`, up to 100); `read_events` hands each out as the
    #                              event it stands for (`expanded`)
    JOB_EVENTS = "job_events"  # in a queue's stream only: the same for the events of its
    #                            jobs (field `events`, up to 100)


class WebhookEvent(StrEnum):
    """The ``type`` of a webhook payload (the events an endpoint can subscribe to)."""

    JOB_COMPLETED = "job.completed"
    JOB_FAILED = "job.failed"  # dead-lettered: attempts used up
    RUN_SUCCEEDED = "run.succeeded"
    RUN_FAILED = "run.failed"
    RUN_CANCELLED = "run.cancelled"


class DeliveryStatus(StrEnum):
    """Where a webhook delivery is (the ``status`` field of its hash, webhooks/outbox.py)."""

    PENDING = "pending"  # in the outbox, due at its score
    SENDING = "sending"  # claimed by a dispatcher, under a lease
    DELIVERED = "delivered"
    DEAD = "dead"  # given up (retries used up, or its endpoint is gone or disabled)


@dataclass(frozen=True)
class Event:
    """One entry of a queue's or run's event stream (field names are the stream's fields).

    ``ts`` is Redis server time in milliseconds. Optional fields are absent from the stream entry
    when they do not apply.
    """

    type: EventType
    ts: int
    id: str = ""  # stream entry id
    job: str | None = None
    queue: str | None = None
    status: JobStatus | None = None
    attempt: int | None = None
    progress: float | None = None
    message: str | None = None
    error: str | None = None
    worker: str | None = None
    run: str | None = None
    task: str | None = None
    run_status: RunStatus | None = None
    stalls: int | None = None  # on 'stalled' events: the job's stalls so far
    cached: str | None = None  # a task completed from the cache: the run that computed it
    hits: str | None = None  # on a raw CACHE_HITS entry: "<job> <task> <queue> <origin run>" lines
    events: str | None = None  # on a raw TASK_EVENTS entry: "<type> <job> <task> <queue>
    #   <status> <attempt>" lines, on a raw JOB_EVENTS entry "<type> <job> <status> <attempt>"
    #   lines (`worker` applies to those with an attempt)

    @classmethod
    def from_fields(cls, entry_id: str, data: Mapping[str, str]) -> Event:
        """Build an event from a decoded stream entry; unknown fields are ignored."""
        kw: dict[str, Any] = {"id": entry_id, "type": EventType(data["type"]),
                              "ts": int(data.get("ts", 0))}
        for name in ("job", "queue", "message", "error", "worker", "run", "task", "cached",
                     "hits", "events"):
            if name in data:
                kw[name] = data[name]
        if "status" in data:
            kw["status"] = JobStatus(data["status"])
        if "run_status" in data:
            kw["run_status"] = RunStatus(data["run_status"])
        if "attempt" in data:
            kw["attempt"] = int(data["attempt"])
        if "stalls" in data:
            kw["stalls"] = int(data["stalls"])
        if "progress" in data:
            kw["progress"] = float(data["progress"])
        return cls(**kw)

    def expanded(self) -> list[Event]:
        """This event as readers see it: a CACHE_HITS entry (a submit's cache hits, one stream
        entry for up to 1000 tasks) becomes one COMPLETED event per task it lists, with the
        run that computed the result in ``cached`` (the stream entry's id on each); any
        other event is itself. A TASK_EVENTS entry (the claimed, enqueued and completed events
        of a run's tasks that one script call wrote) or a JOB_EVENTS entry (the same in a
        queue's stream) becomes those events, in order, with the entry's id: each exactly as
        it reads when written on its own."""
        if self.type is EventType.TASK_EVENTS:
            return self._tasks()
        if self.type is EventType.JOB_EVENTS:
            return self._jobs()
        if self.type is not EventType.CACHE_HITS:
            return [self]
        out = []
        for line in (self.hits or "").split("\n"):
            job, task, queue, origin = [*line.split(" ", 3), "", "", ""][:4]
            out.append(Event(EventType.COMPLETED, self.ts, self.id, job=job, queue=queue,
                             status=JobStatus.COMPLETED, run=self.run, task=task,
                             cached=origin or None))
        return out


    def _tasks(self) -> list[Event]:
        out = []
        for line in (self.events or "").split("\n"):
            etype, job, task, queue, status, attempt = line.split(" ", 5)
            if attempt:
                out.append(Event(EventType(etype), self.ts, self.id, job=job, queue=queue,
                                 status=JobStatus(status), attempt=int(attempt),
                                 worker=self.worker, run=self.run, task=task))
            else:
                out.append(Event(EventType(etype), self.ts, self.id, job=job, queue=queue,
                                 status=JobStatus(status), run=self.run, task=task))
        return out


    def _jobs(self) -> list[Event]:
        out = []
        for line in (self.events or "").split("\n"):
            etype, job, status, attempt = line.split(" ", 3)
            if attempt:
                out.append(Event(EventType(etype), self.ts, self.id, job=job, queue=self.queue,
                                 status=JobStatus(status), attempt=int(attempt),
                                 worker=self.worker))
            else:
                out.append(Event(EventType(etype), self.ts, self.id, job=job, queue=self.queue,
                                 status=JobStatus(status)))
        return out


_FIELD_TYPES: dict[str, dict[str, Any]] = {
    "type": {"$ref": "#/$defs/EventType"},
    "ts": {"type": "integer", "description": "Redis server time, ms since the epoch"},
    "id": {"type": "string", "description": "stream entry id"},
    "status": {"$ref": "#/$defs/JobStatus"},
    "run_status": {"$ref": "#/$defs/RunStatus"},
    "attempt": {"type": "integer", "minimum": 0},
    "stalls": {"type": "integer", "minimum": 0},
    "progress": {"type": "number", "minimum": 0, "maximum": 1},
    "hits": {"type": "string", "description": "on 'cache_hits' entries: one line per task "
             "completed from the cache, '<job> <task> <queue> <origin run>'"},
    "events": {"type": "string", "description": "on 'task_events' entries: one line per claimed, "
               "enqueued or completed event of a run's task, '<type> <job> <task> <queue> "
               "<status> <attempt>' (attempt empty for 'enqueued'; the entry's worker is that "
               "of the events with an attempt); on 'job_events' entries (a queue's "
               "stream) '<type> <job> <status> <attempt>'"},
}


def json_schema() -> dict[str, Any]:
    """JSON Schema (2020-12) of the statuses and the event shape, for other front ends."""
    event_props = {f.name: _FIELD_TYPES.get(f.name, {"type": "string"}) for f in fields(Event)}
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "https://ironforge-nb/schema/events.json",
        "title": "IronForge NB statuses and events",
        "$defs": {
            "JobStatus": {"type": "string", "enum": [s.value for s in JobStatus]},
            "RunStatus": {"type": "string", "enum": [s.value for s in RunStatus]},
            "EventType": {"type": "string", "enum": [s.value for s in EventType]},
            "WebhookEvent": {"type": "string", "enum": [s.value for s in WebhookEvent]},
            "Event": {
                "type": "object",
                "properties": event_props,
                "required": ["type", "ts"],
                "additionalProperties": False,
            },
        },
        "$ref": "#/$defs/Event",
    }
