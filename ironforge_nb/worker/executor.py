"""Executor processes: the forked children of a worker that run user code, one task at a time.

User code may hold the GIL or block for minutes; it runs here, in a child process, so that the
worker's main process keeps heartbeating leases and can enforce timeouts by killing the child.
The worker forks its executors before it starts any thread or opens any Redis connection, and
feeds each over a pipe: it sends a `Lease`, the executor answers with an `Outcome` (both as
plain tuples, see `wire.py`). An executor dies with its worker (``PR_SET_PDEATHSIG`` on Linux,
SIGKILL: user code cannot ignore it), and the worker respawns any executor that died or was
killed.

Start marks: an executor never runs a lease's code before Redis has recorded that lease as
started. A lease arrives either already started (the claim that brought it marked it: the
first job of an idle executor) or HELD (prefetched, see `slots.py`); before running a held one,
the executor marks it started itself (`Queue.start`, one round trip on its own connection,
fenced by the lease token) and waits for the answer. If the job moved on meanwhile (the worker
handed it back, it was cancelled, its lease expired), the mark is refused and the executor
skips the lease, answering "not run". So when a worker dies, Redis knows exactly which of its
jobs began (they stall) and which never did (they go back for free).

The mark's round trip is the executor's one wait per prefetched job, so it overlaps it with
the work it does anyway: once a task's code has ended, the executor sends the next held
lease's mark (`Queue.send_start`: sent, not awaited), then reports the outcome on the pipe
and reads the pipe, and only then waits for the mark's answer before running the next code.
The mark never goes out before the code before it has ended (a worker killed while a task
runs charges nothing to the leases behind it), and a revocation that arrives after it went
out is too late, as one that arrives after the answer: the worker's hand-back
(``held_only``) is then refused and the task stays on its slot.

Completing and claiming by itself (issue 14: a CHAIN hop). When a task succeeds and no lease
of the worker's waits in this executor's pipe, the executor does not hand the success to its
worker: it completes it in Redis and claims the next jobs of the same queue in the same call
(`Queue.complete_many` with ``fetch_next``, as the worker's completion would claim them: the
worker's name, the lease's length, at most the count its worker last told it, ``("fetch",
n)`` or with its leases: its slot's prefetch capacity), the first of them started by the
claim, the others held. It then tells its worker on the pipe, in one outcome message (the
success, completed; the leases claimed), and only after that write runs the first claimed
lease's code (the others are marked as any held lease). A CHAIN hop is then two hand-offs
(executor -> Redis -> executor) instead of four (executor -> worker -> Redis -> worker ->
executor); the worker reads the message while the next task runs, puts the leases at the
front of the slot (the running head: heartbeats, its timeout, stall accounting, cancellation
as for any lease) and completes nothing (no double completion).

- Who may claim: the worker allows it when it forks the executor and forbids it for good with
  ``("noclaim",)`` when it starts stopping (a replacement forked then is never allowed). The
  executor reads its pipe right before it would claim, so after that message it claims
  nothing; a claim already on its way when the stop began arrives as an outcome like any
  other, and its lease is a task running at the stop (it gets the grace). Nor does it claim
  while its worker is being killed (`_Parent`: a SIGKILL pending or its exit begun, read
  from ``/proc``), which on a loaded machine lasts long enough to claim and begin a job.
- Receipts: the claim is sent with the request id `claim_request` (from the completed
  lease's token) and leaves the receipt of `claim_receipt` (the worker's name and this pid),
  its own, so that redis-py's resend after a lost reply is answered with the same jobs and
  the worker can name that claim.
- A claim never told: the executor writes the message before any code of the claimed lease
  runs, so when an executor dies (killed by its worker for a timeout, a stop past the grace,
  or on its own) and its pipe, read to the end, holds no message for the task it was on, no
  claimed code began: the worker hands that claim's jobs back for free (`Queue.release_claim`,
  release_claim.lua), which also makes the claim, should it reach Redis only afterwards,
  claim nothing. A call whose reply never came (Redis unreachable past the client's retries)
  is reported as a plain success with ``lost``: the worker completes it and hands back what
  it may have claimed.
- A worker killed after the claim: its executor dies with it (PDEATHSIG) and the started
  lease is a stall when it expires, charged for code that may not have begun if the kill
  came between the look at the worker and the code, i.e. during the claim's round trip and
  the message's write: no longer than the same window of a claim made by the worker (its
  round trip, the worker's hand-over on the pipe and this executor's wake-up), see
  docs/lifecycle.md.
- Results that are not completed here: a result over the size limit (the worker fails it, as
  before), a failure (the worker fails it: it may retry), a task followed by a lease of the
  worker's (the worker completes it, in batches for short tasks: `settling.py`).
- Read late, called back: a report of leases claimed this way needs no answer, so for short
  tasks the worker may leave this pipe unread for up to `slots.READ_LATE` (2 ms) after one
  (`Slot.read_after`): a CHAIN's hops then neither wake the worker one by one nor make the
  executor's write wake it. Whatever message follows such a report and needs the worker (an
  outcome it records, a claim that found nothing, after which the executor waits for its
  worker) is followed by one byte on a second pipe, the alert pipe, which the worker always
  watches (`_Alert`, `Settler.on_alert`). The executor's death is seen at once as before (its
  process sentinel), and the worker reads the whole pipe then.
- Waiting for its own claim in a chain: when its last claim brought back the one job there
  was (the child it just released), the executor waits for the next claim's reply polling
  its socket for up to `CHAIN_SPIN` rather than asleep (`queue.link.spinning`), as long as a
  CPU is free for it (`_Chain`): a hop is that round trip and nothing else runs meanwhile,
  and on machines whose idle CPUs halt at once, waking a sleeper costs the hop tens of
  microseconds. Nothing sent or recorded changes.
"""

from __future__ import annotations

import contextlib
import copy
import multiprocessing
import os
import signal
import time
import traceback
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any

import redis.exceptions

from ironforge_nb.errors import InvalidOptionError, SignatureError, SizeLimitError
from ironforge_nb.pdeathsig import set_pdeathsig, set_process_name
from ironforge_nb.queue import Lease, Queue, RedisConfig
from ironforge_nb.queue.link import spinning
from ironforge_nb.worker.context import start_reporting, stop_reporting
from ironforge_nb.worker.logs import install, start_capture, stop_capture
from ironforge_nb.worker.wire import Frames, Readiness, encode, lease_from, lease_tuple

__all__ = ["REDIS_DOWN", "Executor", "ExecutorProcess", "Outcome", "claim_receipt", "claim_request",
           "load_executor", "run_lease", "task_executor"]

# (config, lease) -> encoded result for Queue.complete; raises to fail the attempt
Executor = Callable[[RedisConfig, Lease], "bytes | None"]
# Redis cannot answer now: unreachable, too slow, or a cluster whose master serving our slot is
# down or rejoining (CLUSTERDOWN, until the cluster agrees again): wait and retry, never exit
REDIS_DOWN = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError,
              redis.exceptions.ClusterDownError)
MARK_RETRY = 0.5  # seconds between two tries of a start mark while Redis is unreachable
CHAIN_SPIN = 0.0006  # seconds an executor in a chain polls for its own claim's reply (`_Chain`)
CPU_CHECK_EVERY = 0.001  # seconds between two looks of `_Chain` at the machine's runnable tasks


@dataclass(frozen=True)
class Outcome:
    """What an executor reports for one lease: a result, or an error and whether to retry;
    ``ran`` False when it did not run the lease at all (revoked, or its start mark was
    refused: the job had moved on), ``error`` then saying why.

    A success the executor completed in Redis itself (see the module docstring) has
    ``completed`` True (``error``: why Redis refused it, if it did) and ``claimed``, the
    lease tuples its call claimed (the first started, already running), ``drained`` True
    when that claim came back short, ``took`` the seconds its code took (the message left
    after the call, which the slot's average of task durations must not count); ``lost`` is
    the request id of such a call whose reply never came (the success is then the worker's
    to complete, the claim its to hand back)."""

    ok: bool
    result: bytes | None = None
    error: str = ""
    retry: bool = True
    ran: bool = True
    completed: bool = False
    claimed: tuple[Any, ...] = ()
    drained: bool = False
    lost: str = ""
    took: float | None = None


def run_lease(execute: Executor, config: RedisConfig, queue: Queue, lease: Lease) -> Outcome:
    """Run one lease with ``execute``, progress bound to it; every exception becomes an Outcome.

    `SignatureError` (a payload that must never be unpickled) fails the job for good; any other
    error fails the attempt, which the queue retries while attempts remain.
    """
    start_capture(queue, lease)  # what it prints: stored before the outcome is sent
    start_reporting(queue, lease)
    try:
        try:
            result = execute(config, lease)
        finally:
            stop_reporting()  # its last progress update is written before the outcome
    except SignatureError as exc:
        return Outcome(False, error=f"SignatureError: {exc}", retry=False)
    except BaseException:  # user code may raise anything, even SystemExit
        return Outcome(False, error=traceback.format_exc().rstrip())
    finally:
        stop_capture()
    if result is not None and not isinstance(result, bytes):
        return Outcome(False, error=f"the executor returned {type(result).__name__}, "
                                    "expected bytes or None (an encoded result)", retry=False)
    return Outcome(True, result)


def load_executor(path: str) -> Executor:
    """The callable named ``"package.module:function"`` (a custom executor for the CLI)."""
    import importlib

    module, _, attr = path.partition(":")
    if not module or not attr:
        raise InvalidOptionError("executor", path, "'package.module:function'")
    try:
        found = getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError) as exc:
        raise InvalidOptionError("executor", path, f"an importable callable ({exc})") from exc
    if not callable(found):
        raise InvalidOptionError("executor", path, "a callable (config, lease) -> bytes | None")
    executor: Executor = found
    return executor


def _die_with_parent(parent: int) -> None:
    """Ask Linux for SIGKILL when the worker dies; exit now if it already has."""
    set_pdeathsig(signal.SIGKILL)
    if os.getppid() != parent:
        os._exit(1)


def claim_receipt(worker: str, pid: int) -> str:
    """The name under which the executor ``pid`` of ``worker`` leaves the receipts of its own
    claims (keys.py `receipt`): apart from its worker's, whose claims it does not share."""
    return f"{worker}#x{pid}"


def claim_request(lease: Lease) -> str:
    """The request id of the claim an executor makes with the completion of ``lease`` (one
    per lease: its token is unique in its queue), which its worker can name too."""
    return f"s{lease.token}"


def _executor_main(conn: Connection, config: RedisConfig, execute: Executor,
                   parent: int, claims: bool = False, alert: int = -1) -> None:
    """Body of an executor process: run the leases received on ``conn`` until None or EOF.
    ``claims``: it may complete a success itself and claim its next job (until told not to).
    ``alert``: the write end of the pipe that calls its worker back (see `_Alert`)."""
    _die_with_parent(parent)
    set_process_name("ifn-executor")  # as top and ps -o comm show it
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the worker's to handle
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    config = copy.copy(config)  # settings only (see RedisConfig.__reduce__): a client of our own
    install(config)  # print() and logging of tasks go to their job's logs (worker/logs.py)
    queues: dict[str, Queue] = {}
    inbox = _Inbox(conn)
    inbox.claims = claims
    worker = _Parent(parent) if claims else None
    chain = _Chain()
    pid = os.getpid()
    ahead: tuple[Lease, Callable[[], int]] | None = None  # a mark sent before its lease's turn
    polled = False  # the pipe was read since the last task
    call = _Alert(alert)
    while (item := inbox.next(polled)) is not None:
        lease, marked = item
        queue = _queue(queues, lease, config)
        sent = ahead[1] if ahead is not None and ahead[0] is lease else None
        skipped = "" if marked else _take_up(queue, lease, inbox, sent)
        if skipped:
            conn.send_bytes(encode((False, None, skipped, True, False)))
            call.worker()
            ahead, polled = None, False
            continue
        began = time.monotonic()
        outcome = run_lease(execute, config, queue, lease)
        ahead = _mark_next(inbox, queues, config)  # its answer travels while we report
        polled = True
        if outcome.ok and inbox.may_claim() and worker is not None and not worker.dying():
            claimed = _complete_and_claim(conn, queue, lease, outcome,
                                          claim_receipt(lease.worker, pid), inbox.fetch,
                                          time.monotonic() - began, chain)
            if claimed:
                inbox.pin(claimed)  # told to the worker: they run next
                call.told_claim = True
            else:
                call.worker()
            continue
        conn.send_bytes(encode((outcome.ok, outcome.result, outcome.error, outcome.retry,
                                True)))
        call.worker()


class _Alert:
    """The executor's end of the pipe that calls its worker back.

    After a message telling of leases the executor claimed by itself (and runs), its worker
    may leave the lease pipe unread for a moment (`Slot.read_after`): what comes next is
    usually another such report, which needs no answer. Any other message that follows (an
    outcome for the worker to record, a claim that found nothing: the executor then waits for
    its worker) is followed by one byte on this pipe, which the worker always watches."""

    def __init__(self, fd: int) -> None:
        self._fd = fd
        self.told_claim = False  # the last message told of leases claimed by itself

    def worker(self) -> None:
        """Call the worker back if it may be reading late (the message is written first)."""
        if self.told_claim and self._fd >= 0:
            with contextlib.suppress(OSError):  # full (a call is pending) or worker gone
                os.write(self._fd, b"!")
        self.told_claim = False


class _Parent:
    """The worker process as Linux shows it (``/proc/<pid>/stat``, one ``pread`` on a
    descriptor kept open: about as cheap as a ``poll``), to tell that it is being killed.

    A SIGKILLed worker's executor dies when the kernel has torn the worker down
    (PDEATHSIG), which on a loaded machine takes milliseconds; its pipe ends later still. An
    executor that claimed a job meanwhile would have it charged a stall for code cut short
    at once, or not begun. So before it claims by itself the executor looks: a SIGKILL
    pending for the worker, or its exit begun (``PF_EXITING``), or the worker gone, and it
    claims nothing."""

    _PF_EXITING = 0x4
    _SIGKILL = 1 << (signal.SIGKILL - 1)

    def __init__(self, pid: int) -> None:
        try:
            self._fd = os.open(f"/proc/{pid}/stat", os.O_RDONLY | os.O_CLOEXEC)
        except OSError:  # not Linux: nothing to look at (and no PDEATHSIG either)
            self._fd = -1

    def dying(self) -> bool:
        """True when the worker is being killed, or is gone."""
        if self._fd < 0:
            return False
        try:
            raw = os.pread(self._fd, 1024, 0)
            # after the command name: state, ..., flags (the 7th), ..., signal (the 29th)
            fields = raw[raw.rindex(b")") + 2:].split()
            return (fields[0] in (b"Z", b"X") or bool(int(fields[6]) & self._PF_EXITING)
                    or bool(int(fields[28]) & self._SIGKILL))
        except (OSError, ValueError, IndexError):  # gone (ESRCH), or unreadable
            return True


class _Chain:
    """Whether the executor waits for its next own claim's reply spinning (`spinning`).

    In a chain, each hop is the executor's call to Redis and back, and nothing else runs
    meanwhile: a process that sleeps for the reply is woken when it comes, which on a machine
    whose idle CPUs halt at once costs the hop tens of microseconds (benchmarks/README.md,
    "The machine's idle CPUs"). So when its last own claim brought back exactly one job while
    it asked for more (the child just released: the queue held nothing else), the executor
    polls for the next reply for up to `CHAIN_SPIN`, and only while a CPU is free
    (``/proc/loadavg``'s count of runnable tasks, itself included, at most the CPU count): a
    spinner must never take a core another process needs. What is sent and what the reply
    says are the same either way."""

    def __init__(self, loadavg: str = "/proc/loadavg", cpus: int | None = None,
                 every: float = CPU_CHECK_EVERY) -> None:
        self.chained = False  # the last own claim brought back the one job there was
        self._cpus = cpus or os.cpu_count() or 1
        self._every = every
        self._checked = -float("inf")  # monotonic time of the last look at /proc/loadavg
        self._free = False  # what it saw then
        try:
            self._fd = os.open(loadavg, os.O_RDONLY | os.O_CLOEXEC)
        except OSError:  # not Linux: no way to tell a free CPU, so never spin
            self._fd = -1

    def spin(self) -> float:
        """Seconds the next own claim may poll for its reply (0: it sleeps as usual)."""
        if not self.chained or self._fd < 0:
            return 0.0
        now = time.monotonic()
        if now - self._checked >= self._every:  # a look costs a few us: not every hop
            self._checked = now
            try:  # "0.52 0.58 0.59 2/345 6789": runnable / all scheduling entities
                running = int(os.pread(self._fd, 128, 0).split()[3].split(b"/")[0])
                self._free = running <= self._cpus
            except (OSError, ValueError, IndexError):
                self._free = False
        return CHAIN_SPIN if self._free else 0.0

    def claimed(self, asked: int, got: int) -> None:
        """An own claim asked for ``asked`` jobs and brought back ``got``."""
        self.chained = got == 1 and asked > 1


def _complete_and_claim(conn: Connection, queue: Queue, lease: Lease, outcome: Outcome,
                        receipt: str, fetch: int, took: float, chain: _Chain) -> list[Lease]:
    """Complete the success of ``lease`` and claim the next jobs of its queue, at most
    ``fetch``, the first started, in one call (complete_job.lua, as the worker's completion
    would: same worker name, lease length, queue and count), then tell the worker on the
    pipe: the completion, and the leases claimed, which the caller runs next (returned). The
    claim's
    request id is `claim_request` and its receipt ``receipt``'s, so that the worker can hand
    it back if this process dies before the worker hears of it. A result too big for Redis,
    or a call whose reply never came, is reported as usual (the worker completes or fails
    it; for a lost reply it hands back what the call may have claimed: ``lost``). ``chain``:
    whether to wait for the reply spinning (see `_Chain`)."""
    rid = claim_request(lease)
    asked = max(1, fetch)
    try:
        with spinning(chain.spin()):
            leases, refused = queue.complete_many([lease], [outcome.result],
                                                  fetch_next=asked, started=1,
                                                  receipt=receipt, request_id=rid)
    except SizeLimitError:  # the worker fails it, as it fails any result too big
        conn.send_bytes(encode((True, outcome.result, "", True, True)))
        return []
    except REDIS_DOWN:
        conn.send_bytes(encode((True, outcome.result, "", True, True, False, (), False, rid)))
        return []
    chain.claimed(asked, len(leases))
    error = str(next(iter(refused.values()))) if refused else ""
    conn.send_bytes(encode((True, None, error, True, True, True,
                            tuple(lease_tuple(le) for le in leases),
                            len(leases) < max(1, fetch) and not refused, "", took)))
    return leases


def _queue(queues: dict[str, Queue], lease: Lease, config: RedisConfig) -> Queue:
    queue = queues.get(lease.queue)
    if queue is None:
        queue = queues[lease.queue] = Queue(lease.queue, config)
    return queue


def _mark_next(inbox: _Inbox, queues: dict[str, Queue],
               config: RedisConfig) -> tuple[Lease, Callable[[], int]] | None:
    """Send the start mark of the next lease, if it is already here and held, without
    waiting for the answer: `_take_up` waits for it before that lease's code runs, and
    meanwhile this executor reports the outcome it just had. The mark goes out only after
    the previous task's code ended, as it would in `_take_up` (a worker killed while that
    task ran charges nothing to this one), and only if no revocation of it has arrived."""
    inbox.poll()
    item = inbox.peek()
    if item is None or item[1] or inbox.gone:  # none yet, started by its claim, worker gone
        return None
    lease = item[0]
    if (lease.job_id, lease.token) in inbox.revoked:
        return None
    return lease, _queue(queues, lease, config).send_start([lease])


def _take_up(queue: Queue, lease: Lease, inbox: _Inbox,
             sent: Callable[[], int] | None = None) -> str:
    """Mark the held ``lease`` started in Redis before its code runs (see the module
    docstring); returns why it must not run ("" when it may): revoked by the worker, or
    refused by Redis because the job moved on. ``sent``: the mark already went out
    (`_mark_next`), only its answer is awaited; a revocation that arrived after it is too
    late, as one that arrives after an answer (the worker's hand-back, refused by Redis once
    the job started, keeps the task on the slot). While Redis cannot be reached, tries again
    every `MARK_RETRY` seconds (the worker may revoke the lease or kill this process
    meanwhile)."""
    key = (lease.job_id, lease.token)
    while True:
        if sent is None and key in inbox.revoked:  # handed back by the worker
            inbox.revoked.discard(key)
            return "revoked"
        try:
            started = sent() if sent is not None else queue.start([lease])
        except REDIS_DOWN:
            sent = None
            time.sleep(MARK_RETRY)
            inbox.poll()
            continue
        inbox.revoked.discard(key)
        return "" if started else "not started: the job moved on before its executor took it up"


class _Inbox:
    """The executor's side of the pipe: leases in order, revocations, and the stop message.

    Before each task, every message already sent is read, so that a revocation of a
    prefetched lease is seen before that lease would start.
    """

    def __init__(self, conn: Connection) -> None:
        self._conn = conn
        self._frames = Frames(conn.fileno())
        self._readiness = Readiness([conn.fileno()])
        self._leases: deque[tuple[Lease, bool]] = deque()
        self._stop = False
        self._pinned: Lease | None = None  # claimed by this executor and told: runs next
        self.gone = False  # the pipe reached its end: the worker is gone
        self.claims = False  # it may claim its next job itself (`may_claim`)
        self.fetch = 1  # how many jobs it claims then (the worker's latest word)
        self.revoked: set[tuple[str, str]] = set()  # (job id, lease token)

    def may_claim(self) -> bool:
        """True when the executor may complete its success and claim its next job itself:
        its worker allows it (and has not said "no more" since: stopping), no lease of the
        worker's waits here, and the worker is there. Call right after `poll`."""
        return self.claims and not self._leases and not self._stop and not self.gone

    def pin(self, leases: list[Lease]) -> None:
        """``leases`` (claimed by this executor, and told to the worker) run next, before
        the worker's: the first, started by the claim, even if a stop or the pipe's end
        arrives first (its worker counts it running); the others held, as prefetched ones."""
        self._pinned = leases[0]
        self._leases.extendleft((lease, False) for lease in reversed(leases[1:]))

    def next(self, polled: bool = False) -> tuple[Lease, bool] | None:
        """The next lease to run and whether Redis already counts it started, or None when
        told to stop (or the worker is gone). ``polled``: the messages already sent were
        just read (`poll`)."""
        if self._pinned is not None:
            lease, self._pinned = self._pinned, None
            return lease, True
        if not polled:
            self.poll()
        while not self._leases and not self._stop and not self.gone:
            self._read()
        if self._stop or self.gone or not self._leases:
            return None
        return self._leases.popleft()

    def poll(self) -> None:
        """Read every message already sent (leases, revocations), without waiting."""
        if not self._stop and not self.gone and self._readiness.ready(0):
            self._read()

    def peek(self) -> tuple[Lease, bool] | None:
        """The lease that `next` would return now, if one is here."""
        return self._leases[0] if self._leases and not self._stop else None

    def _read(self) -> None:
        frames = self._frames
        try:
            frames.read()
        except OSError:
            self.gone = True
        while frames.messages:
            self._take(frames.messages.popleft())
        self.gone = self.gone or frames.ended

    def _take(self, message: Any) -> None:
        if message is None:
            self._stop = True
        elif message == ("noclaim",):  # the worker is stopping: claim nothing more
            self.claims = False
        elif isinstance(message, list):  # leases, each with whether its claim started it
            self._leases.extend((lease_from(m[:-2]), m[-2]) for m in message)
            self.fetch = message[-1][-1]
        elif len(message) == 3:  # ("revoke", job_id, token)
            self.revoked.add((message[1], message[2]))
        elif len(message) == 2:  # ("fetch", how many it claims at most)
            self.fetch = message[1]
        else:  # a lease, whether the claim marked it started, how many to claim at most
            self._leases.append((lease_from(message[:-2]), message[-2]))
            self.fetch = message[-1]


class ExecutorProcess:
    """One forked executor and the worker's end of its pipe."""

    def __init__(self, config: RedisConfig, execute: Executor, claims: bool = False) -> None:
        ctx = multiprocessing.get_context("fork")
        self.conn, child = ctx.Pipe(duplex=True)
        self.claims = claims  # it may claim its next jobs itself (until `no_claims`)
        self.alert_fd, alert = os.pipe()  # its calls back (`_Alert`), both ends non-blocking
        os.set_blocking(self.alert_fd, False)
        os.set_blocking(alert, False)
        self.process: Any = ctx.Process(
            target=_executor_main, args=(child, config, execute, os.getpid(), claims, alert),
            name="ironforge-executor", daemon=True)
        try:
            self.process.start()
        finally:
            child.close()
            os.close(alert)
        self._readiness = Readiness([self.conn.fileno()])
        self._frames = Frames(self.conn.fileno())

    @property
    def pid(self) -> int:
        """Process id of the executor."""
        pid: int = self.process.pid
        return pid

    @property
    def sentinel(self) -> int:
        """A descriptor that becomes readable when the process ends (the worker polls it)."""
        sentinel: int = self.process.sentinel
        return sentinel

    def alive(self) -> bool:
        """True while the process runs."""
        return bool(self.process.is_alive())

    def send(self, lease: Lease, marked: bool = False, fetch: int = 1) -> None:
        """Hand ``lease`` to the executor, with whether Redis already counts it started
        (``marked``: else the executor marks it before running it, see the module
        docstring) and how many jobs it claims at most when it claims by itself."""
        self.conn.send_bytes(encode((*lease_tuple(lease), marked, fetch)))

    def send_many(self, leases: list[tuple[Lease, bool]], fetch: int = 1) -> None:
        """`send` for several leases (each with its ``marked``), in one message."""
        self.conn.send_bytes(encode([(*lease_tuple(lease), marked, fetch)
                                     for lease, marked in leases]))

    def clear_alert(self) -> None:
        """Read the bytes of the executor's call back (`_Alert`) that are in its pipe."""
        with contextlib.suppress(OSError):  # BlockingIOError: none left
            while os.read(self.alert_fd, 4096):
                pass

    def _close_alert(self) -> None:
        if self.alert_fd >= 0:
            os.close(self.alert_fd)
            self.alert_fd = -1

    def revoke(self, lease: Lease) -> None:
        """Tell the executor not to start the prefetched ``lease``."""
        self.conn.send_bytes(encode(("revoke", lease.job_id, lease.token)))

    def fetch(self, most: int) -> None:
        """Tell the executor how many jobs it claims at most when it claims by itself."""
        with contextlib.suppress(OSError):  # a dead executor is replaced anyway
            self.conn.send_bytes(encode(("fetch", most)))

    def no_claims(self) -> None:
        """Tell the executor to claim nothing by itself from now on (the worker stops). A
        claim it has already begun still arrives, as an outcome like any other."""
        if self.claims:
            with contextlib.suppress(OSError, ValueError):
                self.conn.send_bytes(encode(("noclaim",)))

    def ready(self) -> bool:
        """True when an outcome (or the end of the pipe) can be read without blocking."""
        frames = self._frames
        return bool(frames.messages) or frames.ended or (
            not self.conn.closed and bool(self._readiness.ready(0)))

    def receive(self) -> Outcome | None:
        """The executor's next outcome (waiting for it), or None if it died before
        answering."""
        frames = self._frames
        try:
            while not frames.messages and not frames.ended:
                frames.read()
        except OSError:
            return None
        if not frames.messages:
            return None
        return Outcome(*frames.messages.popleft())

    def outcomes(self) -> list[Outcome | None]:
        """Every outcome sent so far, without waiting (one read for all of them); None
        last when the pipe ended (the executor died)."""
        frames = self._frames
        if not frames.messages and not frames.ended and not self.conn.closed \
                and self._readiness.ready(0):
            try:
                frames.read()
            except OSError:
                frames.ended = True
        out: list[Outcome | None] = [Outcome(*m) for m in frames.messages]
        frames.messages.clear()
        if frames.ended:
            out.append(None)
        return out

    def kill(self) -> None:
        """SIGKILL the executor (timeout, cancelled job, shutdown) and reap it. What it had
        sent before it died is kept: `outcomes` still returns it."""
        with contextlib.suppress(OSError):
            self.process.kill()
        self.process.join(5)
        if self.conn.closed:
            return
        frames = self._frames
        try:  # the rest of the pipe; not waiting (a child of the task may hold its end)
            os.set_blocking(self.conn.fileno(), False)
            while not frames.ended:
                frames.read()
        except OSError:  # BlockingIOError: nothing more for now
            pass
        self.conn.close()
        self._close_alert()

    def stop(self, timeout: float = 2.0) -> None:
        """Ask an idle executor to exit; kill it if it does not within ``timeout``."""
        with contextlib.suppress(OSError, ValueError):
            self.conn.send_bytes(encode(None))
        self.process.join(timeout)
        if self.process.is_alive():
            self.kill()
        else:
            self.conn.close()
            self._close_alert()

    def exit_description(self) -> str:
        """How the process ended, for the job's error: exit code or signal name."""
        code = self.process.exitcode
        if code is None:
            return "is still running"
        if code < 0:
            with contextlib.suppress(ValueError):
                return f"was killed by {signal.Signals(-code).name}"
        return f"exited with code {code}"


def task_executor(secret: bytes | None, json_only: bool = False) -> Executor:
    """The default executor: the orchestrator's `execute_task` with this worker's secret
    (a task's parents' results come with its lease, or in one read)."""
    from ironforge_nb.orchestrator.execute import execute_task

    def execute(config: RedisConfig, lease: Lease) -> bytes | None:
        return execute_task(config, lease, secret, json_only=json_only)

    return execute
