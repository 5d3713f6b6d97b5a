"""The monitor's details pane shows what a task printed (`Run.logs`), for the first failed
task unasked and for any task selected; real worker processes capture the output.

Task functions are defined here and shipped by value, as a notebook's would be.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from typing import Any

import cloudpickle
import pytest

import ironforge_nb as ifn
from ironforge_nb.local.workers import LocalWorkers
from ironforge_nb.queue import RedisConfig
from tests.helpers import signing_workers

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
