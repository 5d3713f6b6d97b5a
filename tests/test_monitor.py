"""The live monitor (`ironforge_nb.widgets`): widget values after `refresh()`, big runs, the
Redis cost of a refresh, a lost connection, the text view and bad input.

Jobs are claimed and completed by the test itself (`runloop`), on a real redis-server, so
every refresh sees a known state. Following on a real kernel's loop is in
test_monitor_kernel.py.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest

from ironforge_nb.dag import Pipeline
from ironforge_nb.errors import InvalidOptionError, RunNotFoundError
from ironforge_nb.local import RedisCluster, RedisServer
from ironforge_nb.orchestrator import Run, submit
from ironforge_nb.queue import Queue, RedisConfig
from ironforge_nb.render import STATUS_COLORS
from ironforge_nb.widgets import RunMonitor
from ironforge_nb.widgets.graph import MAP_BOX
from ironforge_nb.widgets.tracker import EVENTS_PER_POLL, MAP_GROUPS, SMALL_RUN, TASK_ROWS
from tests import tasks
from tests.helpers import claim, diamond, failing
from tests.runloop import run_one, work

pytestmark = pytest.mark.usefixtures("signing_secret")


def wide(n: int) -> Pipeline:
    """A map of ``n`` tasks, then one task gathering them."""
    p = Pipeline("wide")
    p.map("sq", tasks.square, over=list(range(n))).task("total", tasks.total, after="sq")
    return p


def rows(monitor: RunMonitor) -> dict[str, Any]:
    """The visible task rows of a monitor's view, by task name (each on screen: a child of
    the rows' box)."""
    shown = {r.task: r for r in monitor._view.rows if r.task is not None}
    assert [r.html for r in shown.values()] == list(monitor._view.row_box.children)
    return shown


def drawn(row: Any) -> tuple[float, str]:
    """The bar a row's HTML draws (a task's or a group's): its value and its fill's color;
    the fill's width is the value."""
    found = re.search(r'data-value="([\d.]+)".*?class="ironforge-monitor-bar-fill" '
                      r'style="width:([\d.]+)%;height:100%;background:(#[0-9a-fA-F]+)"',
                      row.html.value)
    assert found is not None, row.html.value
    value, width, color = float(found[1]), float(found[2]), found[3]
    assert width == pytest.approx(value * 100, abs=0.05)
    assert (value, color) == (pytest.approx(row.value), row.color)
    return value, color


def status_shown(row: Any) -> str:
    """The status chip's text in a task row's HTML."""
    found = re.search(r'class="ironforge-chip"[^>]*>([^<]*)</span>', row.html.value)
    assert found is not None, row.html.value
    return found[1]


def test_rows_follow_a_run_step_by_step(config: RedisConfig) -> None:
    """Statuses, the progress a task reports, bar values and colors follow the run."""
    run = submit(diamond(), config=config)
    monitor = run.monitor()
    assert monitor.counts == {"waiting": 3, "queued": 1} and not monitor.done
    queue = Queue("default", config)
    lease = claim(queue)
    queue.progress(lease, 0.4, "reading files")
    monitor.refresh()
    row = rows(monitor)["a"]
    assert monitor.counts == {"waiting": 3, "active": 1}
    assert drawn(row) == (pytest.approx(0.4), STATUS_COLORS["active"])
    assert "reading files" in row.html.value and "40%" in row.html.value
    assert status_shown(row) == "active"
    run_one(queue, lease)
    work(config)
    monitor.refresh()
    assert monitor.done and monitor.counts == {"completed": 4}
    view = monitor._view
    assert view.overall.value == 1.0 and view.overall.description == "4/4"
    assert re.sub(r"<[^>]+>", "", view.status.value) == "succeeded"
    assert all(drawn(r) == (1.0, STATUS_COLORS["completed"])
               for r in rows(monitor).values())
    assert STATUS_COLORS["completed"] in view.graph.value and "<svg" in view.graph.value
    assert view.cancel.disabled and view.retry.disabled
    monitor.close()


def test_failed_task_shows_its_error_and_traceback(config: RedisConfig) -> None:
    """A failed row shows its error's last line, the traceback on demand, in the details too;
    the skipped task is counted; retry is offered, cancel is not."""
    run = submit(failing(), config=config)
    work(config)
    monitor = run.monitor()
    assert monitor.done and monitor.counts == {"completed": 1, "failed": 1, "skipped": 1}
    row = rows(monitor)["bad"]
    summary = re.search(r"<summary>(.*?)</summary><pre>(.*?)</pre>", row.html.value, re.S)
    assert summary is not None and summary.group(1) == "RuntimeError: boom: this task always fails"
    assert "Traceback (most recent call last)" in summary.group(2)
    assert drawn(row)[1] == STATUS_COLORS["failed"] and status_shown(row) == "failed"
    assert "Traceback" in monitor._view.detail.value  # the first failed task, unasked
    assert not monitor._view.retry.disabled and monitor._view.cancel.disabled
    monitor._view.select("a")
    assert "<code>a</code>" in monitor._view.detail.value
    view = monitor._view  # the dropdown, as the front end sets it
    assert [v for _label, v in view.pick.options] == ["", "a", "bad", "after_bad"]
    view.pick.value = "after_bad"
    assert view.selected == "after_bad" and "<code>after_bad</code>" in view.detail.value
    view.pick.value = ""
    monitor.refresh()
    assert view.selected is None and "Traceback" in view.detail.value
    monitor.close()


def test_buttons_cancel_the_run_and_retry_it(config: RedisConfig) -> None:
    """The cancel button cancels the run; retry-failed runs it again to success."""
    run = submit(diamond(), config=config)
    monitor = run.monitor()
    monitor._view.cancel.click()
    assert monitor.done and run.status == "cancelled"
    assert "cancelled 4 tasks" in monitor._view.notice.value
    monitor._view.retry.click()
    assert run.status == "running" and not monitor.done
    work(config)
    monitor.refresh()
    assert monitor.done and monitor.counts == {"completed": 4}
    monitor.close()


def test_a_cancel_under_way_is_followed_to_its_end(config: RedisConfig) -> None:
    """A cancel sets the run's status at once, then cancels the tasks in bounded steps and
    stamps `finished` after the last one: a monitor that sees the status alone is not done
    (it stopped with 90% of a 100k-task run still 'queued'), and reaches the end after."""
    run = submit(wide(300), config=config)
    monitor = run.monitor()
    meta = config.keys.run(run.id).meta
    client = config.client()
    client.hset(meta, "status", "cancelled")  # as the cancel's first step leaves it
    monitor.refresh()
    assert not monitor.done and monitor._tracker.status == "cancelled"
    client.hset(meta, "status", "running")
    assert run.cancel() == 301
    for _ in range(10):
        monitor.refresh()
        if monitor.done:
            break
    assert monitor.done and monitor.counts == {"cancelled": 301}
    monitor.close()


def test_big_run_aggregates_rows_and_bounds_widgets(config: RedisConfig) -> None:
    """A 3000-task map is one aggregated row; only its active tasks get rows (at most
    TASK_ROWS, the rest counted), and the number of widgets stays the same to the end."""
    run = submit(wide(3000), config=config)
    monitor = run.monitor()
    view = monitor._view
    before = len(view.models())
    assert before < 50 and len(view.groups) == 1
    assert "sq[*]" in view.groups[0].html.value and "3,000 tasks" in view.groups[0].html.value
    queue = Queue("default", config)
    leases = queue.dequeue_many("w", 50, lease=30, timeout=0)
    monitor.refresh()
    shown = rows(monitor)
    assert set(shown) == {"total"} | {f"sq[{i}]" for i in range(TASK_ROWS)}
    assert "30 more" in view.more.value
    assert ">2,950 queued, 50 active<" in view.groups[0].html.value
    for lease in leases:
        run_one(queue, lease)
    while (lease := queue.dequeue("w", lease=30, timeout=0)) is not None:
        run_one(queue, lease)  # one at a time: a stream entry per event (a batch is one)
    # ~6,000 entries: a refresh reads EVENTS_PER_POLL of them and carries the rest to the
    # next one; every refresh shows a consistent picture (all 3001 tasks counted once)
    events = config.client().xrange(config.keys.run(run.id).events, monitor._tracker._cursor)
    assert len(events) - 1 > 2 * EVENTS_PER_POLL
    steps = 0
    while not monitor.done:
        monitor.refresh()
        steps += 1
        assert sum(monitor.counts.values()) == 3001 and steps <= len(events)
        assert sum(int(n.replace(",", "")) for n in re.findall(
            r"\d[\d,]*", view.groups[0].counts)) == 3000
        assert view.groups[0].counts in view.groups[0].html.value
    assert steps == (len(events) - 1) // EVENTS_PER_POLL + 1
    assert monitor.counts == {"completed": 3001}
    assert drawn(view.groups[0]) == (1.0, STATUS_COLORS["completed"])
    assert len(view.models()) <= before + TASK_ROWS  # a row is one HTML widget
    monitor.close()


def test_a_20_task_monitor_is_a_few_dozen_models_all_closed_at_the_end(
        config: RedisConfig) -> None:
    """Every widget, layout and style is a model (a comm) in the front end: a 20-task run's
    view is at most 60 of them (one HTML widget per row, layouts and styles shared; it was
    ~500), the view's `models` are all of them, and close() closes every one."""
    from ipywidgets.widgets.widget import _instances

    run = submit(wide(19), config=config)
    work(config)
    before = set(_instances)
    monitor = run.monitor()
    made = set(_instances) - before
    assert len(rows(monitor)) == 20 and len(made) <= 60
    assert {m.model_id for m in monitor._view.models()} == made
    monitor.close()
    assert not made & set(_instances)


def test_a_map_of_a_small_run_is_one_box_of_the_graph(config: RedisConfig) -> None:
    """A map of more than MAP_BOX members is drawn as one box with its counts (its members,
    left to right, would be a column taller than the screen); its rows are still there."""
    run = submit(wide(19), config=config)
    work(config)
    monitor = run.monitor()
    svg = monitor._view.graph.value
    assert "sq[*]" in svg and "19 tasks: 19 completed" in svg and "sq[3]" not in svg
    assert ">total<" in svg and len(rows(monitor)) == 20 and MAP_BOX < 19
    monitor.close()


def test_many_single_tasks_are_grouped_by_level(config: RedisConfig) -> None:
    """Beyond SMALL_RUN tasks outside maps, rows are levels of the DAG, not tasks."""
    p = Pipeline("chain")
    p.task("c0", tasks.one)
    for i in range(1, SMALL_RUN + 20):
        p.task(f"c{i}", tasks.inc, after=f"c{i - 1}")
    monitor = submit(p, config=config).monitor()
    assert not rows(monitor) and 1 < len(monitor._view.groups) <= 10
    assert monitor._view.groups[0].title.startswith("<code>levels 0-")
    assert monitor._view.groups[0].title in monitor._view.groups[0].html.value
    monitor.close()


def _commands(client: Any) -> int:
    """Commands the server has run so far, INFO itself left out."""
    stats = client.info("commandstats")
    return sum(v["calls"] for k, v in stats.items() if k != "cmdstat_info")


def _refresh_cost(monitor: RunMonitor, client: Any) -> int:
    before = _commands(client)
    monitor.refresh()
    return _commands(client) - before


def test_refresh_cost_grows_with_events_not_with_run_size(
        fresh_server: Callable[..., RedisServer], namespace: str) -> None:
    """On a server of its own: a quiet refresh is 2 commands whatever the run's size, and a
    refresh after k task completions costs at most 2 + k, for 20 tasks as for 2000 (a small
    run rereads the k job hashes of its rows; a big run's map members need none); 50 tasks
    starting in the big run cost a read for each of the TASK_ROWS rows they get, no more."""
    server = fresh_server()
    config = RedisConfig(url=server.url, namespace=namespace)
    client = config.client()
    queue = Queue("default", config)
    for size in (20, 2000):
        run = submit(wide(size), config=config, run_id=f"wide-{size}")
        monitor = run.monitor()
        assert _refresh_cost(monitor, client) == 2
        for lease in queue.dequeue_many("w", 10, lease=30, timeout=0):
            run_one(queue, lease)
        cost = _refresh_cost(monitor, client)
        assert (cost > 2 if size == 20 else cost == 2) and cost <= 2 + 10
        assert _refresh_cost(monitor, client) == 2
        if size == 2000:
            leases = queue.dequeue_many("w", 50, lease=30, timeout=0)
            assert _refresh_cost(monitor, client) == 2 + TASK_ROWS
            for lease in leases:
                run_one(queue, lease)
        monitor.close()
        work(config)
    config.close()


def test_lost_connection_shows_a_notice_and_recovers(
        fresh_server: Callable[..., RedisServer], namespace: str) -> None:
    """With Redis down a refresh raises nothing and says so; once Redis is back the monitor
    resumes and reaches the end of the run."""
    server = fresh_server(appendonly=True)
    config = RedisConfig(url=server.url, namespace=namespace)
    run = submit(diamond(), config=config)
    monitor = run.monitor()
    server.kill()  # the AOF (in the OS's page cache) keeps the run for the restart
    monitor.refresh()
    assert "connection lost, retrying" in monitor._view.notice.value
    assert not monitor.done and monitor.counts == {"waiting": 3, "queued": 1}
    server.start()
    work(config)
    monitor.refresh()
    assert monitor._view.notice.value == ""
    assert monitor.done and monitor.counts == {"completed": 4}
    monitor.close()
    config.close()


def test_without_a_kernel_it_prints_a_text_view(config: RedisConfig,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    """Outside Jupyter, run.monitor() prints the run as text; repr and display stay short."""
    run = submit(failing(), config=config, run_id="texty")
    work(config)
    monitor = run.monitor()
    out = capsys.readouterr().out
    assert out.startswith("run texty · pipeline failing · failed")
    assert "1 completed, 1 failed, 1 skipped" in out and "RuntimeError: boom: this" in out
    assert repr(monitor) == "RunMonitor(run 'texty', pipeline 'failing')"
    assert monitor._repr_mimebundle_() == {"text/plain": repr(monitor)}
    assert str(monitor).splitlines()[0] == out.splitlines()[0]
    monitor.close()


def test_unknown_or_deleted_run_raises_run_not_found(config: RedisConfig) -> None:
    """run.monitor() on a run that does not exist, or no longer does, says which."""
    with pytest.raises(RunNotFoundError, match="no run 'nope'"):
        Run("nope", config).monitor()
    run = submit(diamond(), config=config)
    work(config)
    run.delete()
    with pytest.raises(RunNotFoundError):
        run.monitor()


def test_run_deleted_while_followed_ends_the_monitor(config: RedisConfig) -> None:
    """A followed run that is deleted ends the monitor with a notice, no exception."""
    run = submit(diamond(), config=config)
    monitor = run.monitor()
    run.delete(force=True)
    monitor.refresh()
    assert monitor.done and "deleted" in monitor._view.notice.value
    monitor.close()


def test_bad_interval_is_refused(config: RedisConfig) -> None:
    """interval must be a positive number of seconds."""
    run = submit(diamond(), config=config)
    for bad in (0, -1, "fast", True):
        with pytest.raises(InvalidOptionError, match="interval"):
            run.monitor(interval=bad)  # type: ignore[arg-type]


def test_events_trimmed_past_the_cursor_are_recovered(redis_server: RedisServer,
                                                      namespace: str) -> None:
    """When the run's stream is trimmed past the last event seen, the statuses are read
    again (one resync) and the counts are exact."""
    config = RedisConfig(url=redis_server.url, namespace=namespace, events_maxlen=50)
    run = submit(wide(300), config=config)
    monitor = run.monitor()
    work(config)  # about 900 events: the first ones are trimmed away
    monitor.refresh()
    assert monitor._tracker.resyncs == 1
    assert monitor.done and monitor.counts == {"completed": 301}
    monitor.close()
    config.close()



def test_many_maps_share_a_bounded_number_of_rows(config: RedisConfig) -> None:
    """Beyond MAP_GROUPS maps, the biggest keep a row each and the others share one."""
    p = Pipeline("maps")
    for i in range(40):
        p.map(f"m{i}", tasks.square, over=list(range(2 + (i == 7))))
    monitor = submit(p, config=config).monitor()
    titles = [g.title for g in monitor._view.groups]
    assert all(g.title in g.html.value for g in monitor._view.groups)
    assert len(titles) == MAP_GROUPS and titles[0].startswith("<code>m7[*]</code> 3 tasks")
    assert titles[-1] == "<code>11 other maps</code> 22 tasks"
    assert sum(g.size for g in monitor._tracker.groups) == 81 and not rows(monitor)
    monitor.close()


def test_monitor_on_redis_cluster(redis_cluster: RedisCluster, namespace: str) -> None:
    """On a Redis Cluster (no MULTI), the monitor follows a big run to its end."""
    config = RedisConfig(url=redis_cluster.url, namespace=namespace, cluster=True)
    run = submit(wide(100), config=config)
    monitor = run.monitor()
    assert monitor.counts == {"waiting": 1, "queued": 100}
    work(config)
    monitor.refresh()
    assert monitor.done and monitor.counts == {"completed": 101}
    assert drawn(monitor._view.groups[0])[0] == 1.0
    monitor.close()
    config.close()


def test_a_status_this_version_does_not_know_is_shown_not_fatal(config: RedisConfig) -> None:
    """An event with a status from a newer worker is counted and drawn (with no status in the
    graph), and raises nothing."""
    run = submit(diamond(), config=config)
    monitor = run.monitor()
    job = dict(run.job_ids())["a"]
    client = config.client()
    client.hset(config.keys.job(job), "status", "paused")
    client.xadd(config.keys.run(run.id).events, {"type": "paused", "ts": 0, "run": run.id,
                                                 "job": job, "task": "a", "status": "paused"})
    monitor.refresh()
    assert monitor.counts == {"waiting": 3, "paused": 1}
    assert status_shown(rows(monitor)["a"]) == "paused"
    pending = monitor._painter._pending
    if pending is not None:
        assert "<svg" in pending.result()
    monitor.close()
