"""The cross-run cache: hits at submit, what invalidates a key, expiry, clearing, the views.

Jobs run in-process (`runloop.work`); each test has its own namespace on the session server.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import pandas as pd
import pytest

import ironforge_nb as ifn
from ironforge_nb.dag import Pipeline
from ironforge_nb.errors import InvalidOptionError
from ironforge_nb.orchestrator import Run
from ironforge_nb.orchestrator.cachekey import code_fingerprint, value_digest
from ironforge_nb.queue import RedisConfig
from ironforge_nb.queue.keys import JOB_PAYLOAD_SUFFIX
from ironforge_nb.status import EventType, JobStatus, RunStatus
from tests.runloop import work

pytestmark = pytest.mark.usefixtures("signing_secret")

CALLS: list[str] = []


def load() -> list[int]:
    CALLS.append("load")
    return [1, 2, 3]


def double(load: list[int]) -> list[int]:
    CALLS.append("double")
    return [2 * x for x in load]


def triple(load: list[int]) -> list[int]:
    CALLS.append("triple")
    return [3 * x for x in load]


def total(double: list[int]) -> int:
    CALLS.append("total")
    return sum(double)


def side(load: list[int]) -> int:
    CALLS.append("side")
    return len(load)


def chain(middle: Any = double, **options: Any) -> Pipeline:
    """load -> double (or ``middle``) -> total, and load -> side."""
    p = Pipeline("chain", cache=True)
    p.task("load", load).task("double", middle, after="load").task("total", total,
                                                                   after="double")
    p.task("side", side, after="load", **options)
    return p


def run_once(p: Pipeline, config: RedisConfig, **kw: Any) -> Run:
    CALLS.clear()
    run = p.submit(config=config, **kw)
    work(config)
    return run.wait(timeout=10)


def test_an_unchanged_pipeline_is_served_from_the_cache(config: RedisConfig) -> None:
    """Second submit: nothing runs, the run has succeeded at once, results equal, origin shown."""
    first = run_once(chain(), config)
    assert sorted(CALLS) == ["double", "load", "side", "total"]
    second = run_once(chain(), config)
    assert CALLS == [] and second.status is RunStatus.SUCCEEDED
    assert second.results() == first.results() == {"load": [1, 2, 3], "double": [2, 4, 6],
                                                   "total": 12, "side": 3}
    frame = second.to_dataframe()
    assert frame["cached"].tolist() == [first.id] * 4 and frame["attempts"].tolist() == [0] * 4
    assert second.info()["cached"] == 4 and second.info()["completed"] == 4
    cached = [e for e in second.events() if e.cached]
    assert {e.task for e in cached} == {"load", "double", "total", "side"}
    assert all(e.cached == first.id for e in cached)


def test_changing_one_function_reruns_it_and_its_descendants(config: RedisConfig) -> None:
    """double -> triple: double and total run again; load and side stay cached."""
    run_once(chain(), config)
    changed = run_once(chain(middle=triple), config)
    assert sorted(CALLS) == ["total", "triple"]
    assert changed.result("total") == 18
    cached = changed.to_dataframe().set_index("task")["cached"]
    assert cached.isna().tolist() == [False, True, True, False]


def test_a_cached_hit_chain_survives_the_origin_run(config: RedisConfig) -> None:
    """After a hit the entry names the newest copy: deleting the origin run is not a miss."""
    first = run_once(chain(), config)
    run_once(chain(), config)
    first.delete()
    third = run_once(chain(), config)
    assert CALLS == [] and third.result("total") == 12


def test_a_deleted_source_is_a_miss_not_an_error(config: RedisConfig) -> None:
    """The run holding the cached results deleted: the next submit computes everything."""
    first = run_once(chain(), config)
    first.delete()
    again = run_once(chain(), config)
    assert sorted(CALLS) == ["double", "load", "side", "total"]
    assert again.result("total") == 12 and again.to_dataframe()["cached"].isna().all()


def test_an_expired_result_is_a_miss(config: RedisConfig) -> None:
    """A source result gone from Redis (expired) makes that task miss; its children keep
    theirs (keys chain parents' keys, not values: same code, same inputs, same result)."""
    first = run_once(chain(), config)
    jobs = dict(first.job_ids())
    config.client().delete(config.keys.result(jobs["double"]))
    again = run_once(chain(), config)
    assert CALLS == ["double"] and again.result("total") == 12


def test_cache_false_on_a_task_reruns_it(config: RedisConfig) -> None:
    """A task with cache=False runs every time; the others stay cached."""
    run_once(chain(cache=False), config)
    run_once(chain(cache=False), config)
    assert CALLS == ["side"]


def test_an_uncached_parent_reruns_its_descendants(config: RedisConfig) -> None:
    """A parent that is not cached gives its children a key of this run: they run too."""
    def build() -> Pipeline:
        p = Pipeline("up", cache=True)
        p.task("load", load, cache=False).then("double", double)
        return p

    run_once(build(), config)
    run_once(build(), config)
    assert CALLS == ["load", "double"]


def test_submit_cache_overrides_the_pipeline(config: RedisConfig) -> None:
    """submit(cache=False) runs everything; submit(cache=True) caches a cache=False pipeline."""
    run_once(chain(), config)
    run_once(chain(), config, cache=False)
    assert len(CALLS) == 4
    plain = Pipeline("plain").task("load", load)
    run_once(plain, config, cache=True)
    run_once(plain, config, cache=True)
    assert CALLS == []


def test_cache_ttl_expires_the_entry(config: RedisConfig) -> None:
    """cache_ttl: once the entry has expired, the task (and its descendants) run again."""
    run_once(chain(cache_ttl=0.05), config)
    # the 50 ms entry may be gone before the run has been waited for (a loaded machine)
    deadline = time.monotonic() + 5
    while any(k.task == "side" for k in ifn.cache.entries(config=config).itertuples()) and \
            time.monotonic() < deadline:
        time.sleep(0.01)
    run_once(chain(cache_ttl=0.05), config)
    assert CALLS == ["side"]


def test_changed_params_constants_and_items_miss(config: RedisConfig) -> None:
    """Run params, constants and map items are part of the key."""
    def build(k: int) -> Pipeline:
        p = Pipeline("inputs", cache=True)
        p.task("scale", scale, params={"k": k})
        p.map("each", scale_item, over=[1, 2], after="scale")
        return p

    run_once(build(2), config, params={"offset": 1})
    run_once(build(2), config, params={"offset": 1})
    assert CALLS == []
    run_once(build(2), config, params={"offset": 5})
    assert sorted(CALLS) == ["each", "each", "scale"]
    run_once(build(3), config, params={"offset": 5})
    assert sorted(CALLS) == ["each", "each", "scale"]


def scale(k: int, offset: int) -> int:
    CALLS.append("scale")
    return k + offset


def scale_item(item: int, scale: int) -> int:
    CALLS.append("each")
    return item * scale


def test_an_unhashable_param_is_refused_naming_task_and_param(config: RedisConfig) -> None:
    """Values the cache cannot hash (a pickle that changes each time; none at all): clear
    errors naming the task and the param, and nothing is written."""
    p = Pipeline("bad", cache=True)
    p.task("use", use_lock, params={"lock": _Noisy()})
    with pytest.raises(InvalidOptionError, match=r"param 'lock' of task 'use'.*cache=False"):
        p.submit(config=config, run_id="bad-1")
    with pytest.raises(InvalidOptionError, match=r"param 'day' of task 'use'.*differs"):
        Pipeline("bad", cache=True).task("use", use_lock, params=["day"]).submit(
            config=config, run_id="bad-1", params={"day": _Noisy()})
    p = Pipeline("bad", cache=True).task("use", use_lock, params={"lock": _Unpicklable()})
    with pytest.raises(InvalidOptionError, match=r"task 'use'.*lock"):
        p.submit(config=config, run_id="bad-1")
    assert not config.client().exists(config.keys.run("bad-1").meta)


class _Noisy:
    """Picklable, but its pickle differs from one dump to the next."""

    def __reduce__(self) -> Any:
        return (_Noisy._make, (time.perf_counter_ns(),))

    @staticmethod
    def _make(_stamp: int) -> _Noisy:
        return _Noisy()


class _Unpicklable:
    def __reduce__(self) -> Any:
        raise TypeError("no pickling this")


def test_expired_entries_leave_the_entries_hash_at_the_next_cached_submit(
        config: RedisConfig) -> None:
    """An expired entry is no hit, and the next cached submit (any pipeline) prunes it from
    the entries HASH and the index, so dead entries do not pile up in Redis."""
    run_once(chain(cache_ttl=0.05), config)
    client = config.client()
    # "<job> <origin> <created> <expires> <task> <pipeline>": the raw entry stays until pruned
    raw = {v.split()[4].decode(): (k.decode(), int(v.split()[3]))
           for k, v in client.hgetall(config.keys.cache_entries).items()}
    side_key, expires = raw["side"]
    while client.time()[0] * 1000 <= expires:
        time.sleep(0.02)
    assert "side" not in set(ifn.cache.entries(config=config)["task"])
    run_once(Pipeline("other", cache=True).task("load", load), config)
    assert not client.hexists(config.keys.cache_entries, side_key)
    assert client.zscore(config.keys.cache_index, side_key) is None
    assert client.hlen(config.keys.cache_entries) == 4  # chain's 3 + other's load


def test_the_prune_keeps_a_default_entry_while_its_result_lives(config: RedisConfig) -> None:
    """An entry with the default lifetime is due in the index when its result would first have
    expired; hits extend that result, so the prune looks at it: a live result's entry is
    scored again at the result's expiry, a gone one's leaves."""
    first = run_once(chain(), config)
    client = config.client()
    keys = [k for k, _ in client.zrange(config.keys.cache_index, 0, -1, withscores=True)]
    client.zadd(config.keys.cache_index, dict.fromkeys(keys, 1))  # all due now
    client.delete(config.keys.result(dict(first.job_ids())["side"]))
    run_once(Pipeline("other", cache=True).task("load", load), config)
    left = ifn.cache.entries("chain", config=config)
    assert sorted(left["task"]) == ["double", "load", "total"]
    now_ms = client.time()[0] * 1000
    ttl_ms = config.result_ttl * 1000
    for key in keys:
        score = client.zscore(config.keys.cache_index, key)
        assert score is None or now_ms + ttl_ms - 60_000 < score <= now_ms + ttl_ms + 1000


def test_a_hit_renews_a_default_entry_and_keeps_a_cache_ttl(config: RedisConfig) -> None:
    """With the default lifetime a hit pushes the entry's expiry (its holder's result) to
    result_ttl from now; a task's own cache_ttl counts from when the result was computed, hits
    or not. A hit points at the holder's result: the entry still names the job that computed
    it, and the hit's job has neither a payload (it never runs) nor a result of its own, names
    the holder in `source_job` (and no `source_run`, `progress`, `created` or `cache_key`:
    readers derive them; the holder has the key) and is listed in the borrowers log of the
    holder's run."""
    first = run_once(chain(cache_ttl=60), config)
    before = ifn.cache.entries(config=config).set_index("task")
    time.sleep(0.02)
    second = run_once(chain(cache_ttl=60), config)
    assert CALLS == []
    after = ifn.cache.entries(config=config).set_index("task")
    assert after.loc["double", "expires"] > before.loc["double", "expires"]
    assert after.loc["side", "expires"] == before.loc["side", "expires"]
    assert (after["job"] == before["job"]).all() and (after["origin"] == before["origin"]).all()
    assert (after["created"] == before["created"]).all()
    client = config.client()
    holders = dict(first.job_ids())
    for task, job in second.job_ids():
        assert client.exists(config.keys.job_prefix + job + JOB_PAYLOAD_SUFFIX) == 0
        assert client.exists(config.keys.result(job)) == 0
        assert client.hget(config.keys.job(job), "source_job") == holders[task].encode()
        assert client.hmget(config.keys.job(job), "source_run", "progress", "created",
                            "cache_key") == [None] * 4
        key = client.hget(config.keys.job(holders[task]), "cache_key")
        assert key is not None and key.decode() == after.loc[task, "key"]
        state = second.task(task)
        assert state.source_run == first.id and state.progress == 1.0
        assert state.created == state.finished is not None
    log = client.get(config.keys.run(first.id).borrowers).decode()
    assert sorted(log.splitlines()) == sorted(f"{holders[t]} {j}" for t, j in second.job_ids())
    assert second.results() == first.results()
    assert second.result("total") == 12


def test_deleting_the_holder_hands_its_result_to_a_borrower(config: RedisConfig) -> None:
    """Three runs, the 2nd and 3rd served from the 1st: deleting the 1st moves each result to
    the 2nd (renamed: nothing stays under the deleted run's job ids), points the 3rd at the
    2nd and the entries at the 2nd's jobs; deleting the 2nd then moves them to the 3rd. The
    results of every run that exists stay readable all along, and the cache keeps hitting."""
    first = run_once(chain(), config)
    second = run_once(chain(), config)
    third = run_once(chain(), config)
    client = config.client()
    want = first.results()
    first.delete()
    assert not client.keys(config.keys.job_prefix + first.id + ".*")
    assert second.results() == third.results() == want
    jobs2, jobs3 = dict(second.job_ids()), dict(third.job_ids())
    for task, job in jobs2.items():
        assert client.exists(config.keys.result(job)) == 1
        assert client.hget(config.keys.job(job), "source_job") is None
        assert client.hget(config.keys.job(jobs3[task]), "source_job") == job.encode()
    frame = ifn.cache.entries("chain", config=config).set_index("task")
    assert frame["job"].to_dict() == jobs2 and (frame["origin"] == first.id).all()
    assert frame["live"].all()
    assert second.to_dataframe()["cached"].tolist() == [first.id] * 4
    assert third.to_dataframe()["cached"].tolist() == [first.id] * 4
    assert [t.source_run for t in third.tasks()] == [first.id] * 4
    second.delete()
    assert third.results() == want
    assert ifn.cache.entries("chain", config=config).set_index("task")["job"].to_dict() == jobs3
    fourth = run_once(chain(), config)
    assert CALLS == [] and fourth.results() == want
    third.delete()
    fourth.delete()
    assert not client.keys(config.keys.job_prefix + "*")


def test_a_submits_hits_are_one_stream_entry_read_as_completed_events(
        config: RedisConfig) -> None:
    """A submit's hits are one 'cache_hits' entry of the run's stream (not an entry each):
    Run.events() and the monitor's tracker read it as a 'completed' event per task, with the
    run that computed it; the counters, the frame and the history say the same."""
    from ironforge_nb.widgets.tracker import RunTracker

    first = run_once(chain(), config)
    second = run_once(chain(), config)
    raw = config.client().xrange(config.keys.run(second.id).events)
    assert [fields[b"type"] for _, fields in raw] == [b"run_submitted", b"cache_hits",
                                                      b"run_finished"]
    done = [e for e in second.events() if e.type is EventType.COMPLETED]
    assert [(e.job, e.task, e.queue, e.status, e.cached) for e in done] == [
        (job, task, "default", JobStatus.COMPLETED, first.id) for task, job in second.job_ids()]
    assert all(e.id == raw[1][0].decode() and e.run == second.id for e in done)
    tracker = RunTracker(second)
    tracker.load()
    for record in tracker.tasks.values():  # as if it had followed the run from its start
        tracker._set_status(record, "waiting")
    tracker._apply(raw)
    assert tracker.statuses() == dict.fromkeys(["load", "double", "total", "side"], "completed")
    assert second.counts()["completed"] == 4 and second.info()["cached"] == 4
    assert ifn.runs(config)["completed"].tolist()[0] == 4


def test_a_hit_on_a_run_being_deleted_joins_its_holders_at_once(config: RedisConfig) -> None:
    """Deleting a run first files its borrowers log under each job, in bounded steps; a run
    submitted meanwhile that hits its jobs joins their borrowers at once, and gets the
    results handed over like the runs before it."""
    from ironforge_nb.orchestrator.run_transitions import RunTransitions

    first = run_once(chain(), config)
    second = run_once(chain(), config)
    want = first.results()
    scripts = RunTransitions(config)
    assert scripts.delete_runs(first.id, retention=False, budget=2) == (1, 0)  # 2 lines filed
    third = run_once(chain(), config)  # its results still live: hits
    assert CALLS == [] and third.to_dataframe()["cached"].tolist() == [first.id] * 4
    scripts.purge(retention=False)
    client = config.client()
    assert not client.keys(config.keys.job_prefix + first.id + ".*")
    assert not client.exists(config.keys.run(first.id).borrowers)
    assert second.results() == third.results() == want
    jobs2, jobs3 = dict(second.job_ids()), dict(third.job_ids())
    entries = ifn.cache.entries("chain", config=config).set_index("task")["job"].to_dict()
    for task in jobs2:  # one of the two holds the result (the first borrower), named by the
        pair = (jobs2[task], jobs3[task])  # entry; the other points at it
        heir = entries[task]
        other = pair[1] if heir == pair[0] else pair[0]
        assert heir in pair and client.hget(config.keys.job(heir), "source_job") is None
        assert client.hget(config.keys.job(other), "source_job") == heir.encode()
    assert second.to_dataframe()["cached"].tolist() == [first.id] * 4
    assert third.to_dataframe()["cached"].tolist() == [first.id] * 4


def blob() -> bytes:
    CALLS.append("blob")
    return b"x" * 100_000  # above a claim's inline limit (64 KiB): the executor reads it


def size(blob: bytes) -> int:
    CALLS.append("size")
    return len(blob)


def half(blob: bytes) -> int:
    CALLS.append("half")
    return len(blob) // 2


def test_a_child_reads_a_cached_parent_through_its_holder(config: RedisConfig) -> None:
    """A changed task whose parents hit reads their results from the jobs holding them:
    inlined in its claim (small) or read by the executor (big)."""
    def p(fn: Any) -> Pipeline:
        return (Pipeline("reads", cache=True).task("load", load).task("blob", blob)
                .task("out", fn, after=["load", "blob"]))

    run_once(p(lambda load, blob: (len(load), size(blob))), config)
    changed = run_once(p(lambda load, blob: (sum(load), half(blob))), config)
    assert CALLS == ["half"] and changed.result("out") == (6, 50_000)
    assert changed.to_dataframe().set_index("task")["cached"].notna().to_dict() == {
        "load": True, "blob": True, "out": False}


def use_lock(lock: Any = None, day: Any = None) -> None:
    return None


def test_clear_drops_one_pipelines_entries(config: RedisConfig) -> None:
    """clear("chain") drops only chain's entries; the next submit computes again."""
    run_once(chain(), config)
    run_once(Pipeline("other", cache=True).task("load", load), config)
    assert set(ifn.cache.entries(config=config)["pipeline"]) == {"chain", "other"}
    assert ifn.cache.clear("chain", config=config) == 4
    assert ifn.cache.entries(config=config)["pipeline"].tolist() == ["other"]
    run_once(chain(), config)
    assert len(CALLS) == 4
    assert ifn.cache.clear(config=config) == 5


def test_entries_frame_says_which_entries_hit(config: RedisConfig) -> None:
    """entries(): one row per task, with origin run, live flag and size; a gone result shows."""
    first = run_once(chain(), config)
    frame = ifn.cache.entries("chain", config=config).set_index("task")
    assert list(frame.reset_index().columns) == ["task", *(c for c in ifn.cache.ENTRY_COLUMNS
                                                         if c != "task")]
    assert set(frame.index) == {"load", "double", "total", "side"}
    assert (frame["origin"] == first.id).all() and frame["live"].all()
    assert (frame["bytes"] > 0).all() and frame["expires"].notna().all()
    config.client().delete(config.keys.result(dict(first.job_ids())["total"]))
    frame = ifn.cache.entries("chain", config=config).set_index("task")
    assert not frame.loc["total", "live"] and frame.loc["double", "live"]


def test_the_graph_shows_cached_tasks(config: RedisConfig) -> None:
    """The run's drawing colors tasks served from the cache as 'cached'."""
    run_once(chain(), config)
    changed = run_once(chain(middle=triple), config)
    _dag, _info, statuses = changed._snapshot()
    assert statuses == {"load": "cached", "double": "completed", "total": "completed",
                        "side": "cached"}
    assert "cached" in changed._repr_mimebundle_()["text/html"]


def test_task_states_and_the_monitor_name_the_source_run(config: RedisConfig) -> None:
    """run.task() carries the source run; the monitor's row facts say "cached (run ...)"."""
    from ironforge_nb.widgets.text import task_details

    first = run_once(chain(), config)
    second = run_once(chain(middle=triple), config)
    assert second.task("load").source_run == first.id
    assert second.task("double").source_run is None
    assert task_details(second.task("load"))[0] == f"cached (run {first.id})"


def test_import_path_tasks_key_on_their_version(config: RedisConfig) -> None:
    """A JSON-mode task is keyed by its path and version=: a new version runs again."""
    def build(version: str) -> Pipeline:
        p = Pipeline("paths", cache=True)
        p.task("rows", "ironforge_nb.demo:clean", params={"rows": []}, version=version)
        return p

    run_once(build("1"), config)
    second = run_once(build("1"), config)
    assert second.to_dataframe()["cached"].notna().all()
    third = run_once(build("2"), config)
    assert third.to_dataframe()["cached"].isna().all()


# ---------------------------------------------------------------------- key unit tests


def _v1(x: int) -> int:
    """Doubles."""
    return x * 2  # a comment


def _v1_reworded(x: int) -> int:
    """Twice the input, said differently."""
    return x * 2


def _v2(x: int) -> int:
    return x * 3


def test_docstrings_comments_and_names_do_not_change_the_code_key() -> None:
    """Only what the function computes counts: docstrings and comments do not, bodies do."""
    body = code_fingerprint(_v1)
    assert code_fingerprint(_v1_reworded) != body  # a different name is a different def
    assert code_fingerprint(_v1) == body
    assert code_fingerprint(_v2) != body


def test_closures_and_helpers_are_part_of_the_code_key() -> None:
    """A closure's values and the same-module helpers a function calls change its key."""
    def make(k: int) -> Any:
        def fn(x: int) -> int:
            return x * k
        return fn

    assert code_fingerprint(make(2)) == code_fingerprint(make(2))
    assert code_fingerprint(make(2)) != code_fingerprint(make(3))

    def caller(x: int) -> int:
        return _v1(x)

    before = code_fingerprint(caller)
    global _v1
    saved = _v1
    _v1 = _v2  # type: ignore[assignment]
    try:
        assert code_fingerprint(caller) != before
    finally:
        _v1 = saved  # type: ignore[assignment]


def test_import_paths_key_on_path_and_version() -> None:
    """An import path cannot be hashed: its key is the path plus version=."""
    assert code_fingerprint("a.b:c", "1") == code_fingerprint("a.b:c", "1")
    assert code_fingerprint("a.b:c", "1") != code_fingerprint("a.b:c", "2")


def test_frames_and_arrays_hash_by_content() -> None:
    """Equal DataFrames and arrays hash alike; a changed cell or dtype does not."""
    frame = pd.DataFrame({"a": [1, 2], "b": ["x", "y"]})
    assert value_digest(frame) == value_digest(frame.copy())
    changed = frame.copy()
    changed.loc[1, "a"] = 3
    assert value_digest(changed) != value_digest(frame)
    assert value_digest(frame.astype({"a": "int32"})) != value_digest(frame)
    arr = np.arange(6)
    assert value_digest(arr) == value_digest(arr.copy())
    assert value_digest(arr.reshape(2, 3)) != value_digest(arr)
    assert value_digest({"a": 1, "b": [1, 2]}) == value_digest({"b": [1, 2], "a": 1})
    assert value_digest((1, 2)) != value_digest([1, 2])
