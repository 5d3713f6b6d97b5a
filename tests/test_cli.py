"""The ``ironforge`` command: ``server`` and ``schema``."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import redis

from ironforge_nb.cli import main
from ironforge_nb.status import json_schema

CLI = [sys.executable, "-m", "ironforge_nb.cli"]


def _start_server(*extra: str) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [*CLI, "server", *extra], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    return proc, proc.stdout.readline().strip()


def test_schema_prints_json_schema(capsys: pytest.CaptureFixture[str]) -> None:
    """``ironforge schema`` prints exactly `json_schema()` as JSON."""
    assert main(["schema"]) == 0
    assert json.loads(capsys.readouterr().out) == json_schema()


def test_console_script_installed() -> None:
    """The ``ironforge`` console script next to the interpreter runs ``schema``."""
    script = Path(sys.executable).with_name("ironforge")
    if not script.exists():
        pytest.skip("package not installed with its console script in this environment")
    out = subprocess.run([str(script), "schema"], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout)["$defs"]["JobStatus"]["enum"]


def test_no_command_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    """Running ``ironforge`` without a command exits with argparse's usage error."""
    with pytest.raises(SystemExit) as exit_info:
        main([])
    assert exit_info.value.code == 2
    assert "COMMAND" in capsys.readouterr().err


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_server_runs_until_signal(sig: signal.Signals) -> None:
    """``ironforge server`` prints a working URL, then stops cleanly (exit 0) on a signal."""
    proc, url = _start_server()
    try:
        client = redis.Redis.from_url(url)
        assert client.ping()
        proc.send_signal(sig)
        assert proc.wait(timeout=15) == 0
        with pytest.raises(redis.ConnectionError):
            redis.Redis.from_url(url, retry=None).ping()
        client.close()
    finally:
        proc.kill()
        proc.wait()


def test_server_port_and_appendonly_options() -> None:
    """``--port`` and ``--appendonly`` reach the server."""
    from ironforge_nb.local.server import free_port

    for _ in range(5):  # a port free when picked may be bound by any process before the server
        port = free_port()
        proc, url = _start_server("--port", str(port), "--appendonly")
        if url or "Address already in use" not in proc.communicate(timeout=30)[1]:
            break
    try:
        assert url == f"redis://127.0.0.1:{port}/0"
        client = redis.Redis.from_url(url)
        assert client.config_get("appendonly") == {"appendonly": "yes"}
        client.close()
    finally:
        proc.terminate()
        proc.wait(timeout=15)


def test_server_without_binary_fails_clearly() -> None:
    """A missing redis-server makes ``ironforge server`` exit 1 with the install hint."""
    done = subprocess.run(
        [*CLI, "server", "--binary", "/nonexistent/redis-server"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 1
    assert "apt-get install redis-server" in done.stderr
    assert "Traceback" not in done.stderr


def test_worker_help_states_the_default_prefetch() -> None:
    """The --prefetch help quotes the worker's real default (the CLI does not import it)."""
    from ironforge_nb.cli import build_parser
    from ironforge_nb.worker.slots import PREFETCH

    worker = build_parser()._subparsers._group_actions[0].choices["worker"]  # type: ignore[union-attr]
    [action] = [a for a in worker._actions if "--prefetch" in a.option_strings]
    assert f"default: {PREFETCH};" in (action.help or "")
