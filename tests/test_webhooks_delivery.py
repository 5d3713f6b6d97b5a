"""Webhook deliveries on a real redis-server to real HTTP receivers on 127.0.0.1: events
written by the transitions themselves, signatures, retries, 410/429, leases, replay, SSRF.

Dispatchers run in this process with a short schedule and are driven one turn at a time
(`Dispatcher.deliver_due`), so no test waits on the real schedule.
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

import pytest

import ironforge_nb as ifn
from ironforge_nb.errors import DeliveryStateError
from ironforge_nb.orchestrator import submit
from ironforge_nb.queue import Queue, RedisConfig
from ironforge_nb.status import JobStatus, RunStatus
from ironforge_nb.webhooks import Dispatcher, verify
from ironforge_nb.webhooks.outbox import DeliveryScripts
from tests.helpers import claim, diamond, wait_for
from tests.receivers import canary, receiver
from tests.runloop import run_one, work
from tests.test_webhooks import hmac_signature, resolving_to, webhook_keys

pytestmark = pytest.mark.usefixtures("signing_secret")


def dispatcher(config: RedisConfig, **options: Any) -> Dispatcher:
    """A dispatcher with an immediate 3-step schedule and short timeouts."""
    settings: dict[str, Any] = {"schedule": (0, 0, 0), "timeout": 2.0, "lease": 6.0,
                                "poll": 0.05, "name": "test", **options}
    return Dispatcher(config, **settings)


def drain(d: Dispatcher, turns: int = 10) -> None:
    """Deliver until nothing is due (at most ``turns`` turns)."""
    for _ in range(turns):
        if d.deliver_due() == 0:
            return


def finish_job(q: Queue, *, fail: str | None = None, max_attempts: int = 3) -> str:
    """Enqueue a job, claim it, then complete it or fail it for good; returns its id."""
    jid = q.enqueue(b"payload", max_attempts=max_attempts)
    lease = claim(q)
    if fail is None:
        q.complete(lease, b"secret result")
    else:
        q.fail(lease, fail, retry=False)
    return jid


def rows(config: RedisConfig) -> list[dict[str, Any]]:
    """deliveries() as records."""
    return ifn.webhooks.deliveries(config=config).to_dict("records")


# -- events from the transitions ----------------------------------------------------------------


def test_completion_is_delivered_signed_and_thin(config: RedisConfig) -> None:
    """job.completed reaches the receiver; it verifies with verify() and with plain HMAC, and
    carries ids and status but not the result."""
    with receiver() as rec:
        ep = ifn.webhooks.register(rec.url, allow_private=True, config=config)
        jid = finish_job(Queue("default", config))
        drain(dispatcher(config))
    (got,) = rec.got
    payload = verify(got.headers, got.body, ep.secret)
    assert got.headers["webhook-signature"] == hmac_signature(
        ep.secret, got.headers["webhook-id"], got.headers["webhook-timestamp"], got.body)
    assert got.headers["content-type"] == "application/json"
    assert payload["type"] == "job.completed"
    data = payload["data"]
    assert (data["job_id"], data["queue"], data["status"], data["attempts"]) == (
        jid, "default", "completed", 1)
    assert data["namespace"] == config.namespace and b"secret result" not in got.body
    assert rows(config)[0]["status"] == "delivered"


def test_no_endpoint_means_no_outbox_writes(config: RedisConfig) -> None:
    """With no endpoint registered, completions, dead letters and runs write no webhook key."""
    q = Queue("default", config)
    finish_job(q)
    finish_job(q, fail="boom")
    submit(diamond(), config=config)
    work(config)
    assert webhook_keys(config) == []


def test_dead_letter_sends_job_failed_with_the_last_error_line(config: RedisConfig) -> None:
    """A job failed for good gives job.failed with the traceback's last line; a retried
    attempt gives nothing."""
    q = Queue("default", config)
    with receiver() as rec:
        ifn.webhooks.register(rec.url, ["job.failed"], allow_private=True, config=config)
        retried = q.enqueue(b"p", max_attempts=2)
        q.fail(claim(q), "first try")
        jid = finish_job(q, fail="Traceback (most recent call last):\n  ...\nKeyError: 'x'\n")
        drain(dispatcher(config))
    (got,) = rec.got
    data = json.loads(got.body)["data"]
    assert (data["job_id"], data["status"], data["error"]) == (jid, "failed", "KeyError: 'x'")
    assert retried != jid


def test_stalled_past_max_stalls_sends_job_failed(config: RedisConfig) -> None:
    """A job that stalls past its max_stalls (its executor died: stall_job; its worker died:
    reap_expired) gives job.failed; a stall that queues the job again gives nothing."""
    q = Queue("default", config)
    with receiver() as rec:
        ifn.webhooks.register(rec.url, ["job.failed"], allow_private=True, config=config)
        killed = q.enqueue(b"k", max_stalls=0)
        assert q.stall(claim(q), "the executor process was killed by SIGKILL") is (
            JobStatus.FAILED)
        reaped = q.enqueue(b"r", max_stalls=0)
        assert claim(q, lease=0.05).job_id == reaped
        time.sleep(0.1)
        assert q.reap() == 1
        survivor = q.enqueue(b"s", max_stalls=1)
        assert q.stall(claim(q), "killed") is JobStatus.QUEUED
        drain(dispatcher(config))
    got = {p["data"]["job_id"]: p["data"] for p in (json.loads(g.body) for g in rec.got)}
    assert set(got) == {killed, reaped} and survivor not in got
    assert got[killed]["error"].startswith("stalled 1 time (max_stalls 0)")
    assert "lease expired" in got[reaped]["error"]


def test_filters_by_type_pipeline_and_queue(config: RedisConfig) -> None:
    """Each endpoint gets only the events its filter matches."""
    with receiver() as rec:
        urls = {name: f"{rec.url}/{name}" for name in ("all", "failed", "diamond", "other_q")}
        ifn.webhooks.register(urls["all"], allow_private=True, config=config)
        ifn.webhooks.register(urls["failed"], ["job.failed"], allow_private=True,
                              config=config)
        ifn.webhooks.register(urls["diamond"], ["job.completed", "run.succeeded"],
                              pipeline="diamond", allow_private=True, config=config)
        ifn.webhooks.register(urls["other_q"], queue="other", allow_private=True,
                              config=config)
        finish_job(Queue("default", config))
        finish_job(Queue("other", config), fail="boom")
        submit(diamond(), config=config)
        work(config)
        drain(dispatcher(config, concurrency=8), turns=20)
    seen: dict[str, list[str]] = {}
    for got in rec.got:
        seen.setdefault(got.path.rsplit("/", 1)[1], []).append(json.loads(got.body)["type"])
    assert sorted(seen["all"]) == sorted(["job.completed", "job.failed", "run.succeeded",
                                          *["job.completed"] * 4])
    assert seen["failed"] == ["job.failed"]
    assert sorted(seen["diamond"]) == sorted(["run.succeeded", *["job.completed"] * 4])
    assert seen["other_q"] == ["job.failed"]


def test_run_events_succeeded_failed_cancelled(config: RedisConfig) -> None:
    """A run's end gives run.succeeded, run.failed (naming the failed task) or run.cancelled,
    with the pipeline name and task counts."""
    from tests import tasks

    bad = ifn.Pipeline("bad")
    bad.task("a", tasks.one).task("b", tasks.boom, after="a").task("c", tasks.inc, after="b")
    with receiver() as rec:
        ifn.webhooks.register(rec.url, ["run.succeeded", "run.failed", "run.cancelled"],
                              allow_private=True, config=config)
        ok = submit(diamond(), config=config)
        work(config)
        failed = submit(bad, config=config)
        work(config)
        cancelled = submit(diamond(), config=config)
        cancelled.cancel()
        drain(dispatcher(config))
    by_run = {p["data"]["run_id"]: p for p in (json.loads(g.body) for g in rec.got)}
    assert by_run[ok.id]["type"] == "run.succeeded"
    assert by_run[ok.id]["data"]["tasks"]["completed"] == 4
    assert by_run[ok.id]["data"]["pipeline"] == "diamond"
    assert by_run[failed.id]["type"] == "run.failed"
    assert by_run[failed.id]["data"]["error"].startswith("b: ")
    assert by_run[failed.id]["data"]["tasks"]["skipped"] == 1
    assert by_run[cancelled.id]["type"] == "run.cancelled"


def test_run_failed_settled_later_keeps_the_error(config: RedisConfig,
                                                  tmp_path: Path) -> None:
    """run.failed carries the failed task's error line when a later script settles the run:
    a walk step (the failed task has more descendants than one step skips) or the end of
    another task; a retry clears the stored failure, so the run.succeeded that follows has
    none."""
    from ironforge_nb.queue.walks import Walks
    from tests import tasks

    marker = tmp_path / "fail"
    marker.write_text("")
    wide = ifn.Pipeline("wide")
    wide.task("bad", tasks.fail_if_file, params={"marker": str(marker)})
    wide.map("sq", tasks.square, over=list(range(600)), after="bad")  # > WALK_BUDGET (256)
    side = ifn.Pipeline("side")
    side.task("bad", tasks.boom).task("other", tasks.one)  # "other" ends after "bad"
    q = Queue("default", config)
    with receiver() as rec:
        ifn.webhooks.register(rec.url, ["run.failed", "run.succeeded"], allow_private=True,
                              config=config)
        walked = submit(wide, config=config)
        work(config)
        assert walked.status is RunStatus.RUNNING  # 600 skips: the failure's script left some
        assert walked.info()["failure"].startswith("bad: RuntimeError: marker")
        Walks(config).finish(walked.id)
        assert walked.status is RunStatus.FAILED  # settled by a walk step
        parallel = submit(side, config=config)
        first, second = q.dequeue_many("test-worker", 2, lease=30, timeout=0)
        assert (first.meta["task"], second.meta["task"]) == ("bad", "other")
        run_one(q, first)  # bad fails: "other" is still active
        assert parallel.status is RunStatus.RUNNING
        run_one(q, second)  # settles the run as failed
        drain(dispatcher(config))
        failed = {p["data"]["run_id"]: p for p in (json.loads(g.body) for g in rec.got)}
        marker.unlink()
        walked.retry_failed()
        assert "failure" not in walked.info()
        work(config)
        drain(dispatcher(config))
    assert walked.status is RunStatus.SUCCEEDED
    assert failed[walked.id]["type"] == "run.failed"
    assert failed[walked.id]["data"]["error"] == f"bad: RuntimeError: marker {marker} exists"
    assert failed[walked.id]["data"]["tasks"]["skipped"] == 600
    assert failed[parallel.id]["data"]["error"] == (
        "bad: RuntimeError: boom: this task always fails")
    last = json.loads(rec.got[-1].body)
    assert (last["type"], last["data"]["run_id"]) == ("run.succeeded", walked.id)
    assert "error" not in last["data"] or last["data"]["error"] is None


def test_cache_hits_send_job_completed_flagged_cached(config: RedisConfig) -> None:
    """A task served from the cross-run cache at submit is completed: it sends job.completed
    (verifiable, like any delivery) with ``cached: true`` and the run that computed it, in
    task order and before the run's own event; a run whose every task hits ends in submit_run
    itself and sends run.succeeded after its tasks' events. Tasks that ran are not flagged."""
    from tests import tasks

    partial = ifn.Pipeline("partial", cache=True)
    partial.task("a", tasks.one).task("b", tasks.double, after="a").task("c", tasks.inc,
                                                                          after="a")
    partial.task("d", tasks.plus, after=["b", "c"], cache=False)  # runs every time
    with receiver() as rec:
        first = submit(partial, config=config)
        work(config)
        whole = submit(diamond(), config=config, cache=True)
        work(config)
        ep = ifn.webhooks.register(rec.url, ["job.completed", "run.succeeded"],
                                   allow_private=True, config=config)
        second = submit(partial, config=config)
        work(config)
        again = submit(diamond(), config=config, cache=True)  # every task hits
        drain(dispatcher(config))
    got = sorted(rec.got, key=lambda g: int(g.headers["webhook-id"].rsplit("_", 1)[1]))
    assert all(verify(g.headers, g.body, ep.secret) for g in got)
    events = [json.loads(g.body) for g in got]
    summary = [(e["type"], e["data"]["run_id"], e["data"].get("task"),
                e["data"].get("cached"), e["data"].get("source_run")) for e in events]
    assert summary == [
        ("job.completed", second.id, "a", True, first.id),
        ("job.completed", second.id, "b", True, first.id),
        ("job.completed", second.id, "c", True, first.id),
        ("job.completed", second.id, "d", None, None),  # it ran
        ("run.succeeded", second.id, None, None, None),
        ("job.completed", again.id, "a", True, whole.id),
        ("job.completed", again.id, "b", True, whole.id),
        ("job.completed", again.id, "c", True, whole.id),
        ("job.completed", again.id, "d", True, whole.id),
        ("run.succeeded", again.id, None, None, None),
    ]
    hit = events[0]["data"]
    assert (hit["status"], hit["attempts"], hit["pipeline"], hit["queue"]) == (
        "completed", 0, "partial", "default")
    assert second.result("d") == 4 and again.status is RunStatus.SUCCEEDED


# -- retries, dead deliveries, replay -------------------------------------------------------------


def test_500_three_times_then_200_is_four_attempts_with_one_id(config: RedisConfig) -> None:
    """Four attempts, the same webhook-id each time, each verifiable; delivered at the end."""
    with receiver([500, 500, 500]) as rec:
        ep = ifn.webhooks.register(rec.url, allow_private=True, config=config)
        finish_job(Queue("default", config))
        drain(dispatcher(config))
    assert len(rec.got) == 4
    assert len({g.headers["webhook-id"] for g in rec.got}) == 1
    assert all(verify(g.headers, g.body, ep.secret) for g in rec.got)
    (row,) = rows(config)
    assert (row["status"], row["attempts"], row["last_status"]) == ("delivered", 4, 200)


def test_used_up_schedule_is_dead_until_replayed(config: RedisConfig) -> None:
    """A receiver that always fails: 3 attempts, then the delivery is dead and listed with
    its error; replay() sends it again (same webhook-id) and it is delivered."""
    with receiver([500] * 3) as rec:
        ifn.webhooks.register(rec.url, allow_private=True, config=config)
        finish_job(Queue("default", config))
        d = dispatcher(config, schedule=(0, 0))
        drain(d)
        (row,) = rows(config)
        assert (row["status"], row["attempts"], row["last_status"]) == ("dead", 3, 500)
        assert "HTTP 500" in row["error"]
        ifn.webhooks.replay(row["delivery"], config)
        with pytest.raises(DeliveryStateError, match="pending"):
            ifn.webhooks.replay(row["delivery"], config)
        drain(d)
    assert rows(config)[0]["status"] == "delivered"
    assert len(rec.got) == 4 and len({g.headers["webhook-id"] for g in rec.got}) == 1


def test_410_disables_the_endpoint(config: RedisConfig) -> None:
    """410 Gone: the delivery is dead, the endpoint disabled, and later events skip it."""
    q = Queue("default", config)
    with receiver([410]) as rec:
        ep = ifn.webhooks.register(rec.url, allow_private=True, config=config)
        finish_job(q)
        drain(dispatcher(config))
        finish_job(q)
        drain(dispatcher(config))
    assert len(rec.got) == 1
    (row,) = rows(config)
    assert row["status"] == "dead" and "410" in row["error"]
    endpoint = ifn.webhooks.get_endpoint(ep.id, config)
    assert endpoint.disabled and "410" in endpoint.disabled
    assert not ifn.webhooks.endpoints(config)["enabled"][0]


@pytest.mark.parametrize("status", [429, 503])
def test_429_and_503_honour_retry_after(config: RedisConfig, status: int) -> None:
    """429 or 503 with Retry-After: 120 schedules the next attempt 120 s later, not on the
    schedule."""
    with receiver([status], headers={"Retry-After": "120"}) as rec:
        ifn.webhooks.register(rec.url, allow_private=True, config=config)
        finish_job(Queue("default", config))
        before = time.time()
        drain(dispatcher(config))
    (row,) = rows(config)
    assert (row["status"], row["last_status"], len(rec.got)) == ("pending", status, 1)
    assert row["next_attempt"].timestamp() >= before + 119


def test_removed_endpoint_gives_up_its_pending_deliveries(config: RedisConfig) -> None:
    """Deliveries of an endpoint removed meanwhile are given up, not sent."""
    with receiver() as rec:
        ep = ifn.webhooks.register(rec.url, allow_private=True, config=config)
        finish_job(Queue("default", config))
        ifn.webhooks.remove(ep.id, config)
        drain(dispatcher(config))
    assert rec.got == []
    (row,) = rows(config)
    assert (row["status"], row["error"]) == ("dead", "endpoint removed")


def test_rotation_signs_with_both_secrets(config: RedisConfig) -> None:
    """During the grace period a delivery verifies with the old secret and with the new."""
    with receiver() as rec:
        ep = ifn.webhooks.register(rec.url, allow_private=True, config=config)
        new = ifn.webhooks.rotate_secret(ep.id, config=config)
        finish_job(Queue("default", config))
        drain(dispatcher(config))
    (got,) = rec.got
    assert len(got.headers["webhook-signature"].split()) == 2
    assert verify(got.headers, got.body, ep.secret) and verify(got.headers, got.body, new.secret)


@pytest.mark.parametrize("scheme", ["http", "https"])
def test_a_trickling_receiver_is_cut_at_the_timeout(config: RedisConfig, scheme: str) -> None:
    """A receiver that sends a byte every 0.1 s for ever (an HTTP header that never ends, or a
    TLS record that never ends during the handshake) gets every read an answer long before
    a per-read timeout: the whole-attempt deadline cuts it at ``timeout`` (1 s), the
    attempt is a failure that retries, and the receiver sees the connection closed."""
    from tests.receivers import trickler

    prefix = b"HTTP/1.1 200 OK\r\nX-Slow: " if scheme == "http" else b"\x16\x03\x03\x40\x00"
    with trickler(prefix) as (port, held):
        ifn.webhooks.register(f"{scheme}://127.0.0.1:{port}/hook", allow_private=True,
                              config=config)
        finish_job(Queue("default", config))
        d = dispatcher(config, timeout=1.0, lease=3.0, schedule=(3600,))
        start = time.monotonic()
        assert d.deliver_due() == 1
        took = time.monotonic() - start
        wait_for_held = time.monotonic() + 5
        while not held and time.monotonic() < wait_for_held:
            time.sleep(0.05)
    print(f"\n{scheme} trickle: attempt ended after {took:.2f} s (timeout 1 s), "
          f"receiver held {held[0] if held else float('nan'):.2f} s")
    (row,) = rows(config)
    assert (row["status"], row["attempts"], row["last_status"]) == ("pending", 1, None)
    assert row["error"] == "TimeoutError: no complete answer within 1 s"
    assert took < 8 and held and held[0] < 8  # unbounded without the deadline (bytes flow)


# -- leases ------------------------------------------------------------------------------------


def test_two_dispatchers_never_hold_the_same_attempt(config: RedisConfig) -> None:
    """A leased delivery is not claimed again until its lease ends; then the late holder's
    outcome is refused and the new holder's attempt counts."""
    ifn.webhooks.register("http://127.0.0.1:9/", allow_private=True, config=config)
    finish_job(Queue("default", config))
    a, b = DeliveryScripts(config), DeliveryScripts(config)
    _, _, (first,) = a.claim("a", 2000, 10)
    assert b.claim("b", 200, 10)[2] == []  # within a's lease (2 s: a loaded machine is slow)
    (second,) = wait_for(lambda: b.claim("b", 60_000, 10)[2], timeout=30)  # a's lease over
    assert (second.id, second.attempt) == (first.id, 2)
    assert a.settle(first, "delivered", http_status=200) is None
    assert b.settle(second, "delivered", http_status=200) == "delivered"


def test_run_in_a_thread_delivers_and_stops(config: RedisConfig) -> None:
    """Dispatcher.run delivers as events come and returns after stop()."""
    d = dispatcher(config)
    thread = threading.Thread(target=d.run)
    with receiver() as rec:
        ifn.webhooks.register(rec.url, allow_private=True, config=config)
        thread.start()
        try:
            finish_job(Queue("default", config))
            assert rec.arrived.wait(10)
        finally:
            d.stop()
            thread.join(10)
    assert not thread.is_alive() and d.delivered == 1


# -- SSRF at delivery time ---------------------------------------------------------------------


@pytest.mark.parametrize("rebound", ["127.0.0.1", "::ffff:127.0.0.1"])
def test_refused_delivery_connects_nowhere(config: RedisConfig, rebound: str) -> None:
    """A name that resolved to a public address at registration and to loopback at delivery
    (DNS rebinding) is refused before any connection: the canary on that port sees none,
    while a control endpoint allowed to reach it does connect."""
    q = Queue("default", config)
    with canary() as (port, seen):
        ifn.webhooks.register(f"http://hooks.example.test:{port}/x", ["job.completed"],
                              resolver=resolving_to("93.184.216.34"), config=config)
        finish_job(q)
        drain(dispatcher(config, resolver=resolving_to(rebound)))
        assert seen == []
        (row,) = rows(config)
        assert (row["status"], row["attempts"]) == ("dead", 4) and "refused" in row["error"]
        ifn.webhooks.register(f"http://127.0.0.1:{port}/", ["job.failed"], allow_private=True,
                              config=config)
        finish_job(q, fail="boom")
        drain(dispatcher(config, resolver=resolving_to(rebound), timeout=0.5, lease=2))
        assert len(seen) >= 1  # the canary does see a connection that is allowed


def test_redirects_are_not_followed(config: RedisConfig) -> None:
    """A 302 to an internal address is a failed attempt; the target is never contacted."""
    with canary() as (port, seen):
        with receiver([302], headers={"Location": f"http://127.0.0.1:{port}/meta"}) as rec:
            ifn.webhooks.register(rec.url, allow_private=True, config=config)
            finish_job(Queue("default", config))
            dispatcher(config).deliver_due()
        assert seen == [] and len(rec.got) == 1
    (row,) = rows(config)
    assert row["last_status"] == 302 and "not followed" in row["error"]



def test_https_connects_to_the_checked_address_and_checks_the_name(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """https to a name resolved (by the injected resolver) to a loopback TLS receiver: the
    certificate is verified for the URL's name (SNI and hostname check), so the right name
    is delivered and another name on the same address is refused; no CA, no delivery."""
    import shutil
    import ssl
    import subprocess
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from ironforge_nb.webhooks.policy import check_url
    from ironforge_nb.webhooks.sender import send

    if shutil.which("openssl") is None:
        pytest.skip("the openssl command is needed to make a test certificate")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout",
                    str(key), "-out", str(cert), "-days", "1", "-subj", "/CN=hooks.test",
                    "-addext", "subjectAltName=DNS:hooks.test"], check=True,
                   capture_output=True)
    hosts: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            hosts.append(self.headers["host"])
            self.rfile.read(int(self.headers["content-length"]))
            self.send_response(204)
            self.end_headers()

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    port = server.server_address[1]

    def attempt(name: str) -> Any:
        target = check_url(f"https://{name}:{port}/in", allow_private=True,
                           resolver=resolving_to("127.0.0.1"))
        return send(target, {"content-type": "application/json"}, b"{}", 2.0)

    try:
        untrusted = attempt("hooks.test")
        monkeypatch.setenv("SSL_CERT_FILE", str(cert))
        trusted, wrong_name = attempt("hooks.test"), attempt("other.test")
    finally:
        server.shutdown()
        server.server_close()
    assert untrusted.status is None and "CERTIFICATE_VERIFY_FAILED" in untrusted.error
    assert trusted.status == 204 and hosts == [f"hooks.test:{port}"]
    assert wrong_name.status is None and "other.test" in wrong_name.error
