"""The namespace overview (`overview`), `ifn.dashboard()` driven by `refresh()`, and its
requeue / purge buttons, against a real redis-server (and a real worker where one runs a job).

Widget tests read widget values (no browser); the dashboard is made outside a kernel, so it
also prints its text view once, which a test checks.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

import ironforge_nb as ifn
from ironforge_nb.errors import InvalidOptionError
from ironforge_nb.local import RedisServer
from ironforge_nb.orchestrator import submit
from ironforge_nb.orchestrator.overview import overview, purge, requeue, requeue_all
from ironforge_nb.queue import Queue, RedisConfig
from ironforge_nb.status import JobStatus, RunStatus
from ironforge_nb.widgets.board_text import status_text
from tests.helpers import claim, failing, signing_workers, wait_for
from tests.runloop import SECRET, work
from tests.test_monitor_kernel import FOLLOWERS, Kernel
from tests.worker_tasks import EXECUTOR, command

pytestmark = pytest.mark.usefixtures("signing_secret")


def dead_job(q: Queue, payload: bytes = b"x") -> str:
    """A plain job of ``q`` failed for good (in its dead-letter queue)."""
    jid = q.enqueue(payload, max_attempts=1)
    lease = claim(q)
    assert lease.job_id == jid
    q.fail(lease, "Traceback (most recent call last):\n  ...\nValueError: bad row 7")
    return jid


def test_overview_counts_each_queue_by_status(config: RedisConfig) -> None:
    """Queued, active, completed and failed jobs are counted per queue, with a throughput."""
    q, other = Queue("q1", config), Queue("q2", config)
    for _ in range(4):
        q.enqueue(b"x")
    q.complete(claim(q))
    claim(q, worker="w-test")  # stays active
    dead = dead_job(other)
    data = overview(config)
    counts = {row["name"]: row["counts"] for row in data["queues"]}
    assert counts["q1"] == {"queued": 2, "scheduled": 0, "active": 1, "completed": 1,
                            "failed": 0, "cancelled": 0}
    assert counts["q2"]["failed"] == 1
    rates = {row["name"]: row["rate"] for row in data["queues"]}
    assert rates["q1"] > 0 and rates["q2"] == 0
    assert data["dead_total"] == 1
    assert [(d["job"], d["queue"], d["error"]) for d in data["dead"]] == [
        (dead, "q2", "ValueError: bad row 7")]
    assert data["workers"] == []  # the claim above is no registered worker


def test_overview_shows_what_a_live_worker_runs(config: RedisConfig) -> None:
    """A real worker is listed with the job it runs now, its progress and message."""
    q = Queue("default", config)
    with signing_workers(config, SECRET) as start:
        pool = start(1, "--executor", EXECUTOR)
        jid = q.enqueue(command("progress", steps=[[0.5, "halfway"]], hold=30))

        def running() -> Any:
            workers = overview(config)["workers"]
            return workers and workers[0]["jobs"] and workers[0]["jobs"][0]["message"]

        wait_for(running)
        worker = overview(config)["workers"][0]
        assert worker["name"] == pool.names[0] and worker["queues"] == ["default"]
        job = worker["jobs"][0]
        assert (job["job"], job["queue"], job["progress"], job["message"], job["attempt"]) == (
            jid, "default", 0.5, "halfway", 1)
        assert f"job {jid} (attempt 1" in status_text(overview(config))


def test_dashboard_refresh_shows_queues_runs_and_dead_letters(
        config: RedisConfig, capsys: pytest.CaptureFixture[str]) -> None:
    """refresh() reads the namespace: queue table, a row per run with its bar, a row per dead
    letter; outside a kernel the dashboard prints its text view once."""
    run = submit(failing(), config=config)
    work(config)
    assert run.status is RunStatus.FAILED
    dead_job(Queue("plain", config))
    board = ifn.dashboard(config, interval=0.5)
    try:
        printed = capsys.readouterr().out
        assert f"namespace {config.namespace} on" in printed and "DEAD LETTERS (2)" in printed
        assert "plain" in board.queues.value and "default" in board.queues.value
        shown = [r for r in board.run_rows if r.box.layout.display != "none"]
        assert len(shown) == 1 and run.id in shown[0].label.value
        assert shown[0].bar.value == 1.0  # every task of the failed run has ended
        rows = [r for r in board.dead_rows if r.box.layout.display != "none"]
        assert {r.job[0] for r in rows if r.job} == {"default", "plain"}
        assert board.data is not None and board.data["dead_total"] == 2
        assert not board.requeue_all.disabled
    finally:
        board.close()


def test_requeue_button_queues_a_plain_job_again(config: RedisConfig) -> None:
    """Clicking a dead letter's requeue button queues the job again; the view follows."""
    q = Queue("plain", config)
    jid = dead_job(q)
    board = ifn.dashboard(config)
    try:
        row = board.dead_rows[0]
        assert row.job == ("plain", jid)
        row.button.click()
        assert q.info(jid).status is JobStatus.QUEUED
        assert board.message == f"requeued job {jid}"
        assert board.data is not None and board.data["dead_total"] == 0
        assert board.dead_rows[0].box.layout.display == "none"
    finally:
        board.close()


def test_requeue_of_a_run_task_retries_its_run(config: RedisConfig) -> None:
    """A pipeline task cannot be requeued alone: its button retries the run's failed tasks."""
    run = submit(failing(), config=config)
    work(config)
    (dead,) = overview(config)["dead"]
    assert dead["run"] == run.id
    assert requeue(config, dead["queue"], dead["job"]).startswith(f"retried run {run.id}")
    assert run.status is RunStatus.RUNNING
    assert overview(config)["dead_total"] == 0


def test_requeue_all_and_purge_buttons(config: RedisConfig) -> None:
    """'requeue all' puts every dead letter back; 'purge' deletes them."""
    q = Queue("plain", config)
    first, second = dead_job(q), dead_job(q)
    board = ifn.dashboard(config)
    try:
        board.requeue_all.click()
        assert {q.info(j).status for j in (first, second)} == {JobStatus.QUEUED}
        assert board.requeue_all.disabled and board.purge.disabled
        for _ in range(2):
            q.fail(claim(q), "again")
        board.refresh()
        assert board.data is not None and board.data["dead_total"] == 2
        board.purge.click()
        assert board.message == "purged 2 dead letters"
        assert q.counts()[JobStatus.FAILED] == 0
    finally:
        board.close()
    assert purge(config) == 0 and requeue_all(config) == []


def test_lost_connection_is_shown_and_resumed(fresh_server: Callable[..., RedisServer],
                                              namespace: str) -> None:
    """A dashboard whose Redis dies says so (never raises) and resumes once it is back."""
    server = fresh_server(appendonly=True)
    cfg = RedisConfig(url=server.url, namespace=namespace)
    dead_job(Queue("plain", cfg))
    board = ifn.dashboard(cfg)
    try:
        server.kill()
        board.refresh()
        assert board.notice.value.startswith("connection lost, retrying")
        server.restart()
        board.refresh()
        assert board.notice.value == ""
        assert board.data is not None and board.data["dead_total"] == 1
    finally:
        board.close()
        cfg.close()


def test_bad_limits_are_refused(config: RedisConfig) -> None:
    """A non-positive interval or limit is an InvalidOptionError naming it."""
    with pytest.raises(InvalidOptionError, match="interval"):
        ifn.dashboard(config, interval=0)
    with pytest.raises(InvalidOptionError, match="runs"):
        overview(config, runs=0)


def test_dashboard_follows_on_the_kernel_loop_until_closed(config: RedisConfig) -> None:
    """In a kernel the dashboard re-reads between cells on the loop, and close() ends that."""
    kernel = Kernel()
    try:
        first = kernel.run("import asyncio, json\nimport ironforge_nb as ifn\n"
                   f"cfg = ifn.RedisConfig(url={config.url!r}, namespace={config.namespace!r})\n"
                   "d = ifn.dashboard(cfg, interval=0.05)\nprint(json.dumps([d.following, "
                   "sorted(d._repr_mimebundle_()), len(d.data['queues'])]))")
        assert json.loads(first) == [
            True, ["application/vnd.jupyter.widget-view+json", "text/plain"], 0]
        Queue("late", config).enqueue(b"x")
        out = kernel.run("for _ in range(200):\n    if d.data['queues']: break\n"
                         "    await asyncio.sleep(0.05)\n"
                         f"before = [d.following, len({FOLLOWERS})]\nd.close()\n"
                         "await asyncio.sleep(0.1)\nprint(json.dumps([before, "
                         f"[q['name'] for q in d.data['queues']], d.following, "
                         f"len({FOLLOWERS})]))")
        assert json.loads(out) == [[True, 1], ["late"], False, 0]
    finally:
        kernel.stop()
