"""`LocalWorkers`: worker processes on this machine, owned by the caller (``ifn.connect()``).

Each is ``python -m ironforge_nb.worker ...``, the very code ``ironforge worker`` runs, started
with the caller's secret in ``IRONFORGE_SECRET``. They must not outlive their owner (a notebook
kernel that dies): on Linux they get SIGTERM when it dies (``PR_SET_PDEATHSIG``, as the embedded
redis-server does), and everywhere they also watch their parent pid and stop once it is gone.
Their output goes to a log file each (`log_tail`), since a notebook shows no subprocess output.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from ironforge_nb.errors import InvalidOptionError, ServerError
from ironforge_nb.local.server import _pdeathsig_preexec
from ironforge_nb.queue import RedisConfig

__all__ = ["LocalWorkers"]


class LocalWorkers:
    """``count`` worker processes serving ``queues`` of ``config``'s namespace.

    ``secret`` (bytes) is handed over in ``IRONFORGE_SECRET``; ``extra_args`` go to every
    worker's command line (e.g. ``["--executor", "pkg.mod:fn"]``).
    """

    def __init__(self, config: RedisConfig, count: int = 2, queues: Sequence[str] = ("default",),
                 *, secret: bytes | None = None, concurrency: int = 1,
                 extra_args: Sequence[str] = ()) -> None:
        if isinstance(count, bool) or not isinstance(count, int) or count < 0:
            raise InvalidOptionError("workers", count, "an int >= 0")
        self.config = config
        self.count = count
        self.queues = tuple(queues)
        self.concurrency = concurrency
        self._secret = secret
        self._extra = tuple(extra_args)
        self._procs: list[subprocess.Popen[bytes]] = []
        self._names: list[str] = []
        self._dir: Path | None = None

    @property
    def pids(self) -> list[int]:
        """Process ids of the workers still running."""
        return [p.pid for p in self._procs if p.poll() is None]

    @property
    def names(self) -> list[str]:
        """The workers' names in the registry."""
        return list(self._names)

    def start(self, timeout: float = 30.0) -> LocalWorkers:
        """Start the workers and wait until each has registered; returns ``self``.

        Raises `ServerError`, with the log of the failing worker, if one exits or stays silent.
        """
        if self._procs or self.count == 0:
            return self
        self._dir = Path(tempfile.mkdtemp(prefix="ironforge-workers-"))
        tag = f"local-{os.getpid()}-{os.urandom(3).hex()}"
        self._names = [f"{tag}-{i}" for i in range(self.count)]
        for name in self._names:
            self._procs.append(self._spawn(name))
        try:
            self._wait_registered(timeout)
        except BaseException:
            self.stop(grace=0)
            raise
        return self

    def stop(self, grace: float = 10.0) -> None:
        """SIGTERM every worker, wait for them (they finish or hand back their tasks within
        ``grace`` s), then SIGKILL any left; remove the log dir."""
        for proc in self._procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + grace + 5.0
        for proc in self._procs:
            try:
                proc.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self._procs = []
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None

    def log_tail(self, index: int = 0, lines: int = 20) -> str:
        """The last lines worker ``index`` wrote (its log), for error messages."""
        if self._dir is None or not 0 <= index < len(self._names):
            return ""
        with contextlib.suppress(OSError):
            text = (self._dir / f"{self._names[index]}.log").read_text(errors="replace")
            return "\n".join(text.splitlines()[-lines:])
        return ""

    def _command(self, name: str) -> list[str]:
        return [sys.executable, "-m", "ironforge_nb.worker",
                "--namespace", self.config.namespace, "--queues", ",".join(self.queues),
                "--concurrency", str(self.concurrency), "--name", name,
                "--parent-pid", str(os.getpid()),
                # the output capture's settings of this config (extra args may override them)
                "--task-log-bytes", str(self.config.task_log_bytes),
                "--task-log-level", self.config.task_log_level, *self._extra]

    def _spawn(self, name: str) -> subprocess.Popen[bytes]:
        env = dict(os.environ)
        env.pop("IRONFORGE_SECRET", None)
        # the URL (password included) goes by the environment, not argv (`ps` shows argv);
        # full_url keeps redis+cluster:// so a cluster's workers get a cluster client
        env["IRONFORGE_REDIS_URL"] = self.config.full_url
        if self._secret is not None:
            env["IRONFORGE_SECRET"] = self._secret.decode()
        env.pop("IRONFORGE_RESULT_STORE", None)
        if self.config.result_store:  # where big results go (orchestrator.store)
            env["IRONFORGE_RESULT_STORE"] = self.config.result_store
        # the workers must import this very ironforge_nb (and the caller's modules)
        env["PYTHONPATH"] = os.pathsep.join(p for p in [os.getcwd(), *sys.path] if p)
        assert self._dir is not None
        with open(self._dir / f"{name}.log", "ab") as log:
            return subprocess.Popen(
                self._command(name), stdin=subprocess.DEVNULL, stdout=log,
                stderr=subprocess.STDOUT, env=env, preexec_fn=_pdeathsig_preexec(),
                start_new_session=True,  # Ctrl-C in a terminal stops the notebook, not them
            )

    def _wait_registered(self, timeout: float) -> None:
        from ironforge_nb.worker.registry import list_workers

        deadline = time.monotonic() + timeout
        while True:
            for i, proc in enumerate(self._procs):
                if proc.poll() is not None:
                    raise ServerError(f"local worker {self._names[i]} exited with code "
                                      f"{proc.returncode} while starting; its log ends with:\n"
                                      f"{self.log_tail(i)}")
            seen = {w.name for w in list_workers(self.config)}
            if seen.issuperset(self._names):
                return
            if time.monotonic() > deadline:
                raise ServerError(f"local workers did not register within {timeout:g} s; the "
                                  f"first one's log ends with:\n{self.log_tail(0)}")
            time.sleep(0.05)
