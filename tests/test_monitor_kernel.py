"""The monitor and the wait bar in a real Jupyter kernel (the ipykernel this project installs).

The kernel follows runs on its own asyncio loop while it is idle between cells (no thread, no
refresh() call), the loop task ends by itself when the run ends or when the monitor is
closed, and what the kernel displays has a fixed text form. Jobs are run by the test process
(`runloop.work`) on the session redis-server; the kernel reads the same namespace.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from ironforge_nb.dag import Pipeline
from ironforge_nb.orchestrator import submit
from ironforge_nb.queue import RedisConfig
from tests import tasks
from tests.helpers import diamond
from tests.runloop import SECRET, work

pytestmark = pytest.mark.usefixtures("signing_secret")

FOLLOWERS = "[t for t in asyncio.all_tasks() if '_follow' in repr(t)]"


class Kernel:
    """A started ipykernel and the outputs of the cells it ran."""

    def __init__(self) -> None:
        from jupyter_client.manager import start_new_kernel

        self.manager, self.client = start_new_kernel(kernel_name="python3")
        self.displays: list[dict[str, Any]] = []

    def run(self, code: str) -> str:
        """Execute ``code``; returns what it printed (fails the test on an error)."""
        printed: list[str] = []

        def hook(msg: dict[str, Any]) -> None:
            kind, content = msg["msg_type"], msg["content"]
            if kind == "stream":
                printed.append(content["text"])
            elif kind in ("display_data", "execute_result"):
                self.displays.append(content["data"])
            elif kind == "error":
                printed.append("\n".join(content["traceback"]))

        reply = self.client.execute_interactive(code, timeout=120, output_hook=hook)
        assert reply["content"]["status"] == "ok", "".join(printed)
        return "".join(printed)

    def stop(self) -> None:
        self.client.stop_channels()
        self.manager.shutdown_kernel(now=True)


@pytest.fixture(scope="module")
def kernel() -> Iterator[Kernel]:
    """One kernel for this module's tests."""
    started = Kernel()
    started.run("import asyncio, json\nfrom ironforge_nb.orchestrator import Run\n"
                "from ironforge_nb.queue import RedisConfig")
    yield started
    started.stop()


def _attach(kernel: Kernel, config: RedisConfig, run_id: str, name: str) -> None:
    kernel.run(f"{name} = Run({run_id!r}, RedisConfig(url={config.url!r}, "
               f"namespace={config.namespace!r}), secret={SECRET!r})")


def _close_from_front_end(kernel: Kernel, model_id: str, name: str, widget: str) -> Any:
    """Send the comm_close a front end sends for the widget ``model_id`` (closing the output,
    the page), then print ``[<name>.following, live followers, <widget>.comm is None]``."""
    client = kernel.client
    client.shell_channel.send(client.session.msg("comm_close",
                                                 {"comm_id": model_id, "data": {}}))
    return json.loads(kernel.run(f"await asyncio.sleep(0.3)\nprint(json.dumps([{name}.following, "
                                 f"len({FOLLOWERS}), {widget}.comm is None]))"))


def test_monitor_follows_on_the_kernel_loop_and_stops_by_itself(
        kernel: Kernel, config: RedisConfig) -> None:
    """Between cells the loop task brings the view to the run's end, then ends."""
    run = submit(diamond(), config=config)
    _attach(kernel, config, run.id, "run")
    printed = kernel.run("m = run.monitor(interval=0.05)\nprint(json.dumps([m.following, "
                         "m.done, sorted(m._repr_mimebundle_()), repr(m)]))")
    following, done, mimes, text = json.loads(printed)
    assert following and not done  # and no text view printed: the widget is the view
    assert mimes == ["application/vnd.jupyter.widget-view+json", "text/plain"]
    assert text == f"RunMonitor(run {run.id!r}, pipeline 'diamond')"
    work(config)
    out = kernel.run("for _ in range(400):\n    if m.done: break\n    await asyncio.sleep(0.05)"
                     f"\nawait asyncio.sleep(0.1)\nprint(json.dumps([m.done, m.counts, "
                     f"m.following, len({FOLLOWERS}), m._view.overall.value]))")
    assert json.loads(out) == [True, {"completed": 4}, False, 0, 1.0]


def test_close_leaves_no_task_on_the_loop(kernel: Kernel, config: RedisConfig) -> None:
    """close() on a run still going cancels the loop task: none is left on the loop."""
    run = submit(diamond(), config=config)
    _attach(kernel, config, run.id, "run2")
    out = kernel.run("m2 = run2.monitor(interval=0.05)\nawait asyncio.sleep(0.2)\n"
                     f"before = [m2.following, len({FOLLOWERS})]\nm2.close()\n"
                     "await asyncio.sleep(0.1)\n"
                     f"print(json.dumps([before, m2.following, len({FOLLOWERS})]))")
    assert json.loads(out) == [[True, 1], False, 0]


def test_wait_draws_a_widget_bar_with_a_fixed_text(kernel: Kernel, config: RedisConfig) -> None:
    """run.wait() in a kernel displays a widget whose text form never changes."""
    run = submit(diamond(), config=config)
    work(config)
    _attach(kernel, config, run.id, "run3")
    kernel.displays.clear()
    kernel.run("run3.wait(timeout=30)\nNone")
    assert len(kernel.displays) == 1
    shown = kernel.displays[0]
    assert shown["text/plain"] == f"waiting for run {run.id!r}"
    assert "application/vnd.jupyter.widget-view+json" in shown
    assert kernel.run("run3.wait(progress=False)\nNone") == "" and len(kernel.displays) == 1


def test_closing_the_root_widget_stops_the_loop(kernel: Kernel, config: RedisConfig) -> None:
    """widget.close() on the view's root, from the kernel, ends the loop task and closes
    every widget of the view, as monitor.close() does."""
    run = submit(diamond(), config=config)
    _attach(kernel, config, run.id, "run7")
    out = kernel.run("m7 = run7.monitor(interval=0.05)\nawait asyncio.sleep(0.2)\n"
                     f"before = [m7.following, len({FOLLOWERS})]\nm7._view.root.close()\n"
                     "await asyncio.sleep(0.1)\nprint(json.dumps([before, m7.following, "
                     f"len({FOLLOWERS}), [w.comm is None for w in m7._view.widgets()]]))")
    before, following, left, closed = json.loads(out)
    assert before == [True, 1] and not following and left == 0
    assert closed and all(closed)


def test_the_front_end_closing_the_comm_stops_the_loop(kernel: Kernel,
                                                       config: RedisConfig) -> None:
    """A comm_close message from the front end for the view's root (what a front end sends
    when it closes the widget's model) ends the loop task: none is left on the kernel loop."""
    run = submit(diamond(), config=config)
    _attach(kernel, config, run.id, "run8")
    out = kernel.run("m8 = run8.monitor(interval=0.05)\nawait asyncio.sleep(0.2)\n"
                     f"print(json.dumps([m8.following, len({FOLLOWERS}), "
                     "m8._view.root.model_id]))")
    following, followers, model_id = json.loads(out)
    assert following and followers == 1
    assert _close_from_front_end(kernel, model_id, "m8", "m8._view.overall") == [False, 0, True]


def test_the_monitor_displays_itself_once(kernel: Kernel, config: RedisConfig) -> None:
    """`m = run.monitor()` shows the view (an assignment has no cell value); as the cell's
    last value it is shown once, not twice; a later cell's `m` shows the same view again."""
    run = submit(diamond(), config=config)
    work(config)
    _attach(kernel, config, run.id, "run9")
    widget = "application/vnd.jupyter.widget-view+json"
    kernel.displays.clear()
    kernel.run("m9 = run9.monitor()")
    assert len(kernel.displays) == 1 and widget in kernel.displays[0]
    assert kernel.displays[0]["text/plain"] == f"RunMonitor(run {run.id!r}, pipeline 'diamond')"
    kernel.run("m10 = run9.monitor()\nm10")
    assert len(kernel.displays) == 2
    kernel.run("run9.monitor();")
    assert len(kernel.displays) == 3
    kernel.run("m10")
    assert len(kernel.displays) == 4
    assert kernel.displays[3][widget]["model_id"] == kernel.displays[1][widget]["model_id"]
    assert kernel.displays[1][widget]["model_id"] != kernel.displays[0][widget]["model_id"]


def test_the_cancel_button_runs_off_the_kernel_loop(kernel: Kernel,
                                                    config: RedisConfig) -> None:
    """A click on "cancel run" returns at once: the cancel (seconds of Redis scripts on a big
    run) runs in the loop's thread pool while the view says "cancelling…" with both buttons
    disabled; its outcome is shown afterwards, and the monitor follows the run to its end."""
    p = Pipeline("wide")
    p.map("sq", tasks.square, over=list(range(2000))).task("total", tasks.total, after="sq")
    run = submit(p, config=config)
    _attach(kernel, config, run.id, "run11")
    out = kernel.run(
        "m11 = run11.monitor(interval=0.05)\nm11._view.cancel.click()\n"
        "first = [m11._view.notice.value, m11._view.cancel.disabled, m11._view.retry.disabled]"
        "\nfor _ in range(1200):\n    if m11.done and not m11._busy: break\n"
        "    await asyncio.sleep(0.05)\nawait asyncio.sleep(0.1)\n"
        "print(json.dumps([first, m11.done, m11.counts, m11._view.notice.value, "
        f"m11._view.retry.disabled, len({FOLLOWERS}), run11.status]))")
    first, done, counts, notice, retry_disabled, followers, status = json.loads(out)
    assert first == ["cancelling…", True, True]
    assert done and counts == {"cancelled": 2001} and status == "cancelled"
    assert notice == "cancelled 2,001 tasks" and not retry_disabled and followers == 0


def test_the_dashboard_closed_by_the_front_end_stops_its_loop(kernel: Kernel,
                                                              config: RedisConfig) -> None:
    """ifn.dashboard()'s loop ends too when the front end closes its root widget's comm."""
    out = kernel.run(
        "from ironforge_nb.widgets import Dashboard\n"
        f"board = Dashboard(RedisConfig(url={config.url!r}, namespace={config.namespace!r}), "
        f"interval=0.05)\nawait asyncio.sleep(0.2)\nprint(json.dumps([board.following, "
        f"len({FOLLOWERS}), board.root.model_id]))")
    following, followers, model_id = json.loads(out)
    assert following and followers == 1
    assert _close_from_front_end(kernel, model_id, "board", "board.root") == [False, 0, True]
