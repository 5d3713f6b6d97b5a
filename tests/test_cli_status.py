"""``ironforge status``, ``runs`` and ``dead-letters`` against a real redis-server: the same facts
as the dashboard (they share `overview`), printed as text."""

from __future__ import annotations

import subprocess
import sys

import pytest

from ironforge_nb.cli import main
from ironforge_nb.orchestrator import submit
from ironforge_nb.queue import Queue, RedisConfig
from ironforge_nb.status import JobStatus
from tests.helpers import claim, diamond, failing
from tests.runloop import work

pytestmark = pytest.mark.usefixtures("signing_secret")


def run_cli(config: RedisConfig, capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    """``ironforge <argv> --url ... --namespace ...``; returns stdout (exit code must be 0)."""
    assert main([*argv, "--url", config.url, "--namespace", config.namespace]) == 0
    return capsys.readouterr().out


def dead(q: Queue, error: str = "ValueError: no such region") -> str:
    """A plain job of ``q`` in its dead-letter queue."""
    jid = q.enqueue(b"x", max_attempts=1)
    q.fail(claim(q), f"Traceback (most recent call last):\n{error}")
    return jid


def test_status_shows_queues_runs_and_dead_letters(config: RedisConfig,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    """One snapshot: the queue's counts, the finished run with a full bar, the dead letter."""
    run = submit(diamond(), config=config)
    work(config)
    jid = dead(Queue("plain", config))
    out = run_cli(config, capsys, "status")
    assert f"namespace {config.namespace} on {config.url}" in out
    queue_lines = {line.split()[0]: line.split()[1:] for line in
                   out.split("QUEUES\n")[1].split("\n\n")[0].splitlines()[1:]}
    assert queue_lines["default"][:6] == ["0", "0", "0", "4", "0", "0"]
    assert queue_lines["plain"][:6] == ["0", "0", "0", "0", "1", "0"]
    assert f"{run.id}  diamond   succeeded  [##########] 4/4" in out
    assert "WORKERS (0 live)\nno live workers" in out
    assert "DEAD LETTERS (1)" in out and jid in out and "ValueError: no such region" in out


def test_status_watch_redraws_until_count(config: RedisConfig) -> None:
    """--watch redraws every --interval (as a separate block when stdout is no terminal)."""
    Queue("default", config).enqueue(b"x")
    out = subprocess.run(
        [sys.executable, "-m", "ironforge_nb.cli", "status", "--watch", "--count", "3",
         "--interval", "0.05", "--url", config.url, "--namespace", config.namespace],
        capture_output=True, text=True, timeout=60, check=True).stdout
    assert out.count(f"namespace {config.namespace} on") == 3
    assert "\x1b[" not in out  # no ANSI codes when stdout is not a terminal


def test_runs_lists_recent_runs_newest_first(config: RedisConfig,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    """One line per run with its status and ended tasks, newest first; --limit bounds it."""
    first = submit(diamond(), config=config)
    work(config)
    second = submit(failing(), config=config)
    work(config)
    lines = run_cli(config, capsys, "runs").splitlines()
    assert lines[0].split()[:3] == ["run", "pipeline", "status"]
    assert [line.split()[0] for line in lines[1:]] == [second.id, first.id]
    assert lines[1].split()[2] == "failed" and lines[2].split()[2] == "succeeded"
    assert len(run_cli(config, capsys, "runs", "--limit", "1").splitlines()) == 2


def test_dead_letters_list_requeue_and_purge(config: RedisConfig,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    """List, requeue one by id, requeue all, purge: each says what it did."""
    q = Queue("plain", config)
    a, b, c = dead(q), dead(q), dead(q)
    listed = run_cli(config, capsys, "dead-letters")
    assert all(jid in listed for jid in (a, b, c))
    assert run_cli(config, capsys, "dead-letters", "--requeue", a) == f"requeued job {a}\n"
    assert q.info(a).status is JobStatus.QUEUED
    assert sorted(run_cli(config, capsys, "dead-letters", "--all").splitlines()) == sorted(
        [f"requeued job {b}", f"requeued job {c}"])  # oldest first (same ms: by id)
    for _ in range(3):
        q.fail(claim(q), "again")
    assert run_cli(config, capsys, "dead-letters", "--purge") == "purged 3 dead letters\n"
    assert run_cli(config, capsys, "dead-letters") == "no dead letters\n"


def test_requeue_of_an_unknown_job_is_a_clear_error(config: RedisConfig,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    """An id that names no job exits 1 with the error, nothing else printed."""
    code = main(["dead-letters", "--requeue", "no-such-job", "--url", config.url,
                 "--namespace", config.namespace])
    captured = capsys.readouterr()
    assert code == 1 and captured.out == ""
    assert "no-such-job" in captured.err and captured.err.startswith("ironforge: error:")


def test_terminal_views_load_no_widgets() -> None:
    """The text views and the overview import no ipywidgets (``ironforge status`` stays light)."""
    code = ("import sys, ironforge_nb.widgets.board_text, ironforge_nb.orchestrator.overview\n"
            "print('ipywidgets' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == "False"
