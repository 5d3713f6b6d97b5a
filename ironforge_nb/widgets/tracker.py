"""The monitor's data loop: what a run looks like now, kept up to date from its event stream.

Plain data, no widgets (the drawing half reads it). `RunTracker.load` reads the whole run once
(its tasks, their job hashes, the DAG); then each `RunTracker.poll` costs two round trips:
(1) the run's counters (one HMGET) and its events since the last one seen (one XRANGE), and
(2) the job hashes of the tasks those events name that have a row on screen, plus the
progress of the active tasks on screen (at most every `PROGRESS_EVERY` seconds). So a poll's
Redis work grows with the events since the last poll, never with the size of the run. Two
checks keep the picture exact: if the stream was trimmed past the last event seen, or if the
counts built from events disagree with the run's counters once it has ended, the run is read
whole again. A poll never raises for a lost connection: it records it in `lost` and the next
poll tries again.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ironforge_nb.orchestrator.run import run_dag
from ironforge_nb.orchestrator.tasks import TASK_FIELDS, TaskState, read_states
from ironforge_nb.orchestrator.waiting import COUNTER_FIELDS, counters
from ironforge_nb.status import JobStatus, RunStatus

if TYPE_CHECKING:
    from ironforge_nb.dag.graph import DAG
    from ironforge_nb.orchestrator.run import Run

__all__ = ["PROGRESS_EVERY", "Group", "RunTracker", "TaskRecord"]

SMALL_RUN = 60  # a run of at most this many tasks gets one row per task
SINGLE_ROWS = 30  # in a bigger run, tasks outside maps keep rows of their own up to this many
LEVEL_GROUPS = 10  # ... beyond that they are grouped by level, in at most this many groups
TASK_ROWS = 20  # rows of a big run's tasks that need attention: failed, active, retrying
PROGRESS_EVERY = 0.25  # seconds between two reads of the active tasks' progress, at least
EVENTS_PER_POLL = 5000  # stream entries read per poll; a poll that gets this many is `behind`
_HOT = (JobStatus.FAILED.value, JobStatus.ACTIVE.value, JobStatus.SCHEDULED.value)
_ENDED = ("completed", "failed", "skipped", "cancelled")


@dataclass
class TaskRecord:
    """What the monitor knows of one task: its status (from events) and, for tasks with a row,
    the `TaskState` last read from its job hash."""

    name: str
    job: str
    status: str
    group: int | None = None  # index in `RunTracker.groups`, None: a row of its own
    state: TaskState | None = None


@dataclass
class Group:
    """An aggregated row: a map's members, or tasks of consecutive levels in a big run."""

    title: str
    size: int = 0
    counts: Counter[str] = field(default_factory=Counter)


class RunTracker:
    """Follows one run; `load` once, then `poll` as often as wanted (thread-safe)."""

    def __init__(self, run: Run) -> None:
        self.run = run
        self.info: dict[str, Any] = {}
        self.tasks: dict[str, TaskRecord] = {}
        self.groups: list[Group] = []
        self.counts: Counter[str] = Counter()
        self.dag: DAG[str] | None = None
        self.big = False
        self.version = 0  # bumped at every status change (the graph redraws on a change)
        self.changed: set[str] = set()  # tasks whose row needs redrawing; the view empties it
        self.behind = False  # the last poll did not reach the end of the stream
        self.gone = False  # the run was deleted while followed
        self.lost: str | None = None  # why the last poll failed (connection), None if it worked
        self.polls = 0
        self._hot: dict[str, dict[str, None]] = {s: {} for s in _HOT}  # insertion-ordered sets
        self._own: list[str] = []  # big runs: the tasks that keep a row of their own
        self._cursor = b"0-0"
        self._progress_read = 0.0
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ reading

    def load(self) -> None:
        """Read the whole run: counters, tasks, job hashes, DAG (`RunNotFoundError` if it does
        not exist). Also what a poll falls back on when events were lost."""
        run = self.run
        keys = run.config.keys.run(run.id)
        client = run.config.client()
        pipe = client.pipeline(transaction=False)  # the cursor first: no event is missed
        pipe.xrevrange(keys.events, "+", "-", count=1)
        pipe.hmget(keys.meta, *COUNTER_FIELDS)
        pipe.hgetall(keys.children)
        last, meta, children = pipe.execute()
        if meta[1] is None:
            raise run._not_found()
        pairs, maps = run.job_ids(), run._maps()
        states = read_states(run.config, pairs)
        self.dag = run_dag(pairs, children, maps)
        self._reset(pairs, states, maps)
        self.info = counters(meta)
        self._cursor = last[0][0] if last else b"0-0"

    def _reset(self, pairs: list[tuple[str, str]], states: list[TaskState | None],
               maps: dict[str, Any]) -> None:
        self.big = len(pairs) > SMALL_RUN
        self.tasks = {name: TaskRecord(name, jid, st.status.value if st else "waiting",
                                       state=st)
                      for (name, jid), st in zip(pairs, states, strict=True)}
        self.groups = []
        if self.big:
            self._group(maps)
        self._own = [r.name for r in self.tasks.values() if r.group is None]
        self.counts = Counter()
        self._hot = {s: {} for s in _HOT}
        for record in self.tasks.values():
            self._count(record, record.status, +1)
        self.changed = set(self.tasks)
        self.version += 1

    def _group(self, maps: dict[str, Any]) -> None:
        """Big runs: one group per map; tasks outside maps by level if they are many."""
        for name, (members, _keys) in maps.items():
            for member in members:
                self.tasks[member].group = len(self.groups)
            self.groups.append(Group(f"{name}[*]", len(members)))
        singles = [r for r in self.tasks.values() if r.group is None]
        if len(singles) <= SINGLE_ROWS or self.dag is None:
            return
        levels = self.dag.levels()
        depth = max(levels[r.name] for r in singles) + 1
        width = -(-depth // LEVEL_GROUPS)
        first = len(self.groups)
        for low in range(0, depth, width):
            high = min(depth, low + width) - 1
            self.groups.append(Group(f"level {low}" if low == high else f"levels {low}-{high}"))
        for record in singles:
            record.group = first + levels[record.name] // width
            self.groups[record.group].size += 1

    def poll(self) -> None:
        """One step: read what changed since the last poll (see the module docstring). A lost
        connection is recorded in `lost`, not raised."""
        import redis

        with self._lock:
            try:
                self._poll()
            except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError) as exc:
                self.lost = f"connection lost, retrying ({type(exc).__name__})"
            else:
                self.lost = None
            self.polls += 1

    def _poll(self) -> None:
        run = self.run
        keys = run.config.keys.run(run.id)
        pipe = run.config.client().pipeline(transaction=False)
        pipe.hmget(keys.meta, *COUNTER_FIELDS)  # counters first: events then reach as far
        start = "-" if self._cursor == b"0-0" else self._cursor
        pipe.xrange(keys.events, start, "+", count=EVENTS_PER_POLL + 1)
        meta, entries = pipe.execute()
        if meta[1] is None:
            self.gone = True
            return
        self.info = counters(meta)
        if self._cursor != b"0-0":
            if not entries or entries[0][0] != self._cursor:  # trimmed past our cursor
                self.load()
                return
            entries = entries[1:]
        self.behind = len(entries) >= EVENTS_PER_POLL
        named = self._apply(entries)
        self._read_details(named)
        if self.ended and not self.behind and not self._agrees():
            self.load()

    def _apply(self, entries: list[Any]) -> dict[str, None]:
        """Apply events in order; returns the tasks they name (ordered, no repeats)."""
        named: dict[str, None] = {}
        for eid, fields in entries:
            self._cursor = eid
            task = fields.get(b"task")
            record = self.tasks.get(task.decode()) if task else None
            if record is None:
                continue
            status = fields.get(b"status")
            if status is not None:
                self._set_status(record, status.decode())
            named[record.name] = None
        return named

    def _read_details(self, named: dict[str, None]) -> None:
        """Read the job hashes of the named tasks with a row (and the progress of the active
        ones on screen, when due), one pipelined round trip."""
        wanted = [n for n in named if self._has_row(self.tasks[n])]
        now = time.monotonic()
        active = [n for n in self.shown_active() if n not in named]
        if now - self._progress_read < PROGRESS_EVERY:
            active = []
        if not wanted and not active:
            return
        if active:
            self._progress_read = now
        jobs = self.run.config.keys
        pipe = self.run.config.client().pipeline(transaction=False)
        for name in (*wanted, *active):
            pipe.hmget(jobs.job(self.tasks[name].job), *TASK_FIELDS)
        now_ms = time.time() * 1000
        for name, values in zip((*wanted, *active), pipe.execute(), strict=True):
            if values[0] is None:
                continue
            record = self.tasks[name]
            before = record.state
            record.state = TaskState.from_fields(name, record.job, values, now_ms)
            self._set_status(record, record.state.status.value)
            if before is None or before != record.state:
                self.changed.add(name)

    # ------------------------------------------------------------------ bookkeeping

    def _set_status(self, record: TaskRecord, status: str) -> None:
        if status == record.status:
            return
        self._count(record, record.status, -1)
        record.status = status
        self._count(record, status, +1)
        self.changed.add(record.name)
        self.version += 1

    def _count(self, record: TaskRecord, status: str, sign: int) -> None:
        self.counts[status] += sign
        if not self.counts[status]:
            del self.counts[status]
        if record.group is not None:
            counts = self.groups[record.group].counts
            counts[status] += sign
            if not counts[status]:
                del counts[status]
        for hot, members in self._hot.items():
            if hot == status and sign > 0:
                members[record.name] = None
            elif hot == status:
                members.pop(record.name, None)

    def _agrees(self) -> bool:
        """Whether the counts built from events match the run's own counters."""
        return all(self.counts.get(s, 0) == self.info.get(s, 0) for s in _ENDED)

    def _has_row(self, record: TaskRecord) -> bool:
        return not self.big or record.group is None or record.status in _HOT

    # ------------------------------------------------------------------ what to show

    @property
    def status(self) -> str:
        """The run's status as last read."""
        return str(self.info.get("status", ""))

    @property
    def ended(self) -> bool:
        """The run has ended (as last read)."""
        return bool(self.status) and RunStatus(self.status).terminal

    def rows(self) -> tuple[list[str], int]:
        """The tasks with a row of their own, in order, and how many more would need one
        (big runs show at most `TASK_ROWS` of their failed, active and retrying tasks)."""
        if not self.big:
            return list(self.tasks), 0
        own = self._own
        hot = [n for s in _HOT for n in self._hot[s] if self.tasks[n].group is not None]
        return [*own, *hot[:TASK_ROWS]], max(0, len(hot) - TASK_ROWS)

    def shown_active(self) -> list[str]:
        """Active tasks that have a row on screen (their progress is read while they run)."""
        rows, _ = self.rows()
        return [n for n in rows if self.tasks[n].status == JobStatus.ACTIVE.value]

    def failed(self) -> list[str]:
        """The failed tasks, in the order they failed."""
        return list(self._hot[JobStatus.FAILED.value])

    def statuses(self) -> dict[str, str]:
        """Every task's status (for the graph)."""
        return {name: record.status for name, record in self.tasks.items()}
