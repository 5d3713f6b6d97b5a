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

import itertools
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ironforge_nb.orchestrator.drawing import run_dag
from ironforge_nb.orchestrator.run_transitions import RunTransitions
from ironforge_nb.orchestrator.tasks import TASK_FIELDS, TaskState, read_states, read_task_states
from ironforge_nb.orchestrator.waiting import COUNTER_FIELDS, counters
from ironforge_nb.status import EventType, JobStatus, RunStatus

if TYPE_CHECKING:
    from ironforge_nb.dag.graph import DAG
    from ironforge_nb.orchestrator.run import Run

__all__ = ["PROGRESS_EVERY", "Group", "RunTracker", "TaskRecord"]

SMALL_RUN = 60  # a run of at most this many tasks gets one row per task
SINGLE_ROWS = 30  # in a bigger run, tasks outside maps keep rows of their own up to this many
LEVEL_GROUPS = 10  # ... beyond that they are grouped by level, in at most this many groups
MAP_GROUPS = 30  # aggregated rows for maps, at most (the smallest maps share the last one)
TASK_ROWS = 20  # rows of a big run's tasks that need attention: failed, active, retrying
PROGRESS_EVERY = 0.25  # seconds between two reads of the active tasks' progress, at least
EVENTS_PER_POLL = 2000  # stream entries read per poll at most (a few ms of parsing); a poll
# that gets this many is `behind`: the rest is read by the next ones (the kernel loop steps
# again at once), so a poll's cost is bounded whatever the backlog
_HOT = (JobStatus.FAILED.value, JobStatus.ACTIVE.value, JobStatus.SCHEDULED.value)
_ENDED = ("completed", "failed", "skipped", "cancelled")
_HITS, _COMPLETED = EventType.CACHE_HITS.value.encode(), JobStatus.COMPLETED.value.encode()
_TASKS = EventType.TASK_EVENTS.value.encode()


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
        self.last_read = 0  # events the last poll read
        self.gone = False  # the run was deleted while followed
        self.lost: str | None = None  # why the last poll failed (connection), None if it worked
        self.polls = 0
        self.resyncs = 0  # full rereads of the statuses after lost events
        self._hot: dict[str, dict[str, None]] = {s: {} for s in _HOT}  # insertion-ordered sets
        self._own: list[str] = []  # big runs: the tasks that keep a row of their own
        self._cursor = b"0-0"
        self._progress_read = 0.0
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ reading

    def load(self) -> DAG[str]:
        """Read the whole run (`RunNotFoundError` if it does not exist): counters, tasks and
        their statuses (a big run's job hashes only for the tasks with a row), the DAG, which
        it returns. Once only: when events were lost, a poll rereads the statuses alone
        (`_resync`), since the tasks and the DAG never change."""
        run = self.run
        keys = run.config.keys.run(run.id)
        pipe = run.config.client().pipeline(transaction=False)  # the cursor first: no
        pipe.xrevrange(keys.events, "+", "-", count=1)  # event is missed
        pipe.hmget(keys.meta, *COUNTER_FIELDS)
        pipe.hgetall(keys.children)
        last, meta, children = pipe.execute()
        if meta[1] is None:
            raise run._not_found()
        pairs, maps = run.job_ids(), run._maps()
        self.big = len(pairs) > SMALL_RUN
        if self.big:
            found = RunTransitions(run.config).task_statuses(run.id)
            statuses = [found.get(name) or None for name, _ in pairs]
            states: list[TaskState | None] = [None] * len(pairs)
        else:
            states = read_states(run.config, pairs)
            statuses = [None if st is None else st.status.value for st in states]
        self.dag = dag = run_dag(pairs, children, maps)
        self._reset(pairs, statuses, states, maps)
        self.info = counters(meta)
        self._cursor = last[0][0] if last else b"0-0"
        if self.big:
            self._progress_read = float("-inf")
            self._read_details(dict.fromkeys(self.rows()[0]))
        return dag

    def _resync(self) -> None:
        """Events were lost (the stream was trimmed past our cursor, or counts disagree with
        the run's counters): read every status again, and the job hashes of the rows."""
        run = self.run
        keys = run.config.keys.run(run.id)
        pipe = run.config.client().pipeline(transaction=False)
        pipe.xrevrange(keys.events, "+", "-", count=1)  # the cursor first
        pipe.hmget(keys.meta, *COUNTER_FIELDS)
        last, meta = pipe.execute()
        if meta[1] is None:
            self.gone = True
            return
        if self.big:
            found = RunTransitions(run.config).task_statuses(run.id)
        else:
            states = read_task_states(run.config, [(r.name, r.job) for r in self.tasks.values()])
            found = {st.name: st.status.value for st in states}
            for st in states:
                self.tasks[st.name].state = st
        waiting = JobStatus.WAITING.value
        for record in self.tasks.values():
            record.status = found.get(record.name) or waiting
        self._recount()
        self.changed.update(self.tasks)
        self.version += 1
        self.info = counters(meta)
        self._cursor = last[0][0] if last else b"0-0"
        self.resyncs += 1
        if self.big:
            self._read_details(dict.fromkeys(self.rows()[0]))

    def _reset(self, pairs: list[tuple[str, str]], statuses: list[str | None],
               states: list[TaskState | None], maps: dict[str, Any]) -> None:
        self.tasks = {name: TaskRecord(name, jid, status or JobStatus.WAITING.value, state=st)
                      for (name, jid), status, st in zip(pairs, statuses, states, strict=True)}
        self.groups = []
        if self.big:
            self._group(maps)
        self._own = [r.name for r in self.tasks.values() if r.group is None]
        self._recount()
        self.changed = set(self.tasks)
        self.version += 1

    def _recount(self) -> None:
        """Counts by status (the run's, each group's) and the hot sets, from every task's
        status: one pass, no per-task bookkeeping (a big run has 10,000 tasks or more)."""
        records = self.tasks.values()
        self.counts = Counter(r.status for r in records)
        for group in self.groups:
            group.counts = Counter()
        hot: dict[str, dict[str, None]] = {s: {} for s in _HOT}
        self._hot = hot
        groups = self.groups
        for record in records:
            if record.group is not None:
                groups[record.group].counts[record.status] += 1
            members = hot.get(record.status)
            if members is not None:
                members[record.name] = None

    def _group(self, maps: dict[str, Any]) -> None:
        """Big runs: one group per map (the `MAP_GROUPS` - 1 biggest, the other maps in one
        more); tasks outside maps by bands of levels if they are many."""
        ranked = sorted(maps.items(), key=lambda item: -len(item[1][0]))
        kept = ranked if len(ranked) <= MAP_GROUPS else ranked[:MAP_GROUPS - 1]
        for name, (members, _keys) in kept:
            self._join(members, f"{name}[*]")
        if len(kept) < len(ranked):
            rest = ranked[len(kept):]
            self._join([m for _, (members, _k) in rest for m in members],
                       f"{len(rest):,} other maps")
        singles = [r.name for r in self.tasks.values() if r.group is None]
        if len(singles) <= SINGLE_ROWS or self.dag is None:
            return
        levels = self.dag.levels()
        depth = max(levels[name] for name in singles) + 1
        width = -(-depth // LEVEL_GROUPS)
        bands: dict[int, list[str]] = {}
        for name in singles:
            bands.setdefault(levels[name] // width, []).append(name)
        for band in sorted(bands):
            low, high = band * width, min(depth, (band + 1) * width) - 1
            self._join(bands[band], f"level {low}" if low == high else f"levels {low}-{high}")

    def _join(self, names: list[str], title: str) -> None:
        for name in names:
            self.tasks[name].group = len(self.groups)
        self.groups.append(Group(title, len(names)))

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
        start = b"-" if self._cursor == b"0-0" else self._cursor
        pipe.xrange(keys.events, start, b"+", count=EVENTS_PER_POLL + 1)
        meta, entries = pipe.execute()
        if meta[1] is None:
            self.gone = True
            return
        self.info = counters(meta)
        if self._cursor != b"0-0":
            if not entries or entries[0][0] != self._cursor:  # trimmed past our cursor
                self._resync()
                return
            entries = entries[1:]
        self.behind = len(entries) >= EVENTS_PER_POLL
        self.last_read = len(entries)
        named = self._apply(entries)
        self._read_details(named)
        if self.ended and not self.behind and not self._agrees():
            self._resync()

    def _apply(self, entries: list[Any]) -> dict[str, None]:
        """Apply events in order; returns the tasks they name (ordered, no repeats). Only a
        task's last status counts: a busy run moves most tasks through several statuses
        between two polls; a 'cache_hits' entry completes every task it lists (a submit's cache
        hits), a 'task_events' entry applies its events (those of one script call) in order. A
        task event's fields come in the order the scripts write them (``type, ts, run, job,
        task, queue, status, ...``): for those, two comparisons find the task and its status,
        with no dict built per entry (a poll reads thousands)."""
        latest: dict[bytes, bytes | None] = {}
        task_key, status_key = b"task", b"status"
        for _eid, fields in entries:
            if (type(fields) is list and len(fields) > 13 and fields[8] == task_key
                    and fields[12] == status_key):
                latest[fields[9]] = fields[13]
                continue
            entry = fields if isinstance(fields, dict) else dict(zip(fields[::2], fields[1::2],
                                                                     strict=True))
            kind = entry.get(b"type")
            if kind == _TASKS:  # the task events of one script call: "<type> <job> <task>
                for line in entry[b"events"].split(b"\n"):  # <queue> <status> <attempt>"
                    parts = line.split(b" ", 5)
                    latest[parts[2]] = parts[4]
                continue
            hits = entry.get(b"hits")
            if hits is not None and kind == _HITS:  # a submit's cache hits
                for line in hits.split(b"\n"):
                    latest[line.split(b" ", 2)[1]] = _COMPLETED
                continue
            task = entry.get(task_key)
            if task is not None:
                status = entry.get(status_key)
                if status is not None or task not in latest:
                    latest[task] = status
        if entries:
            self._cursor = entries[-1][0]
        named: dict[str, None] = {}
        tasks = self.tasks
        for task, status in latest.items():
            record = tasks.get(task.decode())
            if record is None:
                continue
            if status is not None:
                self._set_status(record, status.decode())
            named[record.name] = None
        return named

    def _read_details(self, named: dict[str, None]) -> None:
        """Read the job hashes of the named tasks with a row (and the progress of the active
        ones on screen, when due), one pipelined round trip."""
        rows = set(self.rows()[0])
        wanted = [n for n in named if n in rows]
        now = time.monotonic()
        active = [n for n in rows if n not in named
                  and self.tasks[n].status == JobStatus.ACTIVE.value]
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
            try:
                record.state = TaskState.from_fields(name, record.job, values, now_ms,
                                                    self.info.get("created") or None)
            except ValueError:  # a status this version does not know (a newer worker's)
                record.state = None
            self._set_status(record, values[0].decode())
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
        members = self._hot.get(status)
        if members is not None and sign > 0:
            members[record.name] = None
        elif members is not None:
            members.pop(record.name, None)

    def _agrees(self) -> bool:
        """Whether the counts built from events match the run's own counters."""
        return all(self.counts.get(s, 0) == self.info.get(s, 0) for s in _ENDED)

    # ------------------------------------------------------------------ what to show

    @property
    def status(self) -> str:
        """The run's status as last read."""
        return str(self.info.get("status", ""))

    @property
    def ended(self) -> bool:
        """The run has ended (as last read): a final status and its ``finished`` stamp. A
        cancel sets the status at once, then cancels the tasks in bounded steps and stamps
        ``finished`` after the last one: until then the tasks' statuses are still moving."""
        return (bool(self.status) and RunStatus(self.status).terminal
                and bool(self.info.get("finished")))

    def rows(self) -> tuple[list[str], int]:
        """The tasks with a row of their own, in order, and how many more would need one
        (big runs show at most `TASK_ROWS` of their failed, active and retrying tasks)."""
        if not self.big:
            return list(self.tasks), 0
        own = self._own
        grouped = (n for s in _HOT for n in self._hot[s] if self.tasks[n].group is not None)
        hot = list(itertools.islice(grouped, TASK_ROWS))
        total = sum(map(len, self._hot.values())) - sum(
            1 for n in own if self.tasks[n].status in _HOT)
        return [*own, *hot], max(0, total - len(hot))

    def first_failed(self) -> str | None:
        """The task that failed first (of those failed now), None if none did."""
        return next(iter(self._hot[JobStatus.FAILED.value]), None)

    def statuses(self) -> dict[str, str]:
        """Every task's status (for the graph)."""
        return {name: record.status for name, record in self.tasks.items()}

