"""`Link`: the queue's round trips, on one connection held by each thread.

A call through ``redis.Redis.execute_command`` borrows a pool connection and polls its socket
(``can_read``) before each command, then records observability data: on this kind of machine
that is 40-60 µs of client CPU per call, more than the Redis work of a single enqueue. The hot
paths (every script call, the idle wait) instead keep one pool connection per thread and send
packed commands on it, with the client's own retry policy (backoff on connection errors and
timeouts, reconnect on the next send) and its hiredis parser. A retry sends the very same
bytes again, so a script whose reply was lost may run twice: every queue script answers such
a resend as it answered the first call, without a second effect (claims carry a request id
and leave a receipt, transitions fenced by a lease token remember how it ended: see
claim_helpers.lua and lease_helpers.lua). The connection goes back to the
pool when its thread ends; a forked child takes a fresh one. `Link.send` sends a command and
leaves its reply to be read later (`Pending.result`), so that the caller works while Redis
answers; any other command of the thread reads that reply first, which keeps the connection's
replies in step. Every user of a client shares its
link (`Link.of`): queues, locks and run handles of one config hold one connection per thread
between them, not one each. A Redis Cluster client keeps the ordinary path (it routes each
command to its node).

Waiting without sleeping (`spinning`): inside that block a thread's calls poll their socket
for the reply, up to a budget, before they block in ``recv``. A process that sleeps until its
reply comes must be woken, and where an idle CPU halts at once (virtual machines whose guest
does not poll before halting, as the ones the benchmarks run on) that wake-up goes through the
host: ~35 µs of a 55 µs PING there (benchmarks/README.md, "The machine's idle CPUs"). Only a
caller alone on its CPU that needs the reply for its next step should spin (an executor's own
claim in a chain, `worker/executor.py`); the bytes sent and the reply read are the same.
"""

from __future__ import annotations

import contextlib
import os
import select
import socket
import threading
import time
import weakref
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

_hiredis_pack: Callable[[tuple[Any, ...]], bytes] | None
try:  # redis[hiredis] is a dependency; without it, redis-py's own packer is used
    from hiredis import pack_command as _hiredis_pack
except ImportError:  # pragma: no cover
    _hiredis_pack = None

__all__ = ["Link", "Pending", "connection_socket", "spinning"]

_SHARED = threading.Lock()  # guards the creation of a client's shared link (`Link.of`)
_PID = [os.getpid()]  # this process's id, updated in a forked child: no getpid(2) per call
os.register_at_fork(after_in_child=lambda: _PID.__setitem__(0, os.getpid()))
_SPIN = threading.local()  # ``budget``: seconds this thread's calls poll for a reply (`spinning`)


@contextlib.contextmanager
def spinning(seconds: float) -> Iterator[None]:
    """Within the block, each `Link.call` of this thread polls its socket for the reply,
    without sleeping, for up to ``seconds`` before it waits in ``recv`` as usual (0: not at
    all). See the module docstring for when that pays; the previous budget comes back after."""
    previous = getattr(_SPIN, "budget", 0.0)
    _SPIN.budget = seconds
    try:
        yield
    finally:
        _SPIN.budget = previous


def connection_socket(conn: Any) -> socket.socket:
    """The socket of a connected redis-py ``Connection``.

    redis-py has no public accessor for it, so this is the one place that reads its private
    ``_sock`` (the same attribute from 5.3.1, the floor `make test-redis-floor` runs, to 8.x;
    pyproject.toml caps redis-py below the next major). ``tests/test_worker_wake.py`` fails
    loudly if a release renames or reshapes it.
    """
    sock = getattr(conn, "_sock", None)
    if not isinstance(sock, socket.socket):
        raise RuntimeError(
            f"redis-py {redis.__version__}: a connected Connection has no socket in `_sock` "
            f"(found {type(sock).__name__}); IronForge needs it to poll for a reply. "
            "Install a redis-py within the range pyproject.toml allows.")
    return sock


def _await_reply(conn: Any, budget: float) -> None:
    """Poll ``conn``'s socket until its reply starts to arrive or ``budget`` seconds pass
    (at once when the socket cannot be found: the call then waits in ``recv`` as usual)."""
    try:
        fd = connection_socket(conn).fileno()
    except RuntimeError:
        return
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    deadline = time.perf_counter() + budget
    while not poller.poll(0) and time.perf_counter() < deadline:
        pass


class _Held:
    """One thread's connection; returned to the pool when the thread's locals are dropped."""

    def __init__(self, pool: Any) -> None:
        self.pid = os.getpid()
        self.conn = conn = pool.get_connection()
        self.pending: Pending | None = None  # a command sent whose reply is not read yet
        weakref.finalize(self, _give_back, pool, conn, self.pid).atexit = False

    def fail(self, _error: BaseException) -> None:
        """Retry hook: drop the broken socket; the next send reconnects."""
        self.conn.disconnect()


def _pack(conn: Any, args: Sequence[Any]) -> list[bytes]:
    """``args`` as the bytes of one command (hiredis's packer when installed)."""
    if _hiredis_pack is not None:
        return [_hiredis_pack(tuple(args))]
    packed: list[bytes] = conn.pack_command(*args)
    return packed


def _give_back(pool: Any, conn: Any, pid: int) -> None:
    if os.getpid() == pid:  # never touch a parent's socket from a forked child
        pool.release(conn)


class Link:
    """Sends commands for one client: `call` (one command) and `wait_then` (two in a row)."""

    def __init__(self, client: Any) -> None:
        self._client = client
        self._pool = client.connection_pool if isinstance(client, redis.Redis) else None
        self._local = threading.local()

    @classmethod
    def of(cls, client: Any) -> Link:
        """The link every user of ``client`` shares, made on first use and kept on the client
        (it lives as long as the client does). Calls on one thread run one after another, so
        sharing its connection is safe."""
        link: Link | None = getattr(client, "_ironforge_link", None)
        if link is None:
            with _SHARED:
                link = getattr(client, "_ironforge_link", None)
                if link is None:
                    link = cls(client)
                    client._ironforge_link = link
        return link

    def _ready(self) -> _Held:
        """This thread's connection, with the reply of a command sent before it read."""
        held: _Held | None = getattr(self._local, "held", None)
        if held is None or held.pid != _PID[0]:
            held = self._local.held = _Held(self._pool)
        elif held.pending is not None:
            held.pending.collect()
        return held

    def call(self, args: Sequence[Any]) -> Any:
        """Run one command; returns its raw reply (bytes, ints, lists), raises its error."""
        if self._pool is None:
            return self._client.execute_command(*args)
        held = self._ready()
        conn = held.conn
        packed = _pack(conn, args)
        budget = getattr(_SPIN, "budget", 0.0)

        def once() -> Any:
            conn.send_packed_command(packed)
            if budget:
                _await_reply(conn, budget)
            return conn.read_response()

        return conn.retry.call_with_retry(once, held.fail)

    def wait_then(self, wait: Sequence[Any], args: Sequence[Any]) -> Any:
        """Send a blocking command and another one behind it in a single write.

        Redis runs the second command as soon as the first unblocks (or times out), before
        the caller has even woken up: one wake-up and no round trip between the two. Returns
        the second command's reply, or its error (a `ResponseError`) as the value.
        """
        if self._pool is None:
            self._client.execute_command(*wait)
            try:
                return self._client.execute_command(*args)
            except ResponseError as err:
                return err
        held = self._ready()
        conn = held.conn
        packed = [b"".join(_pack(conn, wait) + _pack(conn, args))]  # one write

        def once() -> Any:
            conn.send_packed_command(packed)
            first: ResponseError | None = None
            try:
                conn.read_response()
            except ResponseError as err:  # read the second reply anyway: keep the stream in step
                first = err
            try:
                reply = conn.read_response()
            except ResponseError as err:
                reply = err
            if first is not None:
                raise first
            return reply

        return conn.retry.call_with_retry(once, held.fail)

    def send(self, args: Sequence[Any]) -> Pending:
        """Send one command now; its reply is read by `Pending.result` (or by this thread's
        next command on the link, which reads it first and keeps it for `result`). A cut
        connection is handled when the reply is read: the command is sent again with the
        client's retry policy, as `call` would (every script answers a resend as it answered
        the first call). A Redis Cluster client runs the command at once."""
        pending = Pending(self, args)
        if self._pool is None:
            pending.collect()
            return pending
        held = self._ready()
        conn = held.conn
        try:
            conn.send_packed_command(_pack(conn, args))
        except (RedisConnectionError, RedisTimeoutError) as exc:
            held.fail(exc)
            return pending  # `collect` sends it again
        pending.held = held
        held.pending = pending
        return pending


class Pending:
    """A command `Link.send` sent, and its reply once read."""

    def __init__(self, link: Link, args: Sequence[Any]) -> None:
        self._link = link
        self._args = args
        self.held: _Held | None = None  # the connection it was sent on, until its reply is read
        self._done = False
        self._reply: Any = None
        self._error: Exception | None = None

    def collect(self) -> None:
        """Read the reply (once), or run the command again after a cut connection."""
        if self._done:
            return
        held, self.held = self.held, None
        try:
            if held is None:  # not sent (cut connection, or a cluster client): run it now
                self._reply = self._link.call(self._args)
            else:
                held.pending = None
                try:
                    self._reply = held.conn.read_response()
                except (RedisConnectionError, RedisTimeoutError) as exc:
                    held.fail(exc)
                    self._reply = self._link.call(self._args)
                except BaseException as exc:  # interrupted: the reply may still come; drop
                    if not isinstance(exc, ResponseError):  # the socket so that no later
                        held.fail(exc)                      # command reads it as its own
                    raise
        except Exception as exc:  # the command's error, raised to the caller by `result`
            self._error = exc
        self._done = True

    def result(self) -> Any:
        """The reply (waiting for it if need be); raises the command's error."""
        self.collect()
        if self._error is not None:
            raise self._error
        return self._reply
