"""The monitor's details pane shows what a task printed (`Run.logs`), for the first failed
task unasked and for any task selected; real worker processes capture the output.

Task functions are defined here and shipped by value, as a notebook's would be.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import cloudpickle
import pytest

import ironforge_nb as ifn
from ironforge_nb.local.workers import LocalWorkers
from ironforge_nb.queue import RedisConfig
from tests.helpers import signing_workers, wait_for

SECRET = b"monitor-logs-secret"
cloudpickle.register_pickle_by_value(sys.modules[__name__])


@pytest.fixture
def workers(config: RedisConfig) -> Iterator[Callable[..., LocalWorkers]]:
    """Factory of local workers on the test's namespace (stopped after)."""
    with signing_workers(config, SECRET) as start:
        yield start


def load() -> int:
    print("read 3 rows from orders.csv")
    return 3


def check(load: int) -> None:
    print(f"checking {load} rows")
    raise ValueError("row 2 has no region")


def test_details_show_the_output_of_failed_and_selected_tasks(config: RedisConfig,
                                                              workers: Any) -> None:
    """The failed task's traceback and prints are shown at once; selecting another task shows
    its prints."""
    workers()
    p = ifn.Pipeline("printing").task("load", load).then("check", check)
    run = p.submit(config=config)
    run.wait(timeout=60, progress=False)
    monitor = run.monitor()
    detail = monitor._view.detail.value
    assert "<code>check</code>" in detail and "ValueError: row 2 has no region" in detail
    assert "output:<pre>checking 3 rows</pre>" in detail
    monitor._view.select("load")
    assert "read 3 rows from orders.csv" in monitor._view.detail.value
    monitor.close()


def test_a_selected_running_task_shows_its_prints_as_they_come(config: RedisConfig,
                                                                workers: Any,
                                                                tmp_path: Path) -> None:
    """A print of a running task (which appends no event) reaches the details pane of a
    monitor that selected the task, while it still runs."""
    workers()
    go, done = tmp_path / "go", tmp_path / "done"

    def waiter() -> str:
        for flag, text in ((go, "hello from the task"), (done, "")):
            deadline = time.monotonic() + 60
            while not flag.exists() and time.monotonic() < deadline:
                time.sleep(0.02)
            if text:
                print(text)
        return "ok"

    run = ifn.Pipeline("live").task("waiter", waiter).submit(config=config)
    wait_for(lambda: run.task("waiter").status.value == "active", timeout=30)
    monitor = run.monitor()
    try:
        monitor.refresh()
        monitor._view.select("waiter")
        assert "hello from the task" not in monitor._view.detail.value
        go.touch()

        def shown() -> bool:
            monitor.refresh()
            return "hello from the task" in monitor._view.detail.value

        wait_for(shown, timeout=30, every=0.1)
        assert run.task("waiter").status.value == "active"
    finally:
        done.touch()
        monitor.close()
    run.wait(timeout=30, progress=False)
