"""Task-level access to a run (`Run.task`, `Run.tasks`), the progress columns of
`to_dataframe`, and `Run.wait`'s bar and ``raise_on_failure``.

Jobs are executed in-process by `runloop.work`, on the session redis-server.
"""

from __future__ import annotations

import io

import pandas as pd
import pytest

import ironforge_nb as ifn
from ironforge_nb.dag import Pipeline
from ironforge_nb.orchestrator import Run, submit
from ironforge_nb.queue import Queue, RedisConfig
from ironforge_nb.status import JobStatus
from ironforge_nb.widgets.waitbar import TextBar
from tests import tasks
from tests.helpers import claim, diamond, failing
from tests.runloop import run_one, work

pytestmark = pytest.mark.usefixtures("signing_secret")


def test_task_state_needs_no_queue_or_job_id(config: RedisConfig) -> None:
    """run.task(name) reads status, progress, message, attempts, worker and times."""
    run = submit(diamond(), config=config)
    assert run.task("b").status is JobStatus.WAITING
    queue = Queue("default", config)
    lease = claim(queue, worker="w7")
    queue.progress(lease, 0.25, "a quarter")
    state = run.task("a")
    # attempts counts the tries that ended (issue 9 §1): none yet while the first one runs
    assert (state.status, state.progress, state.message, state.attempts, state.worker) == (
        JobStatus.ACTIVE, 0.25, "a quarter", 0, "w7")
    assert state.job_id == lease.job_id and state.queue == "default" and state.stalls == 0
    assert state.started is not None and state.finished is None and state.elapsed is not None
    run_one(queue, lease)
    done = run.task("a")
    assert done.status is JobStatus.COMPLETED and done.finished is not None
    assert done.elapsed == pytest.approx((done.finished - done.started).total_seconds())
    assert done.error is None and done.traceback is None


def test_failed_task_has_last_line_and_traceback(config: RedisConfig) -> None:
    """error is the exception's line; traceback is the whole text."""
    run = submit(failing(), config=config)
    work(config)
    state = run.task("bad")
    assert state.status is JobStatus.FAILED
    assert state.error == "RuntimeError: boom: this task always fails"
    assert state.traceback is not None and state.traceback.startswith("Traceback")
    assert state.traceback.rstrip().endswith(state.error)


def test_typos_and_map_names_get_suggestions(config: RedisConfig) -> None:
    """An unknown name suggests close ones; a map's name suggests its members."""
    p = Pipeline("m").map("sq", tasks.square, over=[1, 2, 3, 4]).task(
        "total", tasks.total, after="sq")
    run = submit(p, config=config)
    with pytest.raises(ifn.UnknownTaskError, match="did you mean 'total'"):
        run.task("totl")
    with pytest.raises(ifn.UnknownTaskError) as err:
        run.task("sq")
    assert err.value.suggestions == ["sq[0]", "sq[1]", "sq[2]", "run.tasks('sq')"]
    assert [t.name for t in run.tasks("sq")] == ["sq[0]", "sq[1]", "sq[2]", "sq[3]"]
    assert [t.name for t in run.tasks()] == ["sq[0]", "sq[1]", "sq[2]", "sq[3]", "total"]
    with pytest.raises(ifn.RunNotFoundError):
        Run("gone", config).task("a")


def test_to_dataframe_has_progress_and_message(config: RedisConfig) -> None:
    """The task frame carries what each task last reported."""
    run = submit(diamond(), config=config)
    queue = Queue("default", config)
    lease = claim(queue)
    queue.progress(lease, 0.5, "halfway")
    frame = run.to_dataframe().set_index("task")
    assert frame.loc["a", "progress"] == 0.5 and frame.loc["a", "message"] == "halfway"
    assert frame.loc["d", "progress"] == 0.0 and pd.isna(frame.loc["d", "message"])


def test_common_errors_are_importable_from_the_package() -> None:
    """The errors users catch are attributes of ironforge_nb."""
    for name in ("TaskFailedError", "UnknownTaskError", "InvalidOptionError", "RunError",
                 "RunNotFoundError", "RunFailedError", "RunTimeoutError"):
        assert issubclass(getattr(ifn, name), ifn.IronForgeError)


def test_wait_can_raise_when_the_run_did_not_succeed(config: RedisConfig) -> None:
    """raise_on_failure=True turns a failed run into RunFailedError naming the task."""
    run = submit(failing(), config=config)
    work(config)
    assert run.wait(progress=False) is run
    with pytest.raises(ifn.RunFailedError) as err:
        run.wait(raise_on_failure=True)
    assert err.value.status == "failed" and err.value.failed == ["bad"]
    assert err.value.error == "RuntimeError: boom: this task always fails"
    ok = submit(diamond(), config=config)
    work(config)
    assert ok.wait(raise_on_failure=True) is ok
    with pytest.raises(ifn.InvalidOptionError, match="progress"):
        ok.wait(progress="yes")  # type: ignore[arg-type]


class Terminal(io.StringIO):
    """A text stream that says it is a terminal."""

    def isatty(self) -> bool:
        return True


def test_terminal_bar_redraws_one_line() -> None:
    """The text bar rewrites its line in place and ends it with a newline."""
    stream = Terminal()
    info = {"status": "running", "total": 4, "done": 1, "completed": 1, "waiting": 3,
            "created": 0, "finished": 0}
    bar = TextBar("r1", info, stream)
    bar.close({**info, "status": "succeeded", "done": 4, "completed": 4, "waiting": 0})
    lines = stream.getvalue().split("\r")[1:]
    assert lines[0].startswith("run r1: [#####---------------] running · 1/4 tasks")
    assert lines[1].startswith("run r1: [####################] succeeded · 4/4 tasks")
    assert stream.getvalue().endswith("\n")
