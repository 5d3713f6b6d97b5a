"""How a `Run` displays itself: an HTML status table plus the graph colored by the tasks'
statuses in Jupyter, readable text elsewhere (a console, or no ``dot`` binary).

Jobs are executed in-process by `runloop.work`, on the session redis-server.
"""

from __future__ import annotations

import re

import pytest

from ironforge_nb.dag import Pipeline
from ironforge_nb.orchestrator import Run, submit
from ironforge_nb.queue import RedisConfig
from ironforge_nb.render import STATUS_COLORS
from tests import tasks
from tests.helpers import diamond, failing
from tests.runloop import work

pytestmark = pytest.mark.usefixtures("signing_secret")



def svg_fills(html: str) -> set[str]:
    """The fill colors of the graph's nodes in an HTML view."""
    return set(re.findall(r'<path fill="(#[0-9a-f]{6})"', html))


def test_finished_run_shows_its_status_table_and_graph(config: RedisConfig) -> None:
    """A succeeded run's HTML names the run and status, counts its tasks and inlines the SVG."""
    run = submit(diamond(), config=config, run_id="shown")
    work(config)
    html = run._repr_mimebundle_()["text/html"]
    assert "<code>shown</code>" in html and "<b>succeeded</b>" in html
    assert re.search(r">completed</td><td[^>]*>4</td>", html)
    assert "<svg" in html and "<?xml" not in html
    assert STATUS_COLORS["completed"] in svg_fills(html)


def test_failed_run_colors_failed_and_skipped_tasks(config: RedisConfig) -> None:
    """The failed task and its skipped descendant get their own rows and graph colors."""
    run = submit(failing(), config=config)
    work(config)
    html = run._repr_mimebundle_()["text/html"]
    assert re.search(r">failed</td><td[^>]*>1</td><td[^>]*>bad</td>", html)
    assert re.search(r">skipped</td><td[^>]*>1</td><td[^>]*>after_bad</td>", html)
    assert {STATUS_COLORS["failed"], STATUS_COLORS["skipped"]} <= svg_fills(html)


def test_text_lists_tasks_with_their_live_statuses(config: RedisConfig) -> None:
    """Before any work, the text view starts with repr and shows the root queued."""
    run = submit(diamond(), config=config)
    text = run._repr_mimebundle_()["text/plain"]
    first, *rest = text.splitlines()
    assert first == repr(run)
    assert "  level 0: a (queued)" in rest
    assert "  level 2: d (waiting)" in rest


def test_graph_edges_come_from_the_run(config: RedisConfig) -> None:
    """The drawn graph has the pipeline's levels, rebuilt from Redis alone."""
    submit(diamond(), config=config, run_id="edges")
    text = Run("edges", config)._repr_mimebundle_(include=["text/plain"])["text/plain"]
    assert "4 tasks on 3 levels" in text
    assert "  level 1: b (waiting), c (waiting)" in text


def test_include_and_exclude_select_mime_types(config: RedisConfig) -> None:
    """``include``/``exclude`` keep only the requested parts of the bundle."""
    run = submit(diamond(), config=config)
    assert set(run._repr_mimebundle_(include=["text/plain"])) == {"text/plain"}
    assert set(run._repr_mimebundle_(exclude=["text/html"])) == {"text/plain"}


def test_big_map_is_drawn_as_one_box(config: RedisConfig) -> None:
    """A 400-member map collapses into a ``name[*]`` box with its counts."""
    p = Pipeline("big")
    p.map("sq", tasks.square, over=list(range(400))).then("total", tasks.total)
    run = submit(p, config=config)
    html = run._repr_mimebundle_()["text/html"]
    assert "sq[*]" in html
    assert re.search(r">queued</td><td[^>]*>400</td>", html)
    assert "(397 more)" in html


def test_missing_run_displays_as_text(config: RedisConfig) -> None:
    """A run id that is not in Redis displays its repr only, without raising."""
    assert Run("nothing-here", config)._repr_mimebundle_() == {
        "text/plain": "Run('nothing-here', not found)"}


def test_without_dot_the_html_shows_the_text_view(config: RedisConfig,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """With no ``dot`` on PATH the HTML holds the text view and the reason, no SVG."""
    run = submit(diamond(), config=config)
    work(config)
    monkeypatch.setenv("PATH", "")
    html = run._repr_mimebundle_()["text/html"]
    assert "<svg" not in html
    assert "<pre>" in html and "a (completed)" in html and "no drawing" in html
