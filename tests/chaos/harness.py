"""The chaos suite's tools: a ledger of effects, a fleet of killable workers, the summary table.

Each scenario keeps a `Ledger`: the jobs it submitted, the result each must end with, and the
lines their task bodies wrote (one per execution, see `tasks.py`). `Ledger.settle` compares them
with the job records in Redis and returns a `Row` of the summary table:

- **lost**: a job that did not end completed with its result, or whose body never ran;
- **wrongly failed**: a job that ended failed, skipped or cancelled (no task body here raises,
  so every such end is the machine's fault, not the code's);
- **duplicates**: executions beyond the first, summed over jobs;
- **unaccounted**: jobs that ran more often than their record charges (``attempts`` plus
  ``stalls``): an execution the job record does not account for.

Every row is kept in `ROWS` (``tests/chaos/conftest.py`` prints them at the end of the session
and writes them to ``$CHAOS_RESULTS`` if set) before the scenario asserts on it.
"""

from __future__ import annotations

import os
import random
import signal
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import cloudpickle

import ironforge_nb as ifn
from ironforge_nb.errors import RunTimeoutError
from ironforge_nb.local.workers import LocalWorkers
from ironforge_nb.queue import Queue, RedisConfig
from ironforge_nb.status import EventType, JobStatus
from tests.chaos import tasks

cloudpickle.register_pickle_by_value(tasks)  # task bodies travel by value, like a notebook's

SECRET = b"chaos-suite-secret"
BAD_ENDS = {JobStatus.FAILED.value, JobStatus.SKIPPED.value, JobStatus.CANCELLED.value}


@dataclass
class Row:
    """One scenario's line in the summary table."""

    scenario: str
    jobs: int
    faults: int  # worker kills, server restarts, stops, connection cuts: what the row injected
    lost: int
    duplicates: int
    wrongly_failed: int
    unaccounted: int
    attempts: int
    stalls: int
    seconds: float
    note: str = ""
    problems: list[str] = field(default_factory=list)
    unaccounted_jobs: list[str] = field(default_factory=list)  # their keys
    # pid of the process an execution that had to be repeated ran in -> how many such
    repeated_in: dict[int, int] = field(default_factory=dict)

    def check(self, max_duplicates: int | None = None,
              may_be_unaccounted: frozenset[str] = frozenset(),
              per_kill: int | None = None) -> None:
        """Assert the scenario's promises: nothing lost, nothing failed for the machine's sake,
        every execution accounted for (but for the jobs in ``may_be_unaccounted``: those whose
        claim a server crash may have undone), at most ``max_duplicates`` (default:
        ``faults``). With ``per_kill`` (worker kills), the repeated executions instead come
        from at most ``faults`` processes, and at most ``per_kill`` from any one of them."""
        bound = self.faults if max_duplicates is None else max_duplicates
        shown = "\n".join(self.problems[:20])
        unexplained = [key for key in self.unaccounted_jobs if key not in may_be_unaccounted]
        assert (self.lost, self.wrongly_failed, len(unexplained)) == (0, 0, 0), (
            f"{self.scenario}: lost {self.lost}, wrongly failed {self.wrongly_failed}, "
            f"unaccounted {self.unaccounted} ({len(unexplained)} not allowed):\n{shown}")
        if per_kill is not None:
            most = max(self.repeated_in.values(), default=0)
            assert len(self.repeated_in) <= self.faults and most <= per_kill, (
                f"{self.scenario}: {self.duplicates} duplicates from {len(self.repeated_in)} "
                f"processes (at most {self.faults}, the kills), at most {most} from one "
                f"(bound {per_kill}): {self.repeated_in}\n{shown}")
            return
        assert self.duplicates <= bound, (
            f"{self.scenario}: {self.duplicates} duplicates for {self.faults} faults "
            f"(bound {bound}):\n{shown}")


ROWS: list[Row] = []


@dataclass(frozen=True)
class Final:
    """How a job ended, from its record in Redis."""

    status: str
    attempts: int
    stalls: int
    result: Any
    error: str = ""
    claims: int = 0  # times the job was handed out, prefetches released for free included


def final_of(raw: Mapping[bytes, bytes], result: Any) -> Final:
    """A `Final` from a job's raw HGETALL reply (``stalls`` is 0 where the record has none)."""
    h = {k.decode(): v.decode(errors="replace") for k, v in raw.items()}
    return Final(h.get("status", "missing"), int(h.get("attempts", 0)),
                 int(h.get("stalls", 0)), result, h.get("error", ""), int(h.get("claims", 0)))


def job_records(config: RedisConfig, job_ids: Mapping[str, str],
                results: Mapping[str, Any]) -> dict[str, Final]:
    """``{key: Final}`` for jobs ``{key: job id}``, with ``results`` ``{key: value}``."""
    client = config.client()
    keys = list(job_ids)
    out: dict[str, Final] = {}
    for start in range(0, len(keys), 500):
        chunk = keys[start:start + 500]
        pipe = client.pipeline(transaction=False)
        for key in chunk:
            pipe.hgetall(config.keys.job(job_ids[key]))
        for key, raw in zip(chunk, pipe.execute(), strict=True):
            out[key] = final_of(raw, results.get(key))
    return out


def job_hashes(config: RedisConfig) -> int:
    """How many job records the namespace holds (a job created twice would show here)."""
    match = config.keys.job_prefix + "*"
    return sum(1 for _ in config.client().scan_iter(match=match, count=1000, _type="hash"))


class Ledger:
    """The effects a scenario's jobs must have: one result each, at least one execution line."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.expected: dict[str, Any] = {}

    @property
    def file(self) -> str:
        """The ledger file's path, as task bodies get it."""
        return str(self.path)

    def expect(self, key: str, result: Any) -> None:
        """Job ``key`` must end completed with ``result`` (a callable: a predicate on it)."""
        self.expected[key] = result

    def lines(self) -> list[tuple[str, int, float]]:
        """``(key, pid, time)`` of every complete line (a line torn by a kill is skipped)."""
        try:
            text = self.path.read_text()
        except FileNotFoundError:
            return []
        out = []
        for line in text.split("\n")[:-1]:
            key, pid, at = line.split(" ")
            out.append((key, int(pid), float(at)))
        return out

    def executions(self) -> Counter[str]:
        """How many times each job's body ran."""
        return Counter(key for key, _, _ in self.lines())

    def settle(self, scenario: str, finals: Mapping[str, Final], faults: int, seconds: float,
               note: str = "", history: Mapping[str, list[str]] | None = None) -> Row:
        """Compare the ledger with the job records; the row is added to `ROWS` and returned.
        ``history`` (``{key: lines}``, see `stall_history`) goes under each failed job's
        problem: why each of its stalls happened."""
        lines = self.lines()
        runs = Counter(key for key, _, _ in lines)
        problems: list[str] = []
        lost = failed = 0
        unaccounted: list[str] = []
        for key, want in self.expected.items():
            fin = finals.get(key, Final("missing", 0, 0, None))
            ok_result = want(fin.result) if callable(want) else fin.result == want
            if fin.status in BAD_ENDS:
                failed += 1
                problems.append(f"{key}: {fin.status} ({fin.error[:160]})")
                problems += [f"    {line}" for line in (history or {}).get(key, [])]
            elif fin.status != JobStatus.COMPLETED.value or not ok_result or not runs[key]:
                lost += 1
                problems.append(f"{key}: {fin.status}, result {fin.result!r}, ran {runs[key]}x")
            if runs[key] > fin.attempts + fin.stalls:
                unaccounted.append(key)
                problems.append(f"{key}: ran {runs[key]}x, record has attempts {fin.attempts} "
                                f"+ stalls {fin.stalls} (claims {fin.claims})")
            elif runs[key] > 1:  # a duplicate: which job, and why its record says it ran again
                problems.append(f"{key}: ran {runs[key]}x (attempts {fin.attempts}, stalls "
                                f"{fin.stalls}, claims {fin.claims}); ran at "
                                + ", ".join(f"{at:.3f} (pid {pid})" for k, pid, at in lines
                                            if k == key))
                problems += [f"    {line}" for line in (history or {}).get(key, [])]
        repeated_in: Counter[int] = Counter()  # every execution but a job's last was repeated
        for key, n in runs.items():
            if n > 1:
                ran = sorted((at, pid) for k, pid, at in lines if k == key)
                repeated_in.update(pid for _, pid in ran[:-1])
        strangers = set(runs) - set(self.expected)
        problems += [f"{key}: ran but was never submitted" for key in sorted(strangers)]
        row = Row(scenario, len(self.expected), faults, lost + len(strangers),
                  sum(n - 1 for n in runs.values() if n > 1), failed, len(unaccounted),
                  sum(f.attempts for f in finals.values()),
                  sum(f.stalls for f in finals.values()), round(seconds, 1), note, problems,
                  unaccounted, dict(repeated_in))
        ROWS.append(row)
        return row


def table(rows: list[Row]) -> str:
    """The summary table as Markdown."""
    head = ["scenario", "jobs", "faults", "lost", "duplicates", "wrongly failed",
            "unaccounted", "attempts", "stalls", "seconds", "note"]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join(["---"] + ["---:"] * 9 + ["---"])
             + "|"]
    for r in rows:
        cells = [r.scenario, r.jobs, r.faults, r.lost, r.duplicates, r.wrongly_failed,
                 r.unaccounted, r.attempts, r.stalls, r.seconds, r.note]
        lines.append("| " + " | ".join(str(c) for c in cells) + " |")
    return "\n".join(lines)


def rows_json(rows: list[Row]) -> list[dict[str, Any]]:
    """The rows as plain dicts (problems cut to 20 lines each)."""
    return [{**asdict(r), "problems": r.problems[:20]} for r in rows]


def pipeline(ledger: Ledger, n: int, work: float, prefix: str = "") -> ifn.Pipeline:
    """start -> ``n`` map members (``work`` s each) -> total; every effect expected in
    ``ledger`` (keys: ``start``, the item numbers, ``total``, each after ``prefix``)."""
    p = ifn.Pipeline("chaos")
    p.task("start", tasks.named_task(ledger.file, f"{prefix}start", 0))
    p.map("items", tasks.item_task(ledger.file, work, prefix), over=list(range(n)),
          after="start")
    p.task("total", tasks.gather_task(ledger.file, f"{prefix}total"), after="items")
    ledger.expect(f"{prefix}start", 0)
    for i in range(n):
        ledger.expect(f"{prefix}{i}", 2 * i)
    ledger.expect(f"{prefix}total", sum(2 * i for i in range(n)))
    return p


def _run_key(task: str, prefix: str) -> str:
    return prefix + (task[len("items["):-1] if task.startswith("items[") else task)


def run_records(run: ifn.Run, prefix: str = "") -> dict[str, Final]:
    """``{ledger key: Final}`` of a run of `pipeline`: task ``items[7]`` has key ``7``."""
    keys = {_run_key(task, prefix): jid for task, jid in run.job_ids()}
    results = {_run_key(task, prefix): value for task, value in run.results().items()}
    return job_records(run.config, keys, results)


def run_stall_history(run: ifn.Run, prefix: str = "",
                      kills: Mapping[str, float] | None = None) -> dict[str, list[str]]:
    """`stall_history` of a run of `pipeline` (its tasks on the ``default`` queue), by the
    ledger keys of `run_records`."""
    keys = {_run_key(task, prefix): jid for task, jid in run.job_ids()}
    return stall_history(Queue("default", run.config), keys, kills or {})


def settle_run(ledger: Ledger, scenario: str, run: ifn.Run, faults: int, began: float,
               finished: bool, note: str = "") -> Row:
    """The run's row: its job records and results against the ledger."""
    return ledger.settle(scenario, run_records(run), faults, time.monotonic() - began,
                         note if finished else f"{note}; the run did not finish")


class Fleet(LocalWorkers):
    """Local worker processes that a test kills, stops and replaces (see `LocalWorkers`);
    ``kills`` holds when each SIGKILLed worker was killed (by name, seconds since the epoch)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.kills: dict[str, float] = {}

    def add(self) -> int:
        """Start one more worker (without waiting for it to register); returns its index."""
        assert self._dir is not None, "start() the fleet first"
        tag = self._names[0].rsplit("-", 1)[0]
        name = f"{tag}-{len(self._names)}"
        self._names.append(name)
        self._procs.append(self._spawn(name))
        return len(self._names) - 1

    def pid(self, index: int) -> int:
        """Process id of worker ``index``."""
        return self._procs[index].pid

    def kill_one(self, rng: random.Random) -> int:
        """SIGKILL a random live worker (as the OOM killer or ``kill -9`` would) and start a
        replacement at once; returns the victim's pid."""
        live = [(n, p) for n, p in zip(self._names, self._procs, strict=True) if p.poll() is None]
        name, victim = rng.choice(live)
        self.kills[name] = time.time()
        victim.kill()
        victim.wait()
        self.add()
        return victim.pid

    def signal_group(self, index: int, sig: signal.Signals) -> None:
        """Send ``sig`` to worker ``index`` and its executors (its process group)."""
        os.killpg(self._procs[index].pid, sig)


class Chaos:
    """A background thread that calls ``fault()`` every ``every`` seconds (jittered +-50 %)
    until the ``with`` block ends; ``count`` says how many faults it injected."""

    def __init__(self, fault: Callable[[], object], every: float, seed: int) -> None:
        self.count = 0
        self.errors: list[BaseException] = []
        self._fault = fault
        self._every = every
        self._rng = random.Random(seed)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(self._rng.uniform(0.5, 1.5) * self._every):
            try:
                self._fault()
            except BaseException as exc:  # reported by __exit__, not lost in a thread
                self.errors.append(exc)
                return
            self.count += 1

    def __enter__(self) -> Chaos:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        assert not self.errors, f"the fault injector itself failed: {self.errors[0]!r}"


def stall_history(queue: Queue, job_ids: Mapping[str, str],
                  kills: Mapping[str, float]) -> dict[str, list[str]]:
    """``{key: lines}`` for jobs ``{key: job id}`` of ``queue``: each stall (from the queue's
    'stalled' events) with its time, reason and worker, and whether that worker had been
    SIGKILLed by then (``kills``, see `Fleet`) or was still alive (its lease expired under a
    live worker): what a failed job's problem line needs to tell the cause."""
    keys = {job_id: key for key, job_id in job_ids.items()}
    out: dict[str, list[str]] = {}
    for ev in queue.events(count=1_000_000):
        if ev.type is not EventType.STALLED or ev.job not in keys:
            continue
        at = ev.ts / 1000
        killed = kills.get(ev.worker or "")
        state = (f"its worker was SIGKILLed {at - killed:.2f} s before"
                 if killed is not None and killed <= at else "its worker was alive")
        out.setdefault(keys[ev.job], []).append(
            f"stall {ev.stalls} at {at:.3f}: {ev.error}; {state}")
    return out


def finishes(run: ifn.Run, timeout: float) -> bool:
    """Wait for ``run`` to end; False when it has not within ``timeout`` s (the scenario's
    row then says so, instead of the wait's error hiding the ledger)."""
    try:
        run.wait(timeout=timeout, progress=False)
    except RunTimeoutError:
        return False
    return True


def wait_until(predicate: Callable[[], Any], timeout: float, what: str) -> Any:
    """Poll ``predicate`` until truthy; AssertionError naming ``what`` after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while not (value := predicate()):
        assert time.monotonic() < deadline, f"{what}: not within {timeout:g} s"
        time.sleep(0.02)
    return value
