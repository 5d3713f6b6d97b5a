"""Big results off Redis: the result store (a directory, or S3 on a loopback moto server),
references checked by size and digest, formats, and cleanup with runs and cache pins.

Jobs run in-process (`runloop.work`) with a config whose ``result_store`` is set, as workers
get it from ``IRONFORGE_RESULT_STORE``.
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from ironforge_nb.dag import Pipeline
from ironforge_nb.errors import (
    ConfigError,
    InvalidOptionError,
    ResultMissingError,
    TaskError,
    TaskFailedError,
)
from ironforge_nb.orchestrator import Run
from ironforge_nb.orchestrator.store import REF_MAGIC, check_store, is_ref
from ironforge_nb.queue import RedisConfig
from tests.runloop import work

pytestmark = pytest.mark.usefixtures("signing_secret")

ROWS = 40_000  # two float64 columns: 640 KB; the tests lower the threshold to 64 KiB


@pytest.fixture
def stored(config: RedisConfig, tmp_path: Path) -> RedisConfig:
    """``config`` with a result store in a temp dir and a 64 KiB threshold."""
    return dataclasses.replace(config, result_store=str(tmp_path / "results"),
                               result_threshold=64 * 1024)


def frame() -> pd.DataFrame:
    rng = np.random.default_rng(7)
    return pd.DataFrame({"x": rng.random(ROWS), "y": rng.random(ROWS)})


def mixed() -> pd.DataFrame:
    """Every dtype Parquet must give back, with a named index."""
    n = ROWS
    out = pd.DataFrame({
        "f": np.linspace(0, 1, n), "i": np.arange(n, dtype="int32"),
        "s": [f"r{i}" for i in range(n)], "b": np.arange(n) % 2 == 0,
        "t": pd.date_range("2026-01-01", periods=n, freq="s", tz="UTC"),
        "c": pd.Categorical(["a", "b"] * (n // 2)),
        "n": pd.array([None if i % 7 == 0 else i for i in range(n)], dtype="Int64"),
    })
    out.index = pd.Index(np.arange(n) * 2, name="row")
    return out


def odd_frame() -> pd.DataFrame:
    """Parquet cannot take it (integer column labels, mixed object column): pickled."""
    return pd.DataFrame({0: list(range(ROWS)), 1: [1 if i % 2 else "a" for i in range(ROWS)]})


def total(frame: pd.DataFrame) -> float:
    return float(frame["x"].sum() + frame["y"].sum())


def series() -> pd.Series:
    return pd.Series(np.arange(ROWS, dtype="float64"), name="amount")


def array() -> np.ndarray:
    return np.arange(ROWS * 2, dtype="int64").reshape(-1, 2)


def table() -> pa.Table:
    return pa.table({"a": np.arange(ROWS * 2)})


def big_list() -> list[int]:
    return list(range(ROWS))


def small() -> int:
    return 7


def run_pipeline(p: Pipeline, config: RedisConfig, **kw: Any) -> Run:
    run = p.submit(config=config, **kw)
    work(config)
    return run.wait(timeout=10)


def stored_blob(config: RedisConfig, run: Run, task: str) -> bytes:
    blob: bytes = config.client().get(config.keys.result(dict(run.job_ids())[task]))
    return blob


def files(config: RedisConfig) -> list[Path]:
    assert config.result_store is not None
    return sorted(p for p in Path(config.result_store).rglob("*") if p.is_file())


def test_a_big_frame_goes_to_the_store_as_parquet(stored: RedisConfig) -> None:
    """The frame is a Parquet file; Redis holds a small reference; the child reads it."""
    p = Pipeline("big").task("frame", frame).then("total", total)
    run = run_pipeline(p, stored)
    blob = stored_blob(stored, run, "frame")
    assert is_ref(blob) and len(blob) < 1000 and b'"format":"parquet"' in blob
    pd.testing.assert_frame_equal(run.result("frame"), frame())
    assert run.result("total") == pytest.approx(total(frame()))
    assert [f.suffix for f in files(stored)] == [".parquet"]
    assert not is_ref(stored_blob(stored, run, "total"))  # a float stays in Redis


@pytest.mark.parametrize(("fn", "fmt"), [(mixed, "parquet"), (odd_frame, "blob"),
                                          (series, "parquet"), (array, "npy"),
                                          (table, "arrow"), (big_list, "blob")])
def test_each_kind_of_value_round_trips(stored: RedisConfig, fn: Any, fmt: str) -> None:
    """Frames (a dtype matrix), frames Parquet cannot hold, Series, arrays, Arrow tables and
    other big values come back equal, each in its format."""
    run = run_pipeline(Pipeline("kinds").task("value", fn), stored)
    assert f'"format":"{fmt}"'.encode() in stored_blob(stored, run, "value")
    got, want = run.result("value"), fn()
    if isinstance(want, pd.DataFrame):
        pd.testing.assert_frame_equal(got, want)
    elif isinstance(want, pd.Series):
        pd.testing.assert_series_equal(got, want)
    elif isinstance(want, np.ndarray):
        np.testing.assert_array_equal(got, want)
    elif isinstance(want, pa.Table):
        assert got.equals(want)
    else:
        assert got == want


def test_small_results_stay_in_redis(stored: RedisConfig) -> None:
    """Below the threshold nothing is written to the store."""
    run = run_pipeline(Pipeline("small").task("small", small), stored)
    assert stored_blob(stored, run, "small")[:5] != REF_MAGIC and files(stored) == []


def test_a_missing_file_names_run_task_and_location(stored: RedisConfig) -> None:
    """A result file deleted by hand: ResultMissingError with the run, the task, the path."""
    run = run_pipeline(Pipeline("gone").task("frame", frame), stored)
    (path,) = files(stored)
    path.unlink()
    with pytest.raises(ResultMissingError) as caught:
        run.result("frame")
    err = caught.value
    assert (err.run_id, err.task, err.location) == (run.id, "frame", str(path))
    assert str(path) in str(err)


def test_a_changed_file_is_refused(stored: RedisConfig) -> None:
    """The reader checks the size and the digest (computed while Arrow decodes the file: a
    file Arrow cannot read at all is reported as the mismatch it is, not as Arrow's error)."""
    run = run_pipeline(Pipeline("tamper").task("frame", frame), stored)
    (path,) = files(stored)
    data = bytearray(path.read_bytes())
    data[100] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(TaskError, match="does not match its reference"):
        run.result("frame")
    path.write_bytes(bytes(data[: len(data) // 2]))  # no Parquet footer any more
    with pytest.raises(TaskError, match=r"does not match its reference \(size \d+, expected"):
        run.result("frame")


def test_files_are_deleted_with_their_run(stored: RedisConfig) -> None:
    """Run.delete removes the run's result files and its directory."""
    run = run_pipeline(Pipeline("del").task("frame", frame).task("arr", array), stored)
    assert len(files(stored)) == 2
    run.delete()
    assert files(stored) == []
    assert not (Path(stored.result_store or "") / stored.namespace / "runs" / run.id).exists()


def test_a_cache_hit_keeps_the_file_past_its_run(stored: RedisConfig) -> None:
    """A cache hit reads the origin run's reference: deleting the origin hands it to the hit's
    job, whose pin keeps the file; deleting that run too removes it."""
    p = Pipeline("pin", cache=True).task("frame", frame)
    first = run_pipeline(p, stored)
    second = run_pipeline(p, stored)
    assert second.to_dataframe()["cached"].tolist() == [first.id]
    assert not stored.client().exists(stored.keys.result_pins)  # a hit pins nothing
    first.delete()
    assert len(files(stored)) == 1
    assert stored.client().hlen(stored.keys.result_pins) == 1
    pd.testing.assert_frame_equal(second.result("frame"), frame())
    second.delete()
    assert files(stored) == []
    assert not stored.client().exists(stored.keys.result_pins)


def test_an_unwritable_store_fails_the_task_and_writes_nothing(stored: RedisConfig,
                                                                tmp_path: Path) -> None:
    """A store that cannot be written: the task fails with the store's error (retried like
    any failure) and no result is stored."""
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the store's directory should be")
    bad = dataclasses.replace(stored, result_store=str(blocker / "results"))
    run = Pipeline("unwritable").task("frame", frame, retries=1).submit(config=bad,
                                                                        backoff=0.01)
    work(bad)
    time.sleep(0.05)  # the retry's backoff
    work(bad)
    run.wait(timeout=10)
    with pytest.raises(TaskFailedError, match=r"NotADirectoryError|FileExistsError"):
        run.result("frame")
    assert run.to_dataframe()["attempts"].tolist() == [2]
    assert stored_blob(bad, run, "frame") is None


def test_a_missing_backend_names_the_package() -> None:
    """An fsspec URL whose backend is not installed says what to pip install."""
    with pytest.raises(ConfigError, match="pip install"):
        check_store("nosuchproto://bucket/prefix")


# ---------------------------------------------------------------------- S3 (moto, loopback)


@pytest.fixture(scope="module")
def s3_server() -> Iterator[str]:
    """A moto S3 server on a free loopback port, with a bucket; fsspec finds it through
    FSSPEC_S3_* variables (inherited by workers)."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    env = {"FSSPEC_S3_ENDPOINT_URL": endpoint, "FSSPEC_S3_KEY": "test",
           "FSSPEC_S3_SECRET": "test", "AWS_DEFAULT_REGION": "us-east-1"}
    with pytest.MonkeyPatch.context() as mp:
        for name, value in env.items():
            mp.setenv(name, value)
        import fsspec.config

        fsspec.config.set_conf_env(fsspec.config.conf)
        import s3fs

        fs = s3fs.S3FileSystem(skip_instance_cache=True)
        fs.mkdir("results-bucket")
        yield "s3://results-bucket/ifn"
        fsspec.config.conf.pop("s3", None)
    server.stop()


def test_an_s3_store_holds_big_results(config: RedisConfig, s3_server: str) -> None:
    """With result_store=s3://..., the frame is an object in the bucket; the child and the
    notebook read it back; Run.delete removes it."""
    import s3fs

    s3 = dataclasses.replace(config, result_store=s3_server, result_threshold=64 * 1024)
    run = run_pipeline(Pipeline("s3").task("frame", frame).then("total", total), s3)
    assert b'"url":"s3://results-bucket/ifn/' in stored_blob(s3, run, "frame")
    pd.testing.assert_frame_equal(run.result("frame"), frame())
    assert run.result("total") == pytest.approx(total(frame()))
    fs = s3fs.S3FileSystem(skip_instance_cache=True)
    folder = f"results-bucket/ifn/{config.namespace}/runs/{run.id}"
    assert len(fs.ls(folder, refresh=True)) == 1
    run.delete()
    fs.invalidate_cache()
    assert fs.find(f"results-bucket/ifn/{config.namespace}") == []


# ---------------------------------------------------------------------- orphan sweep


def _age(path: Path, seconds: float) -> None:
    then = time.time() - seconds
    os.utime(path, (then, then))


def test_sweep_deletes_old_files_nothing_references(stored: RedisConfig) -> None:
    """sweep_results: files of a run whose Redis state is gone, an expired result's file and a
    refused attempt's file go once older than the limit; a live run's referenced file, a
    pinned file, a young orphan and a run being deleted are kept; dry_run deletes nothing."""
    import ironforge_nb as ifn

    client = stored.client()
    live = run_pipeline(Pipeline("live").task("frame", frame), stored)
    expired = run_pipeline(Pipeline("expired").task("frame", frame).task("arr", array), stored)
    pinned = run_pipeline(Pipeline("pinned", cache=True).task("frame", frame), stored)
    holder = run_pipeline(Pipeline("pinned", cache=True).task("frame", frame), stored)
    assert holder.to_dataframe()["cached"].tolist() == [pinned.id]
    runs = Path(stored.result_store or "") / stored.namespace / "runs"
    (live_file,) = (runs / live.id).iterdir()
    refused = runs / live.id / f"{dict(live.job_ids())['frame']}-999.parquet"
    refused.write_bytes(b"an attempt whose completion was refused")
    client.delete(stored.keys.result(dict(expired.job_ids())["arr"]))  # expired
    expired_file = next(runs.glob(f"{expired.id}/*.npy"))
    kept_of_expired = next(runs.glob(f"{expired.id}/*.parquet"))
    (pinned_file,) = (runs / pinned.id).iterdir()
    pinned.delete()  # its reference is handed to holder, whose pin alone keeps the file
    gone_run = runs / "vanished-run"  # its Redis state is gone
    gone_run.mkdir()
    (gone_run / "r.0-1.parquet").write_bytes(b"x")
    (gone_run / ".r.1-1.parquet.77.tmp").write_bytes(b"half")
    deleting = runs / "being-deleted"
    deleting.mkdir()
    (deleting / "r.0-1.parquet").write_bytes(b"x")
    client.hset(stored.keys.runs_deleting, "being-deleted", "1")
    young = runs / "young-run"
    young.mkdir()
    (young / "r.0-1.parquet").write_bytes(b"x")
    for path in [*runs.rglob("*")]:
        if path.is_file() and young not in path.parents:
            _age(path, 7200)

    want = {str(refused), str(expired_file), str(gone_run / "r.0-1.parquet"),
            str(gone_run / ".r.1-1.parquet.77.tmp")}
    assert set(ifn.cache.sweep_results(3600, dry_run=True, config=stored)) == want
    assert refused.exists() and gone_run.exists()
    assert set(ifn.cache.sweep_results(3600, config=stored)) == want
    assert not any(Path(p).exists() for p in want) and not gone_run.exists()
    for path in (live_file, kept_of_expired, pinned_file, deleting / "r.0-1.parquet",
                 young / "r.0-1.parquet"):
        assert path.exists(), path
    pd.testing.assert_frame_equal(live.result("frame"), frame())
    pd.testing.assert_frame_equal(holder.result("frame"), frame())
    assert ifn.cache.sweep_results(3600, config=stored) == []
    with pytest.raises(InvalidOptionError, match="older_than"):
        ifn.cache.sweep_results(-1, config=stored)


def test_sweep_works_on_an_s3_store(config: RedisConfig, s3_server: str) -> None:
    """The same sweep through fsspec: an orphan object goes, a live run's file stays."""
    import s3fs

    import ironforge_nb as ifn

    s3 = dataclasses.replace(config, result_store=s3_server, result_threshold=64 * 1024)
    run = run_pipeline(Pipeline("s3sweep").task("frame", frame), s3)
    fs = s3fs.S3FileSystem(skip_instance_cache=True)
    orphan = f"results-bucket/ifn/{config.namespace}/runs/vanished/r.0-1.parquet"
    fs.pipe(orphan, b"x")
    time.sleep(1.1)  # S3 times have a resolution of 1 s
    assert ifn.cache.sweep_results(0, config=s3) == [f"s3://{orphan}"]
    fs.invalidate_cache()
    assert not fs.exists(orphan)
    pd.testing.assert_frame_equal(run.result("frame"), frame())
    run.delete()
