"""Webhook dispatchers as real processes: inside every worker (beside its executors), apart
(``ironforge webhooks``), killed mid-delivery; and ``ironforge webhooks list``.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import ironforge_nb as ifn
from ironforge_nb.queue import Queue, RedisConfig
from ironforge_nb.status import JobStatus
from tests.receivers import receiver
from tests.test_webhooks_delivery import dispatcher, finish_job, rows
from tests.test_worker import StartWorker, start_worker, status_is, wait_for  # noqa: F401
from tests.worker_tasks import command

REPO = Path(__file__).resolve().parents[1]


def cli(config: RedisConfig, *args: str) -> list[str]:
    """The ``ironforge webhooks`` command line for ``config``."""
    return [sys.executable, "-m", "ironforge_nb.cli", "webhooks", *args, "--url", config.url,
            "--namespace", config.namespace]


def test_a_hanging_receiver_does_not_delay_jobs(config: RedisConfig,
                                                request: pytest.FixtureRequest) -> None:
    """While the worker's dispatcher waits on a receiver that never answers, the worker keeps
    completing jobs one after another (latencies printed; nothing timed is asserted)."""
    spawn: StartWorker = request.getfixturevalue("start_worker")  # test_worker's fixture
    q = Queue("work", config)

    def latencies() -> list[float]:
        seconds = []
        for i in range(20):
            start = time.perf_counter()
            jid = q.enqueue(command("echo", value=i))
            wait_for(status_is(q, jid, JobStatus.COMPLETED), every=0.002)
            seconds.append(time.perf_counter() - start)
        return sorted(seconds)

    spawn()
    before = latencies()  # no endpoint yet: the baseline
    with receiver(hang=True) as rec:
        ifn.webhooks.register(rec.url, ["job.completed"], allow_private=True, config=config)
        first = q.enqueue(command("echo", value=0))
        assert rec.arrived.wait(15), "the worker's dispatcher never sent the first event"
        during = latencies()
        statuses = {r["status"] for r in rows(config) if r["delivery"].endswith(
            ifn.webhooks.endpoints(config)["id"][0])}
        assert not rec.released.is_set() and "sending" in statuses  # still hanging
        assert q.info(first).status is JobStatus.COMPLETED
    for label, seconds in (("no endpoint", before), ("receiver hanging", during)):
        print(f"\njob latency, {label} (20 jobs): median {seconds[10] * 1000:.1f} ms, "
              f"max {seconds[-1] * 1000:.1f} ms")


def test_dispatcher_killed_mid_delivery_leaves_it_to_another(config: RedisConfig,
                                                              tmp_path: Path) -> None:
    """SIGKILL an ``ironforge webhooks`` process while its receiver holds the request: once
    the lease ends, another dispatcher delivers the event, with the same webhook-id."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    with receiver(hang=True) as rec:
        ifn.webhooks.register(rec.url, allow_private=True, config=config)
        finish_job(Queue("default", config))
        with open(tmp_path / "dispatcher.log", "wb") as log:
            proc = subprocess.Popen([*cli(config), "--timeout", "2", "--lease", "6"],
                                    cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            assert rec.arrived.wait(20), (tmp_path / "dispatcher.log").read_text()
            os.kill(proc.pid, signal.SIGKILL)
        finally:
            proc.wait()
        assert rows(config)[0]["status"] == "sending"
        rec.hang = False
        other = dispatcher(config)
        wait_for(lambda: other.deliver_due() and rows(config)[0]["status"] == "delivered",
                 timeout=30)
    assert len(rec.got) == 2 and len({g.headers["webhook-id"] for g in rec.got}) == 1
    assert rows(config)[0]["attempts"] == 2


def test_a_running_dispatcher_takes_over_from_a_killed_one(config: RedisConfig,
                                                            tmp_path: Path) -> None:
    """Two ``ironforge webhooks`` processes run; the one that claimed the delivery is
    SIGKILLed while a slow receiver (3 s per answer) holds its request. The other, running
    all along, leaves the delivery alone while the lease holds, then sends it once the lease
    has ended and records it: delivered on attempt 2, by the survivor. The receiver saw the
    event twice (at-least-once) with one webhook-id, both signatures valid."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    lease = 12.0  # at least 3 x --timeout
    options = ["--timeout", "4", "--lease", str(lease)]
    with receiver(delay=3.0) as rec:
        ep = ifn.webhooks.register(rec.url, ["job.completed"], allow_private=True,
                                   config=config)
        finish_job(Queue("default", config))
        logs = [open(tmp_path / f"dispatcher{i}.log", "wb") for i in range(2)]  # noqa: SIM115
        first = subprocess.Popen([*cli(config), *options], cwd=REPO, env=env, stdout=logs[0],
                                 stderr=subprocess.STDOUT)
        second = None
        try:
            assert rec.arrived.wait(20), (tmp_path / "dispatcher0.log").read_text()
            (claimed,) = rows(config)
            claimed_ms = int(config.client().hget(  # Redis TIME of the claim
                config.keys.webhook_delivery(claimed["delivery"]), "updated"))
            second = subprocess.Popen([*cli(config), *options], cwd=REPO, env=env,
                                      stdout=logs[1], stderr=subprocess.STDOUT)
            os.kill(first.pid, signal.SIGKILL)  # mid-delivery: the receiver is still answering
            first.wait()
            assert (rows(config)[0]["status"], rows(config)[0]["attempts"]) == ("sending", 1)
            wait_for(lambda: rows(config)[0]["status"] == "delivered", timeout=lease + 30)
        finally:
            for proc in (first, second):
                if proc is not None and proc.poll() is None:
                    proc.send_signal(signal.SIGTERM)
                    proc.wait(15)
            for log in logs:
                log.close()
        holder = config.client().hget(config.keys.webhook_delivery(claimed["delivery"]),
                                      "dispatcher")
    (row,) = rows(config)
    assert (row["status"], row["attempts"], row["last_status"]) == ("delivered", 2, 200)
    assert second is not None and holder is not None and holder.decode().endswith(
        f"-{second.pid}")
    assert len(rec.got) == 2 and len({g.headers["webhook-id"] for g in rec.got}) == 1
    assert all(ifn.webhooks.verify(g.headers, g.body, ep.secret) for g in rec.got)
    gap = rec.got[1].at - claimed_ms / 1000
    print(f"\ntakeover: second attempt {gap:.1f} s after the first claim (lease {lease:g} s)")
    assert gap >= lease - 0.05  # never resent while the killed dispatcher's lease held


def test_cli_list_shows_endpoints_and_deliveries(config: RedisConfig) -> None:
    """``ironforge webhooks list`` prints the endpoint and its recent deliveries."""
    ep = ifn.webhooks.register("http://127.0.0.1:9/x", allow_private=True, config=config)
    finish_job(Queue("default", config))
    out = subprocess.run(cli(config, "list"), cwd=REPO, capture_output=True, text=True,
                         env={**os.environ, "PYTHONPATH": str(REPO)}, check=True).stdout
    assert ep.id in out and "job.completed" in out and f"1-{ep.id}" in out
    assert ep.secret not in out


@pytest.mark.usefixtures("signing_secret")
def test_connect_local_workers_deliver(config: RedisConfig) -> None:
    """The local workers of ``ifn.connect()`` deliver webhooks too (run.succeeded here)."""
    from tests.helpers import diamond

    conn = ifn.connect(config.url, namespace=config.namespace, workers=1)
    try:
        with receiver() as rec:
            ifn.webhooks.register(rec.url, ["run.succeeded"], allow_private=True)
            run = diamond().submit()
            run.wait(60)
            assert rec.arrived.wait(30)
        payload = json.loads(rec.got[0].body)
        assert (payload["type"], payload["data"]["run_id"]) == ("run.succeeded", run.id)
    finally:
        conn.close()
