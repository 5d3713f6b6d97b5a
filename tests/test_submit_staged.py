"""Staged submits on a real redis-server: a big run goes in chunks, each encoded while Redis
writes the previous one, and a last call makes it exist (submit_run.lua, "Staged submit").

The promises are the single call's: the run exists whole or not at all, nothing staged can be
seen or claimed, a bad input or an interrupt leaves nothing, a resent call changes nothing,
and one run id makes one run. The chunk size and threshold are shrunk so that small runs
cross many chunks (and job ids cross thousands inside a chunk).
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from redis.exceptions import ResponseError

from ironforge_nb.dag import Pipeline
from ironforge_nb.errors import RunNotFoundError, RunStateError, SizeLimitError
from ironforge_nb.local import RedisServer
from ironforge_nb.orchestrator import Run, runs, submit
from ironforge_nb.orchestrator import run_transitions as transitions
from ironforge_nb.orchestrator.run_transitions import RunTransitions
from ironforge_nb.queue import Queue, RedisConfig
from ironforge_nb.status import RunStatus
from tests import tasks
from tests.conftest import unique_namespace
from tests.fault_proxy import FaultProxy, script_match
from tests.helpers import wait_for, worker_processes
from tests.runloop import work

# the module, not the function `ironforge_nb.orchestrator.submit` that the package exports
submit_module = sys.modules["ironforge_nb.orchestrator.submit"]

pytestmark = pytest.mark.usefixtures("signing_secret")


@pytest.fixture
def chunks(monkeypatch: pytest.MonkeyPatch) -> Callable[[int], None]:
    """Stage every run, in chunks of the size given (default 7)."""
    def use(size: int = 7) -> None:
        monkeypatch.setattr(submit_module, "STAGED_MIN", 1)
        monkeypatch.setattr(submit_module, "STAGE_CHUNK", size)
    use()
    return use


@pytest.fixture
def other(config: RedisConfig) -> Iterator[RedisConfig]:
    """A second namespace on the same server."""
    cfg = replace(config, namespace=unique_namespace("other"))
    yield cfg
    cfg.close()


def mixed(n: int) -> Pipeline:
    """Every kind of task record: roots in two queues (one with priority and retries), a map,
    a task of a run param, a gather of the map, a task reading two parents, notebook functions
    (pickled code). ``last`` is 42 + the sum of the squares below n."""
    p = Pipeline("mixed")
    p.map("sq", tasks.square, over=list(range(n)))
    p.task("a", tasks.inc, params={"x": 41}, queue="side", priority=5, retries=2)
    p.task("scaled", tasks.inc, params=["x"])
    p.task("b", tasks.sum_sq)
    p.task("last", tasks.add)
    return p


def snapshot(client: Any, config: RedisConfig, run_id: str) -> dict[str, Any]:
    """What a run wrote, without what differs between two submits of it: times, and the
    namespace where a value names a key."""
    k = config.keys
    out: dict[str, Any] = {}
    prefix = k.prefix.encode()

    def plain(value: Any) -> Any:
        if isinstance(value, bytes):
            return value.replace(prefix, b"{ns}:")
        if isinstance(value, dict):
            return {plain(f): plain(v) for f, v in value.items()}
        if isinstance(value, list | set):
            return type(value)(plain(v) for v in value)
        return value

    for raw in client.scan_iter(match=k.prefix + "*", count=1000):
        key = raw.decode()
        name = key[len(k.prefix):]
        kind = client.type(key).decode()
        if kind == "hash":
            fields = client.hgetall(key)
            if name.endswith(":meta"):
                fields.pop(b"created")
            out[name] = fields
        elif kind == "string":
            out[name] = client.get(key)
        elif kind == "zset":
            out[name] = client.zrange(key, 0, -1)  # their order
        elif kind == "stream":
            out[name] = [{f: v for f, v in fields.items() if f != b"ts"}
                         for _, fields in client.xrange(key)]
        elif kind == "set":
            out[name] = client.smembers(key)
        elif kind == "list":
            out[name] = client.lrange(key, 0, -1)
    return {name: plain(value) for name, value in out.items()}


def keys_of(client: Any, config: RedisConfig) -> set[str]:
    return {k.decode() for k in client.scan_iter(match=config.keys.prefix + "*", count=1000)}


def test_a_staged_run_is_what_one_call_writes(config: RedisConfig, other: RedisConfig,
                                               chunks: Callable[[int], None],
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    client = config.client()
    for size, n in ((7, 40), (600, 2500)):  # many chunks; chunks whose ids cross thousands
        chunks(size)
        rid = f"same-{size}"
        submit(mixed(n), {"x": 3}, config=config, run_id=rid)
        monkeypatch.setattr(submit_module, "STAGED_MIN", 10**9)  # one call
        submit(mixed(n), {"x": 3}, config=other, run_id=rid)
        staged, whole = snapshot(client, config, rid), snapshot(client, other, rid)
        assert staged == whole
        assert len([k for k in staged if k.startswith("job:")]) > 2 * n  # hashes, payloads
        assert not any(":staged" in k or ":roots:" in k or "staging" in k for k in staged)
        client.flushdb()
    # and it runs: every task, across chunks, to the right results
    chunks(5)
    run = submit(mixed(30), {"x": 3}, config=config, run_id="runs")
    work(config, ("default", "side"))
    assert run.status == RunStatus.SUCCEEDED
    assert run.result("b") == sum(i * i for i in range(30))
    assert run.result("last") == sum(i * i for i in range(30)) + 42
    assert run.result("scaled") == 4


def test_staged_roots_join_a_queue_that_holds_jobs_in_order(config: RedisConfig,
                                                            chunks: Callable[[int], None]
                                                            ) -> None:
    client = config.client()
    wait = config.keys.queue("default").wait
    first = submit(mixed(12), {"x": 1}, config=config, run_id="first")  # into an empty queue
    roots = client.zrange(wait, 0, -1)
    second = submit(mixed(12), {"x": 1}, config=config, run_id="second")  # and behind those
    both = client.zrange(wait, 0, -1)
    assert both[:len(roots)] == roots
    assert [j.decode().split(".")[0] for j in both[len(roots):]] == ["second"] * len(roots)
    assert [int(j.decode().split(".")[1]) for j in both[len(roots):]] == sorted(
        int(j.decode().split(".")[1]) for j in roots)
    work(config, ("default", "side"))
    assert first.status == second.status == RunStatus.SUCCEEDED


def test_nothing_staged_shows_and_a_quiet_staging_is_swept(config: RedisConfig,
                                                          monkeypatch: pytest.MonkeyPatch
                                                          ) -> None:
    client = config.client()
    submit(mixed(3), {"x": 1}, config=config, run_id="before")  # the namespace's usual keys
    assert list(runs(config=config)["id"]) == ["before"]  # (pandas imported before the clock)
    before = keys_of(client, config)
    monkeypatch.setattr(transitions, "STAGE_TTL_MS", 1000)
    prep = submit_module._prepare(mixed(20), {"x": 1}, "quiet", config, None, "auto", 1.0)
    scripts = RunTransitions(config)
    plan = prep.plan
    plan.add_all(prep.specs)
    for start in (0, 10):  # a client that dies after two chunks of three
        reply = scripts.stage_chunk("quiet", "tok", start, list(plan.profiles),
                                    plan.records(start, start + 10), plan.blob(start, start + 10),
                                    10)
        assert reply() == "staged"
    assert len(keys_of(client, config) - before) > 20  # written ...
    with pytest.raises(RunNotFoundError):  # ... and seen by no one
        _ = Run("quiet", config).status
    assert list(runs(config=config)["id"]) == ["before"]
    leases = Queue("default", config).dequeue_many("w", 100, lease=30, timeout=0)
    assert {lease.job_id.split(".")[0] for lease in leases} == {"before"}
    before |= {k for k in keys_of(client, config) if ":q:" in k}  # that claim's keys
    scripts.purge()  # not yet: it is not quiet for long enough
    assert len(keys_of(client, config) - before) > 20
    time.sleep(1.1)
    scripts.purge()
    assert keys_of(client, config) - before == set()
    # its commit now finds nothing under its token, and writes nothing
    assert scripts.commit_run("quiet", "tok", "mixed", b"", b"", "pickle", list(plan.profiles),
                              plan.codes, 20) == "lost"
    assert keys_of(client, config) - before == set()


def test_an_interrupt_or_a_bad_payload_between_chunks_leaves_nothing(
        config: RedisConfig, chunks: Callable[[int], None],
        monkeypatch: pytest.MonkeyPatch) -> None:
    client = config.client()
    submit(mixed(3), {"x": 1}, config=config, run_id="before")
    before = keys_of(client, config)
    add_all = submit_module._Plan.add_all
    calls = [0]

    def interrupted(self: Any, specs: Any) -> None:
        calls[0] += 1
        if calls[0] == 3:  # two chunks sent, the second still in flight
            raise KeyboardInterrupt
        add_all(self, specs)

    monkeypatch.setattr(submit_module._Plan, "add_all", interrupted)
    with pytest.raises(KeyboardInterrupt):
        submit(mixed(30), {"x": 1}, config=config, run_id="cut")
    assert keys_of(client, config) == before
    monkeypatch.setattr(submit_module._Plan, "add_all", add_all)
    run = submit(mixed(30), {"x": 1}, config=config, run_id="cut")  # and again: it is whole
    big = Pipeline("big").map("sq", tasks.square, over=[*range(20), "x" * 20_000])
    with pytest.raises(SizeLimitError, match="payload of task"):  # found in its third chunk
        submit(big, config=replace(config, max_payload_bytes=10_000), run_id="big")
    assert not [k for k in keys_of(client, config) if ":run:big:" in k or ":job:big." in k]
    assert not client.exists(config.keys.runs_staging)
    work(config, ("default", "side"))
    assert run.status == RunStatus.SUCCEEDED
    assert run.result("last") == sum(i * i for i in range(30)) + 42


def test_a_resent_chunk_or_commit_changes_nothing_and_bad_chunks_write_nothing(
        config: RedisConfig) -> None:
    client = config.client()
    prep = submit_module._prepare(mixed(10), {"x": 1}, "again", config, None, "auto", 1.0)
    scripts = RunTransitions(config)
    plan = prep.plan
    plan.add_all(prep.specs)
    n = prep.size
    profiles = list(plan.profiles)
    bad = list(plan.records(0, 5))
    bad[3] = "1 7\n"  # sizes of one task for five
    with pytest.raises(ResponseError, match="malformed sizes column"):
        scripts.stage_chunk("again", "tok", 0, profiles, bad, plan.blob(0, 5), 5)()
    assert keys_of(client, config) == set()
    for start, end in ((0, 5), (0, 5), (5, n), (5, n)):  # each chunk sent twice
        assert scripts.stage_chunk("again", "tok", start, profiles, plan.records(start, end),
                                   plan.blob(start, end), end - start)() == "staged"
    with pytest.raises(ResponseError, match=f"commit of {n + 1} tasks, {n} staged"):
        scripts.commit_run("again", "tok", "mixed", *prep.blobs(), profiles, plan.codes, n + 1)
    assert scripts.commit_run("again", "other", "mixed", *prep.blobs(), profiles, plan.codes,
                              n) == "busy"
    assert scripts.commit_run("again", "tok", "mixed", *prep.blobs(), profiles, plan.codes,
                              n) == "created"
    state = snapshot(client, config, "again")
    assert scripts.commit_run("again", "tok", "mixed", *prep.blobs(), profiles, plan.codes,
                              n) == "exists"
    assert scripts.stage_chunk("again", "tok", 0, profiles, plan.records(0, 5), plan.blob(0, 5),
                               5)() == "exists"
    assert snapshot(client, config, "again") == state
    run = Run("again", config)
    assert run.status == RunStatus.RUNNING
    work(config, ("default", "side"))
    assert run.status == RunStatus.SUCCEEDED


@pytest.mark.parametrize("ends", ["commits", "goes quiet"])
def test_another_client_staging_the_same_run_id_is_waited_for(
        config: RedisConfig, chunks: Callable[[int], None], monkeypatch: pytest.MonkeyPatch,
        ends: str) -> None:
    monkeypatch.setattr(transitions, "STAGE_TTL_MS", 500)
    prep = submit_module._prepare(mixed(10), {"x": 1}, "shared", config, None, "auto", 1.0)
    scripts = RunTransitions(config)
    plan = prep.plan
    plan.add_all(prep.specs)
    n, profiles = prep.size, list(plan.profiles)
    assert scripts.stage_chunk("shared", "first", 0, profiles, plan.records(), plan.blob(),
                               n)() == "staged"

    def first_commits() -> None:
        time.sleep(0.2)
        RunTransitions(config).commit_run("shared", "first", "mixed", *prep.blobs(), profiles,
                                          plan.codes, n)

    if ends == "commits":
        threading.Thread(target=first_commits).start()
    began = time.monotonic()
    run = submit(mixed(10), {"x": 1}, config=config, run_id="shared")
    waited = time.monotonic() - began
    assert waited > (0.15 if ends == "commits" else 0.45)  # it waited for the first ...
    assert list(runs(config=config)["id"]) == ["shared"]  # ... and one run exists
    work(config, ("default", "side"))
    assert run.status == RunStatus.SUCCEEDED
    assert run.result("last") == sum(i * i for i in range(10)) + 42
    assert not config.client().exists(config.keys.run("shared").staged)


def test_lost_replies_and_cut_connections_make_one_whole_run(
        redis_server: RedisServer, config: RedisConfig, other: RedisConfig,
        chunks: Callable[[int], None], monkeypatch: pytest.MonkeyPatch) -> None:
    """A chunk that ran but whose reply was lost, one whose connection was cut before it was
    sent on, and a commit whose reply was lost: the resends change nothing, and the run is
    the one a single call writes."""
    submit_run = script_match("submit_run")

    def call(phase: bytes, offset: bytes = b"0") -> Callable[[list[bytes]], bool]:
        return lambda a: submit_run(a) and a[-4] == phase and a[-2] == offset

    assert redis_server.port is not None
    with FaultProxy(redis_server.port) as proxy:
        cut = replace(config, url=proxy.url)
        proxy.drop_reply(call(b"stage", b"14"))
        proxy.cut_before(call(b"stage", b"28"))
        proxy.drop_reply(call(b"commit"))
        run = submit(mixed(40), {"x": 3}, config=cut, run_id="cut")
        assert proxy.fired == 3
        monkeypatch.setattr(submit_module, "STAGED_MIN", 10**9)
        submit(mixed(40), {"x": 3}, config=other, run_id="cut")
        client = config.client()
        assert snapshot(client, config, "cut") == snapshot(client, other, "cut")
        work(config, ("default", "side"))
        assert run.status == RunStatus.SUCCEEDED
        cut.close()


@pytest.mark.parametrize("appendonly", [False, True], ids=["data lost", "data kept (AOF)"])
def test_redis_restarted_between_chunks_leaves_one_whole_run(
        fresh_server: Callable[..., RedisServer], chunks: Callable[[int], None],
        monkeypatch: pytest.MonkeyPatch, appendonly: bool) -> None:
    """Redis killed and started again while a chunk is in flight: without persistence the
    staging is gone (the resent chunk is answered 'lost') and the submit begins again; with
    AOF it goes on. Either way one whole run, no staging keys left."""
    server = fresh_server(appendonly=appendonly)
    config = RedisConfig(url=server.url, namespace="restart")
    add_all = submit_module._Plan.add_all
    calls = [0]

    def restarting(self: Any, specs: Any) -> None:
        calls[0] += 1
        if calls[0] == 3:  # the second chunk in flight
            server.kill()
            server.restart()
        add_all(self, specs)

    monkeypatch.setattr(submit_module._Plan, "add_all", restarting)
    attempt = submit_module._Staging._attempt
    replies: list[str] = []

    def counted(self: Any, token: str) -> str:
        replies.append(attempt(self, token))
        return replies[-1]

    monkeypatch.setattr(submit_module._Staging, "_attempt", counted)
    run = submit(mixed(30), {"x": 1}, config=config, run_id="restarted")
    assert replies == (["created"] if appendonly else ["lost", "created"])
    client = config.client()
    assert not [k for k in keys_of(client, config) if k.endswith((":staged", "staging"))]
    assert [len(client.zrange(config.keys.queue(q).wait, 0, -1)) for q in ("default", "side")
            ] == [31, 1]
    work(config, ("default", "side"))
    assert run.status == RunStatus.SUCCEEDED
    assert run.result("last") == sum(i * i for i in range(30)) + 42
    config.close()


def test_a_staged_submit_finishes_the_deletion_of_an_old_run_with_its_id(
        config: RedisConfig, chunks: Callable[[int], None]) -> None:
    """An old run of the same id whose deletion a client left half done: the first chunk is
    answered 'deleting', the submit finishes that deletion and begins again."""
    old = submit(mixed(30), {"x": 1}, config=config, run_id="reused")
    work(config, ("default", "side"))
    assert old.result("last") == sum(i * i for i in range(30)) + 42
    client = config.client()
    keys = config.keys.run("reused")
    client.zrem(config.keys.runs, "reused")  # marked as delete_runs.lua marks it, not deleted
    client.delete(keys.meta)
    client.hset(config.keys.runs_deleting, "reused", "0")
    new = submit(mixed(20), {"x": 5}, config=config, run_id="reused")
    assert not client.hexists(config.keys.runs_deleting, "reused")
    assert client.hlen(keys.tasks) == 24  # the new run's tasks only
    work(config, ("default", "side"))
    assert new.result("scaled") == 6
    assert new.result("last") == sum(i * i for i in range(20)) + 42


def test_a_staging_that_never_ends_is_waited_for_a_bounded_time(
        config: RedisConfig, chunks: Callable[[int], None],
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Another client that keeps staging the run id (its chunks keep its deadline alive) and
    never commits: the submit gives up after twice the staging deadline with `RunStateError`,
    having written nothing of its own."""
    monkeypatch.setattr(transitions, "STAGE_TTL_MS", 300)
    prep = submit_module._prepare(mixed(10), {"x": 1}, "endless", config, None, "auto", 1.0)
    plan = prep.plan
    plan.add_all(prep.specs)
    profiles, stop = list(plan.profiles), threading.Event()

    def stager() -> None:  # chunk after chunk of the same 5 tasks, each at a new offset
        scripts, offset = RunTransitions(config), 0
        while not stop.is_set():
            assert scripts.stage_chunk("endless", "other", offset, profiles, plan.records(0, 5),
                                       plan.blob(0, 5), 5)() == "staged"
            offset += 5
            time.sleep(0.05)

    thread = threading.Thread(target=stager)
    thread.start()
    try:
        time.sleep(0.1)
        began = time.monotonic()
        with pytest.raises(RunStateError, match=r"'endless'.*being submitted.*another client"):
            submit(mixed(10), {"x": 1}, config=config, run_id="endless")
        assert 0.55 < time.monotonic() - began < 5
    finally:
        stop.set()
        thread.join()
    client = config.client()
    assert client.hget(config.keys.run("endless").staged, "token") == b"other"
    assert not client.exists(config.keys.run("endless").meta)


def test_a_worker_sweeps_what_a_dead_client_staged(config: RedisConfig, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """Nobody submits or deletes again after a client died between two chunks: a worker's
    housekeeping (one bounded deletion step every GONE_INTERVAL) removes what it staged once
    its deadline passed."""
    monkeypatch.setattr(transitions, "STAGE_TTL_MS", 500)
    prep = submit_module._prepare(mixed(20), {"x": 1}, "dead", config, None, "auto", 1.0)
    plan = prep.plan
    plan.add_all(prep.specs)
    scripts = RunTransitions(config)
    for start in (0, 10):
        assert scripts.stage_chunk("dead", "tok", start, list(plan.profiles),
                                   plan.records(start, start + 10), plan.blob(start, start + 10),
                                   10)() == "staged"
    client = config.client()

    def staged() -> list[str]:
        return [k for k in keys_of(client, config)
                if ":run:dead:" in k or ":job:dead." in k or k.endswith(":runs:staging")]

    assert len(staged()) > 40
    with worker_processes(config, tmp_path) as spawn:
        spawn("sweeper", ["--queues", "default", "--log-level", "INFO"],
              setup="import ironforge_nb.worker.housekeeping as h; h.GONE_INTERVAL = 0.2")
        wait_for(lambda: not staged(), timeout=20)
    assert not client.hexists(config.keys.runs_deleting, "dead")
