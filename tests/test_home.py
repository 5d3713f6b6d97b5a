"""The local home: ``ifn.connect()``'s server outlives the kernel and is joined by the next one."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

import ironforge_nb as ifn
from ironforge_nb.errors import InvalidOptionError, ServerError
from ironforge_nb.local import RedisServer
from ironforge_nb.local.home import Home
from ironforge_nb.orchestrator import codec
from tests.helpers import wait_aof_written
from tests.test_connect import gone, wait_gone

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def home(tmp_path: Path) -> Iterator[Home]:
    """A home of this test's own; its server is stopped afterwards."""
    place = Home(tmp_path / "home")
    yield place
    place.stop()


_KERNEL = """
import json, sys
import ironforge_nb as ifn

def double(x):
    return 2 * x

conn = ifn.connect(workers=1, home=sys.argv[1])
p = ifn.Pipeline("kernel")
p.task("double", double, params={"x": 21})
run = p.submit(run_id="before-restart").wait(timeout=60)
print(json.dumps([conn.config.url, run.status.value]), flush=True)
conn.close()
"""


def _kernel(home: Home) -> tuple[str, str]:
    """Run a short-lived 'kernel' process that connects to ``home``, runs a pipeline, exits."""
    out = subprocess.run([sys.executable, "-c", _KERNEL, str(home.path)], cwd=REPO,
                         capture_output=True, text=True, timeout=120,
                         env={**os.environ, "PYTHONPATH": str(REPO)}, check=True)
    url, status = json.loads(out.stdout.splitlines()[-1])
    return url, status


def test_runs_survive_the_kernel_that_made_them(home: Home) -> None:
    """A run made by a process that has exited is readable by the next one, on the same server."""
    url, status = _kernel(home)
    assert status == "succeeded"
    conn = ifn.connect(workers=0, home=home.path)
    try:
        assert conn.config.url == url and conn.server is None and conn.home is not None
        assert ifn.Run("before-restart").result("double") == 42
        assert conn.secret == home.secret()  # the home's secret: its results verify
    finally:
        conn.close()
    assert home.running() is not None  # close() leaves the home's server running


def test_two_connections_share_one_server(home: Home) -> None:
    """Two processes connecting at the same time to an empty home start exactly one server."""
    code = "import sys, ironforge_nb as ifn; print(ifn.connect(workers=0, home=sys.argv[1]).url)"
    procs = [subprocess.Popen([sys.executable, "-c", code, str(home.path)], cwd=REPO,
                              stdout=subprocess.PIPE, text=True,
                              env={**os.environ, "PYTHONPATH": str(REPO)}) for _ in range(2)]
    urls = {p.communicate(timeout=60)[0].strip() for p in procs}
    assert len(urls) == 1 and all(p.returncode == 0 for p in procs)
    assert home.running() is not None


def test_a_crashed_server_is_replaced_and_its_data_kept(home: Home) -> None:
    """server.json of a SIGKILLed server is stale: a new server starts and loads the AOF."""
    client = redis.Redis.from_url(home.url())
    client.set("kept", "yes")
    wait_aof_written(client)  # everysec: a write still in the AOF buffer dies with SIGKILL
    client.close()
    state = json.loads((home.path / "server.json").read_text())
    os.kill(state["pid"], signal.SIGKILL)
    assert wait_gone([state["pid"]]) == []
    client = redis.Redis.from_url(home.url())
    try:
        assert client.get("kept") == b"yes"
        assert json.loads((home.path / "server.json").read_text())["pid"] != state["pid"]
    finally:
        client.close()


def test_a_reused_port_is_not_joined(home: Home, fresh_server: type[RedisServer]) -> None:
    """A file naming a port where some other redis-server now answers is stale, not joined."""
    home.url()
    state = json.loads((home.path / "server.json").read_text())
    home.stop()
    other = fresh_server()
    (home.path / "server.json").write_text(json.dumps({**state, "url": other.url}))
    assert home.url() not in (other.url, state["url"])
    assert redis.Redis.from_url(other.url).dbsize() == 0  # nothing written to the stranger


def test_a_silent_live_server_is_reported_not_replaced(home: Home) -> None:
    """The home's own server stopped (SIGSTOP): connecting names its pid and starts nothing."""
    home.url()
    pid = json.loads((home.path / "server.json").read_text())["pid"]
    os.kill(pid, signal.SIGSTOP)
    try:
        with pytest.raises(ServerError, match=f"pid {pid}"):
            home.url(timeout=1)
    finally:
        os.kill(pid, signal.SIGCONT)
    assert json.loads((home.path / "server.json").read_text())["pid"] == pid


def test_stop_shuts_the_server_down(home: Home) -> None:
    """Home.stop() ends the server and removes server.json; the next url() starts a new one."""
    home.url()
    pid = json.loads((home.path / "server.json").read_text())["pid"]
    assert home.stop() is True and gone(pid)
    assert not (home.path / "server.json").exists() and home.running() is None
    assert home.stop() is False
    with pytest.raises(ServerError, match="no redis-server is running"):
        home.url(start=False)


def test_a_terminal_worker_joins_the_home(home: Home) -> None:
    """``ironforge worker --home DIR`` runs the notebook's pickled tasks: same server, secret."""
    conn = ifn.connect(workers=0, home=home.path)
    worker = subprocess.Popen([sys.executable, "-m", "ironforge_nb.worker", "--home",
                               str(home.path)], cwd=REPO, stderr=subprocess.DEVNULL,
                              env={**{k: v for k, v in os.environ.items()
                                      if k != "IRONFORGE_SECRET"}, "PYTHONPATH": str(REPO)})
    try:
        p = ifn.Pipeline("terminal")
        p.task("hello", lambda: "hello from the terminal")
        run = p.submit().wait(timeout=60)
        assert run.result("hello") == "hello from the terminal"
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait(30)
        conn.close()


def test_the_home_cli_shows_and_stops_the_server(home: Home) -> None:
    """``ironforge home`` prints the running server (password masked); ``stop`` stops it."""
    home.url()
    cli = [sys.executable, "-m", "ironforge_nb.cli", "home", "--dir", str(home.path)]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    shown = subprocess.run(cli, capture_output=True, text=True, env=env, timeout=60)
    assert shown.returncode == 0 and "***" in shown.stdout and home.secret().decode() \
        not in shown.stdout
    stopped = subprocess.run([*cli[:4], "stop", *cli[4:]], capture_output=True, text=True,
                             env=env, timeout=60)
    assert "stopped" in stopped.stdout and home.running() is None


def test_home_none_is_a_throwaway_server() -> None:
    """connect(home=None) starts a server of its own, with a fresh secret, gone at close()."""
    conn = ifn.connect(workers=0, home=None)
    assert conn.server is not None and conn.home is None
    pid = conn.server.pid
    conn.close()
    assert pid is not None and wait_gone([pid]) == [] and codec.default_secret() is None


def test_a_bad_home_is_refused() -> None:
    """home= must be True, a directory or None."""
    with pytest.raises(InvalidOptionError, match="home"):
        ifn.connect(workers=0, home=3)  # type: ignore[arg-type]


def test_the_default_home_follows_the_environment(monkeypatch: pytest.MonkeyPatch,
                                                  tmp_path: Path) -> None:
    """$IRONFORGE_HOME wins; else $XDG_CACHE_HOME/ironforge."""
    monkeypatch.setenv("IRONFORGE_HOME", str(tmp_path / "h"))
    assert Home().path == (tmp_path / "h").resolve()
    monkeypatch.delenv("IRONFORGE_HOME")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    assert Home().path == (tmp_path / "cache" / "ironforge").resolve()


_OWNER = """
import sys, time
from ironforge_nb.local.home import temporary_home

with temporary_home() as home:
    print(home.path, flush=True)
    time.sleep(120)
"""


def test_a_temporary_homes_server_dies_with_its_sigkilled_owner() -> None:
    """temporary_home() (test sessions) starts its server tied to its process: a SIGKILL of
    that process (no cleanup runs) still takes the server down, so no redis-server leaks."""
    owner = subprocess.Popen([sys.executable, "-c", _OWNER], cwd=REPO, text=True,
                             stdout=subprocess.PIPE,
                             env={**os.environ, "PYTHONPATH": str(REPO)})
    try:
        assert owner.stdout is not None
        path = Path(owner.stdout.readline().strip())
        state = json.loads((path / "server.json").read_text())
        assert redis.Redis.from_url(state["url"]).ping()
        os.kill(owner.pid, signal.SIGKILL)
        owner.wait(timeout=30)
        assert wait_gone([int(state["pid"])]) == []
    finally:
        if owner.poll() is None:
            owner.kill()
            owner.wait()
