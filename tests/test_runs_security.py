"""Planted pickles on a real redis-server: never executed, the job fails for good with a clear
SignatureError, and a JSON-only worker refuses every pickle."""

from __future__ import annotations

import pickle
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ironforge_nb.dag import Pipeline
from ironforge_nb.orchestrator import Run, codec, execute, submit
from ironforge_nb.queue import Queue, RedisConfig
from ironforge_nb.status import JobStatus, RunStatus
from tests import tasks
from tests.runloop import SECRET, use_test_secret, work


@pytest.fixture(autouse=True)
def secret() -> Iterator[bytes]:
    """Every test signs with the test secret (none leaks into other test modules) and starts
    with an empty function cache, so planted code is really fetched."""
    use_test_secret()
    execute._functions.clear()
    yield SECRET
    codec.set_default_secret(None)


class Canary:
    """Unpickling this creates a file: proof that a planted pickle was unpickled."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self) -> tuple[Any, ...]:
        return (Path.touch, (self.path,))


def toucher(path: Path) -> Any:
    """A legitimate task function that creates ``path`` when it runs."""
    return lambda: path.touch()


def one_task_run(config: RedisConfig, fn: Any) -> tuple[Run, str]:
    p = Pipeline("victim")
    p.task("t", fn)
    run = submit(p, config=config)
    return run, dict(run.job_ids())["t"]


def assert_refused(config: RedisConfig, run: Run, job_id: str, canary: Path,
                   reason: str) -> None:
    info = Queue("default", config).info(job_id)
    assert info.status is JobStatus.FAILED and info.attempts == 1
    assert "SignatureError" in (info.error or "") and reason in (info.error or "")
    assert not canary.exists()
    assert run.status is RunStatus.FAILED


def code_key(config: RedisConfig, redis_client: Any) -> str:
    (key,) = redis_client.keys(config.keys.code("*"))
    return str(key.decode())


def test_code_signed_with_another_secret_never_runs(config: RedisConfig, redis_client: Any,
                                                    tmp_path: Path) -> None:
    """Code replaced by a pickle signed with a wrong secret is refused before unpickling."""
    canary = tmp_path / "canary"
    run, jid = one_task_run(config, tasks.one)
    redis_client.set(code_key(config, redis_client), codec.dumps(Canary(canary), b"attacker"))
    work(config)
    assert_refused(config, run, jid, canary, "does not match")


def test_code_without_signature_never_runs(config: RedisConfig, redis_client: Any,
                                           tmp_path: Path) -> None:
    """A raw pickle planted in the code store is refused as unsigned."""
    canary = tmp_path / "canary"
    run, jid = one_task_run(config, tasks.one)
    redis_client.set(code_key(config, redis_client), pickle.dumps(Canary(canary)))
    work(config)
    assert_refused(config, run, jid, canary, "not signed")


def test_validly_signed_code_under_another_key_never_runs(config: RedisConfig,
                                                         redis_client: Any,
                                                         tmp_path: Path) -> None:
    """Code signed with the right secret but stored under another function's digest is refused:
    a blob is bound to its key, so swapping blobs cannot run one function in another's place."""
    ran = tmp_path / "ran"
    run, jid = one_task_run(config, tasks.one)
    _digest, other = codec.code_blob(toucher(ran), SECRET)
    redis_client.set(code_key(config, redis_client), other)
    work(config)
    assert_refused(config, run, jid, ran, "not the code the task names")


def test_raw_pickle_payload_never_runs(config: RedisConfig, redis_client: Any,
                                       tmp_path: Path) -> None:
    """A job payload replaced by a raw pickle is refused: payloads are JSON."""
    canary = tmp_path / "canary"
    run, jid = one_task_run(config, tasks.one)
    redis_client.set(config.keys.payload(jid), pickle.dumps(Canary(canary)))
    work(config)
    assert_refused(config, run, jid, canary, "raw pickles")


def test_forged_argument_blob_never_runs(config: RedisConfig, redis_client: Any,
                                         tmp_path: Path) -> None:
    """A payload whose pickled arguments carry a forged signature is refused."""
    canary = tmp_path / "canary"
    run, jid = one_task_run(config, tasks.one)
    head = redis_client.get(config.keys.payload(jid)).partition(b"\n")[0]
    forged = head + b"\n" + codec.dumps({"item": Canary(canary)}, b"attacker")
    redis_client.set(config.keys.payload(jid), forged)
    work(config)
    assert_refused(config, run, jid, canary, "does not match")


def test_tampered_parent_result_is_refused(config: RedisConfig, redis_client: Any,
                                           tmp_path: Path) -> None:
    """A child whose parent's result was replaced by a forged pickle fails and runs nothing."""
    canary, ran = tmp_path / "canary", tmp_path / "child-ran"
    p = Pipeline("victim")
    p.task("a", tasks.one)
    p.task("b", lambda a: ran.touch(), after="a")
    run = submit(p, config=config)
    jobs = dict(run.job_ids())
    queue = Queue("default", config)
    lease = queue.dequeue("w", timeout=0)
    assert lease is not None
    queue.complete(lease, codec.dumps(Canary(canary), b"attacker"))
    work(config)
    assert_refused(config, run, jobs["b"], canary, "does not match")
    assert not ran.exists()


def test_json_only_worker_refuses_pickled_code(config: RedisConfig, tmp_path: Path) -> None:
    """A worker in JSON-only mode fails a pickle-mode job without running its function."""
    ran = tmp_path / "ran"
    run, jid = one_task_run(config, toucher(ran))
    work(config, json_only=True)
    assert_refused(config, run, jid, ran, "JSON-only")


def test_worker_without_secret_refuses_pickled_code(config: RedisConfig, tmp_path: Path) -> None:
    """A worker with no secret cannot verify shipped code, so it never runs it."""
    ran = tmp_path / "ran"
    run, jid = one_task_run(config, toucher(ran))
    work(config, secret=None)
    assert_refused(config, run, jid, ran, "IRONFORGE_SECRET")


def test_correctly_signed_code_does_run(config: RedisConfig, tmp_path: Path) -> None:
    """The same kind of function, untampered, runs (the refusals above are not vacuous)."""
    ran = tmp_path / "ran"
    run, _ = one_task_run(config, toucher(ran))
    work(config)
    assert ran.exists() and run.status is RunStatus.SUCCEEDED
