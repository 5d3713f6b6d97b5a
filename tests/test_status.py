"""Statuses, events and their JSON Schema (`ironforge_nb.status`)."""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import Any

import pytest

from ironforge_nb.status import Event, EventType, JobStatus, RunStatus, json_schema


def _validator() -> Any:
    jsonschema = pytest.importorskip("jsonschema")
    schema = json_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def _stream_entry(event: Event) -> dict[str, Any]:
    """An event as a stream entry would carry it: absent fields left out."""
    return {k: v for k, v in asdict(event).items() if v is not None}


def test_status_values_are_the_stored_strings() -> None:
    """A status is its own value: what goes into Redis and what str() prints."""
    assert JobStatus("queued") is JobStatus.QUEUED
    assert str(JobStatus.ACTIVE) == "active"
    assert f"{RunStatus.SUCCEEDED}" == "succeeded"
    assert JobStatus.COMPLETED == "completed"


def test_terminal_job_statuses() -> None:
    """Exactly completed, failed, cancelled and skipped are terminal job statuses."""
    terminal = {s.value for s in JobStatus if s.terminal}
    assert terminal == {"completed", "failed", "cancelled", "skipped"}


def test_terminal_run_statuses() -> None:
    """Exactly succeeded, failed and cancelled end a run."""
    assert {s.value for s in RunStatus if s.terminal} == {"succeeded", "failed", "cancelled"}


def test_event_from_stream_fields() -> None:
    """A decoded stream entry becomes a typed Event; unknown fields are ignored."""
    event = Event.from_fields(
        "1-0",
        {"type": "progress", "ts": "1700000000000", "job": "j1", "progress": "0.5",
         "attempt": "2", "status": "active", "future_field": "x"},
    )  # fmt: skip
    assert event == Event(
        type=EventType.PROGRESS, ts=1_700_000_000_000, id="1-0", job="j1",
        progress=0.5, attempt=2, status=JobStatus.ACTIVE,
    )  # fmt: skip


def test_event_with_unknown_type_rejected() -> None:
    """An event type outside the enum raises ValueError instead of passing silently."""
    with pytest.raises(ValueError):
        Event.from_fields("1-0", {"type": "exploded", "ts": "1"})


def test_schema_enums_match_the_enums() -> None:
    """The schema lists every status and event type, in the enums' order."""
    defs = json_schema()["$defs"]
    assert defs["JobStatus"]["enum"] == [s.value for s in JobStatus]
    assert defs["RunStatus"]["enum"] == [s.value for s in RunStatus]
    assert defs["EventType"]["enum"] == [s.value for s in EventType]


def test_schema_is_json() -> None:
    """The schema survives a JSON round trip unchanged."""
    schema = json_schema()
    assert json.loads(json.dumps(schema)) == schema


def test_schema_covers_every_event_field() -> None:
    """Every Event field appears in the schema's event properties."""
    props = json_schema()["$defs"]["Event"]["properties"]
    assert set(props) == set(Event.__dataclass_fields__)


def test_schema_accepts_real_events() -> None:
    """Events as the engine writes them validate against the schema."""
    validator = _validator()
    for event in (
        Event(type=EventType.ENQUEUED, ts=1, job="j", queue="default", status=JobStatus.QUEUED),
        Event(type=EventType.PROGRESS, ts=2, job="j", progress=0.25, message="rows"),
        Event(type=EventType.RUN_FINISHED, ts=3, run="r", run_status=RunStatus.FAILED),
    ):
        validator.validate(json.loads(json.dumps(_stream_entry(event))))


@pytest.mark.parametrize(
    "entry",
    [
        {"type": "claimed"},  # no ts
        {"type": "claimed", "ts": 1, "status": "running"},  # a run status as a job status
        {"type": "claimed", "ts": 1, "colour": "red"},  # unknown field
        {"type": "progress", "ts": 1, "progress": 1.5},  # beyond 100 %
    ],
    ids=["missing-ts", "bad-status", "extra-field", "progress-range"],
)
def test_schema_rejects_bad_events(entry: dict[str, Any]) -> None:
    """Malformed events fail validation."""
    assert not _validator().is_valid(entry)


def test_a_cache_hits_entry_expands_into_a_completed_event_per_task() -> None:
    """A run's 'cache_hits' entry reads as one COMPLETED event per line, with the origin run
    in ``cached`` (an empty origin: None); other events are themselves."""
    entry = Event.from_fields("5-0", {"type": "cache_hits", "ts": "7", "run": "r2",
                                      "hits": "r2.0 load default r1\nr2.3 side fast "})
    assert entry.expanded() == [
        Event(EventType.COMPLETED, 7, "5-0", job="r2.0", queue="default",
              status=JobStatus.COMPLETED, run="r2", task="load", cached="r1"),
        Event(EventType.COMPLETED, 7, "5-0", job="r2.3", queue="fast",
              status=JobStatus.COMPLETED, run="r2", task="side", cached=None)]
    plain = Event.from_fields("6-0", {"type": "completed", "ts": "8", "job": "j"})
    assert plain.expanded() == [plain]
    assert "cache_hits" in json_schema()["$defs"]["EventType"]["enum"]


def test_a_task_events_entry_expands_into_the_events_it_stands_for() -> None:
    """A run's 'task_events' entry (one script call's claimed, enqueued and completed events)
    reads as those events in order, each as it reads when written on its own: the entry's
    worker on those with an attempt (even an empty one), none on 'enqueued'."""
    entry = Event.from_fields("9-1", {
        "type": "task_events", "ts": "7", "run": "r", "worker": "w 1",
        "events": "completed r.0 a q completed 1\nenqueued r.2 c[x] q queued \n"
                  "claimed r.2 c[x] q active 2"})
    assert entry.expanded() == [
        Event(EventType.COMPLETED, 7, "9-1", job="r.0", queue="q", status=JobStatus.COMPLETED,
              attempt=1, worker="w 1", run="r", task="a"),
        Event(EventType.ENQUEUED, 7, "9-1", job="r.2", queue="q", status=JobStatus.QUEUED,
              run="r", task="c[x]"),
        Event(EventType.CLAIMED, 7, "9-1", job="r.2", queue="q", status=JobStatus.ACTIVE,
              attempt=2, worker="w 1", run="r", task="c[x]")]
    alone = Event.from_fields("9-1", {"type": "completed", "ts": "7", "run": "r", "job": "r.0",
                                      "task": "a", "queue": "q", "status": "completed",
                                      "attempt": "1", "worker": "w 1"})
    assert entry.expanded()[0] == alone
    empty = Event.from_fields("9-2", {"type": "task_events", "ts": "7", "run": "r",
                                      "worker": "", "events": "completed r.0 a q completed 1"})
    assert empty.expanded()[0].worker == ""
    assert "task_events" in json_schema()["$defs"]["EventType"]["enum"]


def test_a_job_events_entry_expands_into_the_events_it_stands_for() -> None:
    """A queue's 'job_events' entry reads as the events it stands for, in order, each as it
    reads when written on its own (the entry's queue on all, its worker on those with an
    attempt)."""
    entry = Event.from_fields("4-0", {"type": "job_events", "ts": "3", "queue": "q",
                                      "worker": "w", "events": "enqueued j1 queued \n"
                                                               "claimed j1 active 1"})
    alone = [Event.from_fields("4-0", {"type": "enqueued", "ts": "3", "job": "j1",
                                       "queue": "q", "status": "queued"}),
             Event.from_fields("4-0", {"type": "claimed", "ts": "3", "job": "j1", "queue": "q",
                                       "status": "active", "attempt": "1", "worker": "w"})]
    assert entry.expanded() == alone
    assert "job_events" in json_schema()["$defs"]["EventType"]["enum"]
