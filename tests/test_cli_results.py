"""``ironforge sweep-results`` against a real redis-server and a result store in a temp dir:
the orphans `ifn.cache.sweep_results` finds, listed (``--dry-run``) or deleted, from a
terminal."""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ironforge_nb.cli import main
from ironforge_nb.dag import Pipeline
from ironforge_nb.queue import RedisConfig
from tests.runloop import work

pytestmark = pytest.mark.usefixtures("signing_secret")


def frame() -> pd.DataFrame:
    return pd.DataFrame({"x": np.arange(20_000, dtype="float64")})  # 160 KB: to the store


def sweep(config: RedisConfig, store: Path, capsys: pytest.CaptureFixture[str],
          *extra: str) -> list[str]:
    """``ironforge sweep-results`` on the config's server and namespace; its output lines."""
    assert main(["sweep-results", "--url", config.url, "--namespace", config.namespace,
                 "--store", str(store), *extra]) == 0
    return capsys.readouterr().out.splitlines()


def test_sweep_results_lists_then_deletes_the_orphans(config: RedisConfig, tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]
                                                      ) -> None:
    """An old file of a run whose Redis state is gone is listed by --dry-run (and kept), then
    deleted; the file a live run references stays, and so does a young orphan (--older-than)."""
    store = tmp_path / "results"
    stored = RedisConfig(url=config.url, namespace=config.namespace, result_store=str(store),
                         result_threshold=64 * 1024)
    run = Pipeline("live").task("frame", frame).submit(config=stored)
    work(stored)
    run.wait(timeout=10)
    runs = store / config.namespace / "runs"
    (live,) = (runs / run.id).iterdir()
    gone = runs / "vanished-run"
    gone.mkdir()
    orphan, young = gone / "r.0-1.parquet", gone / "r.1-1.parquet"
    orphan.write_bytes(b"x")
    young.write_bytes(b"y")
    then = time.time() - 7200
    for path in (live, orphan):
        os.utime(path, (then, then))

    lines = sweep(config, store, capsys, "--older-than", "3600", "--dry-run")
    assert lines == [str(orphan), f"would delete 1 orphaned result file under {store}"]
    assert orphan.exists()
    lines = sweep(config, store, capsys, "--older-than", "3600")
    assert lines == [str(orphan), f"deleted 1 orphaned result file under {store}"]
    assert not orphan.exists() and live.exists() and young.exists()
    pd.testing.assert_frame_equal(run.result("frame"), frame())
    assert sweep(config, store, capsys, "--older-than", "0")[-1].startswith("deleted 1 ")
    assert not young.exists() and live.exists()


def test_sweep_results_without_a_store_is_a_clear_error(
        config: RedisConfig, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    """No --store, no IRONFORGE_RESULT_STORE, no --home: exit 1 saying what to pass."""
    monkeypatch.delenv("IRONFORGE_RESULT_STORE", raising=False)
    code = main(["sweep-results", "--url", config.url, "--namespace", config.namespace])
    captured = capsys.readouterr()
    assert code == 1 and captured.out == ""
    assert captured.err.startswith("ironforge: error:") and "--store" in captured.err
