"""The local home: a directory whose redis-server outlives the kernel that started it.

``ifn.connect()`` with no URL uses a home (``$IRONFORGE_HOME``, else ``~/.cache/ironforge``, or
``$XDG_CACHE_HOME/ironforge``): runs, results and the result cache survive a kernel restart,
and a second notebook or a terminal ``ironforge worker --home`` joins the same server. Layout::

    <home>/redis/        the server's dir: redis.conf, redis.log, the AOF (appendonly, everysec)
    <home>/server.json   url, pid, port, the server's INFO run_id, version, the home's id
    <home>/server.lock   flock'ed while a process checks, starts or stops the server
    <home>/secret        the signing secret of every kernel and worker of this home (0600)
    <home>/results/      the default result store (big results, see orchestrator.store)

Joining, with the lock held: read ``server.json``, connect, PING (a server still loading its
AOF is waited for), then check identity: the home's marker key must hold the home's id and
``INFO``'s ``run_id`` must be the file's. Anything else makes the file stale (a crashed or
stopped server, a reused port): a new server starts on the same dir, loading the AOF. A pid
alone is never trusted; a live process running this home's ``redis.conf`` that does not answer
is reported, never replaced (two servers on one AOF would corrupt it).

The server is detached (`RedisServer` ``detached=True``): closing a connection or ending the
kernel leaves it running; `Home.stop` (``ironforge home stop``) shuts it down. Local workers
are not shared: each kernel's ``connect()`` starts its own, which stop with it.

A `temporary_home` (test sessions) is the exception: its process starts the server at once,
tied to itself like any non-detached `RedisServer` (SIGTERM on parent death, else a watchdog),
so a test run that is SIGKILLed leaves no redis-server behind. Processes it starts (kernels,
workers) join that server; only if it crashed and one of them started a new one would that
one be detached.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import secrets
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ironforge_nb.errors import ServerError
from ironforge_nb.local.server import RedisServer
from ironforge_nb.queue.keys import HOME_MARKER

__all__ = ["ENV_HOME", "Home", "default_home", "temporary_home"]

ENV_HOME = "IRONFORGE_HOME"


def default_home() -> Path:
    """``$IRONFORGE_HOME``, else ``$XDG_CACHE_HOME/ironforge``, else ``~/.cache/ironforge``."""
    env = os.environ.get(ENV_HOME)
    if env:
        return Path(env).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "ironforge"


class Home:
    """A home directory and its shared redis-server (started on first use)."""

    def __init__(self, path: str | os.PathLike[str] | None = None, *,
                 owned: bool = False) -> None:
        """``owned``: a server this object starts dies with this process (`temporary_home`)
        instead of outliving it."""
        self.path = Path(path).expanduser().resolve() if path else default_home().resolve()
        self.owned = owned

    @property
    def results_dir(self) -> Path:
        """The default result store of this home."""
        return self.path / "results"

    def __repr__(self) -> str:
        return f"<Home {self.path}>"

    # ------------------------------------------------------------------ the secret

    def secret(self) -> bytes:
        """The home's signing secret, created (mode 0600) on first use."""
        path = self.path / "secret"
        with contextlib.suppress(FileNotFoundError):
            return path.read_bytes().strip()
        self.path.mkdir(parents=True, exist_ok=True)
        value = secrets.token_hex(32).encode()
        tmp = path.with_name(f".secret-{os.getpid()}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(value)
        try:  # the first writer wins; a racing one reads the winner's value
            os.link(tmp, path)
        except FileExistsError:
            pass
        finally:
            tmp.unlink()
        return path.read_bytes().strip()

    def _password(self) -> str:
        return hashlib.sha256(b"ironforge-home-redis:" + self.secret()).hexdigest()

    # ------------------------------------------------------------------ the server

    def url(self, *, start: bool = True, timeout: float = 10.0) -> str:
        """The URL of the home's running server, joined or (``start``) started now.

        Raises `ServerError` when there is none and ``start`` is False, or when a live
        process of this home's server does not answer within ``timeout`` seconds.
        """
        with self._locked():
            state = self._healthy(self._state(), timeout)
            if state is not None:
                return str(state["url"])
            if not start:
                raise ServerError(f"no redis-server is running for the home {self.path}")
            return self._start(timeout)

    def running(self) -> dict[str, Any] | None:
        """``server.json`` of the running server (url masked), or None when none answers."""
        with self._locked():
            state = self._healthy(self._state(), 5.0)
        if state is None:
            return None
        from ironforge_nb.queue.config import RedisConfig

        return {**state, "url": RedisConfig(url=str(state["url"])).masked_url}

    def stop(self, timeout: float = 10.0) -> bool:
        """Shut the home's server down (its AOF is flushed first); False if none was running."""
        import redis

        with self._locked():
            state = self._healthy(self._state(), timeout)
            if state is None:
                return False
            client = redis.Redis.from_url(str(state["url"]), socket_timeout=timeout)
            with contextlib.suppress(redis.exceptions.ConnectionError):
                client.shutdown()
            pid = int(state["pid"])
            deadline = time.monotonic() + timeout
            while _alive(pid) and time.monotonic() < deadline:
                time.sleep(0.02)
            (self.path / "server.json").unlink(missing_ok=True)
            return True

    # ------------------------------------------------------------------ internals

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        self.path.mkdir(parents=True, exist_ok=True)
        with open(self.path / "server.lock", "a+") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    def _state(self) -> dict[str, Any] | None:
        try:
            state = json.loads((self.path / "server.json").read_text())
        except (OSError, ValueError):
            return None
        return state if isinstance(state, dict) and {"url", "pid", "run_id"} <= set(state) \
            else None

    def _healthy(self, state: dict[str, Any] | None, timeout: float) -> dict[str, Any] | None:
        """``state`` if its server answers as this home's, None if the file is stale."""
        import redis

        if state is None:
            return None
        client = redis.Redis.from_url(str(state["url"]), socket_timeout=2.0,
                                      socket_connect_timeout=2.0)
        deadline = time.monotonic() + timeout
        try:
            while True:
                try:
                    marker = client.get(HOME_MARKER)
                    run_id = client.info("server").get("run_id")
                    break
                except redis.exceptions.BusyLoadingError:
                    if time.monotonic() > deadline:
                        raise ServerError(f"the home's redis-server ({state['url']}) is still "
                                          f"loading its data after {timeout:g} s") from None
                    time.sleep(0.05)
        except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError,
                redis.exceptions.ResponseError):
            self._refuse_silent(state)
            return None
        finally:
            client.close()
        if marker != str(state.get("home_id")).encode() or run_id != state["run_id"]:
            self._refuse_silent(state)
            return None
        return state

    def _refuse_silent(self, state: dict[str, Any]) -> None:
        """Raise if a live server of this home does not answer; return if the file is stale."""
        pid = int(state.get("pid", 0))
        if pid > 0 and _serves(pid, self.path / "redis"):
            raise ServerError(f"the home's redis-server (pid {pid}) runs but does not answer at "
                              f"{state['url']}; stop it (kill {pid}) and connect again")

    def _start(self, timeout: float) -> str:
        import redis

        server = RedisServer(data_dir=self.path / "redis", appendonly=True,
                             password=self._password(), detached=not self.owned).start(timeout)
        client = redis.Redis.from_url(server.url)
        try:
            home_id = secrets.token_hex(8)
            client.set(HOME_MARKER, home_id)
            state = {"url": server.url, "pid": server.pid, "port": server.port,
                     "run_id": client.info("server")["run_id"], "version": server.version,
                     "home_id": home_id, "started": time.time()}
        finally:
            client.close()
        tmp = self.path / f".server-{os.getpid()}.json"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)  # holds the password
        with os.fdopen(fd, "w") as fh:
            json.dump(state, fh)
        os.replace(tmp, self.path / "server.json")
        return server.url


@contextlib.contextmanager
def temporary_home() -> Iterator[Home]:
    """A fresh home in a temp dir, made ``$IRONFORGE_HOME`` for this process and its children
    while the block runs; then its server is stopped and the dir removed. Test sessions use it
    (tests/conftest.py, notebooks/conftest.py), so that every run starts from an empty home.

    Its server is started here and dies with this process even when the process is killed
    (SIGKILL included: see `RedisServer`), so an interrupted test run leaves none running."""
    import shutil
    import tempfile

    path = tempfile.mkdtemp(prefix="ironforge-home-")
    before = os.environ.get(ENV_HOME)
    os.environ[ENV_HOME] = path
    home = Home(path, owned=True)
    try:
        home.url()  # started by (and tied to) this process, before any child joins it
        yield home
    finally:
        if before is None:
            os.environ.pop(ENV_HOME, None)
        else:
            os.environ[ENV_HOME] = before
        home.stop()
        shutil.rmtree(path, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    with contextlib.suppress(OSError):  # a zombie is not alive
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat.rsplit(")", 1)[1].split()[0] != "Z"
    return True


def _serves(pid: int, data_dir: Path) -> bool:
    """True if process ``pid`` is alive and works in ``data_dir`` (redis-server rewrites its
    command line, so Linux's /proc/<pid>/cwd tells; elsewhere a live pid is taken as the
    home's server, the cautious answer)."""
    if not _alive(pid):
        return False
    try:
        return os.readlink(f"/proc/{pid}/cwd") == str(data_dir)
    except FileNotFoundError:
        return not Path("/proc/self").exists()
    except OSError:  # another user's process: not ours
        return False
