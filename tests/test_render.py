"""Tests for `ironforge_nb.render`: DOT building, collapsing, focus, and the real ``dot`` binary."""

from __future__ import annotations

import random
import re
from pathlib import Path

import psutil
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import ironforge_nb as ifn
from ironforge_nb.dag import DAG, Pipeline
from ironforge_nb.errors import (
    GraphvizNotFoundError,
    InvalidOptionError,
    LayoutTimeoutError,
    UnknownTaskError,
)
from ironforge_nb.render import (
    STATUS_COLORS,
    draw,
    legend,
    mimebundle,
    text_view,
    to_digraph,
    to_png,
    to_svg,
    write,
)
from ironforge_nb.render.collapse import build_view
from ironforge_nb.render.palette import NO_STATUS
from ironforge_nb.status import JobStatus


def random_dag(n: int, seed: int = 7, max_parents: int = 3) -> DAG[int]:
    """A random DAG on ``0..n-1``: each node gets up to ``max_parents`` earlier parents."""
    rng = random.Random(seed)
    edges = [(rng.randrange(v), v) for v in range(1, n) for _ in range(rng.randint(0, max_parents))]
    return DAG.from_edges(edges, nodes=range(n))


def fan_out(n: int) -> Pipeline:
    """prepare -> work[0..n-1] -> summary."""
    p = Pipeline("big").task("prepare", lambda: 0)
    p.map("work", lambda item, prepare: item, over=range(n), after="prepare")
    return p.then("summary", lambda work: len(work))


def node_count(source: str) -> int:
    """Number of drawn task/box nodes in DOT text (legend swatches excluded)."""
    return len(re.findall(r"^\s*[tb]\d+ \[", source, flags=re.M))


@pytest.fixture
def sales() -> Pipeline:
    p = Pipeline("sales").task("extract", lambda: 1).then("clean", lambda extract: 1)
    p.map("by_region", lambda region, clean: 1, over=["eu", "us"], after="clean")
    return p.then("report", lambda by_region: 1)


# ---------------------------------------------------------------------- palette


def test_palette_covers_every_job_status_and_none() -> None:
    """One color per `JobStatus` plus "none" (no status) and "cached" (completed from the
    cache), all distinct."""
    assert set(STATUS_COLORS) == {s.value for s in JobStatus} | {"none", "cached"}
    assert len(set(STATUS_COLORS.values())) == len(STATUS_COLORS)
    assert STATUS_COLORS[JobStatus.FAILED] == STATUS_COLORS["failed"]


def test_nodes_are_colored_from_the_palette(sales: Pipeline) -> None:
    """Each task's fill color is its status' palette color; tasks without status are "none"."""
    statuses = {"extract": JobStatus.COMPLETED, "clean": "failed"}
    source = to_digraph(sales, statuses).source
    assert re.search(rf'label="extract"[^\]]*fillcolor="{STATUS_COLORS["completed"]}"', source)
    assert re.search(rf'label="clean"[^\]]*fillcolor="{STATUS_COLORS["failed"]}"', source)
    assert re.search(rf'label="report"[^\]]*fillcolor="{STATUS_COLORS["none"]}"', source)


def test_the_old_name_of_no_status_still_draws_with_a_warning(sales: Pipeline) -> None:
    """"pending" (the no-status key's name up to 0.1.0) still draws, as "none", and says it is
    deprecated; so does the old constant."""
    with pytest.warns(FutureWarning, match="'pending' is deprecated"):
        source = to_digraph(sales, {"extract": "pending", "clean": "failed"}).source
    assert re.search(rf'label="extract"[^\]]*fillcolor="{STATUS_COLORS["none"]}"', source)
    assert 'label="no status (4)"' in source
    with pytest.warns(FutureWarning, match="PENDING is deprecated: use NO_STATUS"):
        from ironforge_nb.render.palette import PENDING
    assert PENDING == NO_STATUS == "none"


def test_unknown_status_is_refused(sales: Pipeline) -> None:
    """A status string outside the palette raises `InvalidOptionError` listing valid ones."""
    with pytest.raises(InvalidOptionError, match="completed"):
        to_digraph(sales, {"extract": "done"})


def test_legend_lists_the_statuses_present(sales: Pipeline) -> None:
    """With statuses, a legend cluster shows each status present with its count."""
    source = to_digraph(sales, {"extract": "completed", "clean": "active"}).source
    assert "cluster_legend" in source
    assert 'label="completed (1)"' in source and 'label="no status (3)"' in source
    assert "failed (" not in source


def test_no_legend_without_statuses_or_when_disabled(sales: Pipeline) -> None:
    """The legend appears only when there are statuses and ``legend`` is true."""
    assert "cluster_legend" not in to_digraph(sales).source
    assert "cluster_legend" not in to_digraph(sales, {"extract": "queued"}, legend=False).source


def test_standalone_legend_has_every_status() -> None:
    """``legend()`` draws one swatch per palette status."""
    source = legend().source
    assert all(f"legend_{status} " in source for status in STATUS_COLORS)


# ---------------------------------------------------------------------- structure


def test_groups_are_drawn_as_clusters(sales: Pipeline) -> None:
    """Tasks of a map sit in a cluster labelled with the map name."""
    source = to_digraph(sales).source
    assert "subgraph cluster_0" in source and "label=by_region" in source


def test_labels_with_quotes_are_escaped() -> None:
    """Any node id becomes a valid DOT label (the real ``dot`` accepts it)."""
    dag = DAG.from_edges([('say "hi"', "back\\slash")])
    svg = to_svg(dag)
    assert "say &quot;hi&quot;" in svg and "back\\slash" in svg


@pytest.mark.parametrize(
    ("option", "value"),
    [("collapse", "cluster"), ("rankdir", "XY"), ("max_nodes", 0), ("depth", -1)],
)
def test_bad_drawing_options_are_refused(sales: Pipeline, option: str, value: object) -> None:
    """Each drawing option is checked and named in the error."""
    kwargs = {option: value, "focus": "clean"} if option == "depth" else {option: value}
    with pytest.raises(InvalidOptionError) as info:
        to_digraph(sales, **kwargs)  # type: ignore[arg-type]
    assert info.value.option == option


# ---------------------------------------------------------------------- collapsing and focus


def test_auto_collapse_above_max_nodes_groups_the_map() -> None:
    """Beyond ``max_nodes``, a map becomes one box with its task counts per status."""
    p = fan_out(500)
    statuses = {f"work[{i}]": "completed" if i < 300 else "queued" for i in range(500)}
    source = to_digraph(p, statuses).source
    assert node_count(source) == 3
    assert "work[*]\\n500 tasks: 200 queued, 300 completed" in source


def test_auto_does_not_collapse_small_graphs() -> None:
    """Up to ``max_nodes`` tasks every task is drawn."""
    assert node_count(to_digraph(fan_out(50)).source) == 52


def test_collapsed_edges_carry_the_number_of_task_edges() -> None:
    """An aggregated edge is labelled with how many task edges it stands for."""
    source = to_digraph(fan_out(500)).source
    assert source.count("label=500") == 2


def test_forced_group_collapse_on_a_small_graph(sales: Pipeline) -> None:
    """``collapse="group"`` collapses even below the threshold."""
    source = to_digraph(sales, collapse="group").source
    assert "by_region[*]\\n2 tasks" in source and node_count(source) == 4


def test_graph_without_groups_collapses_by_level() -> None:
    """A large ungrouped graph is drawn as one box per level, with counts."""
    dag = random_dag(3000)
    source = to_digraph(dag, max_nodes=100).source
    depth = len(dag.generations())
    assert node_count(source) == depth
    first = len(dag.generations()[0])
    assert f'label="level 0\\n{first:,} task{"s" * (first != 1)}' in source


def test_many_levels_are_bucketed_to_at_most_max_nodes_boxes() -> None:
    """A 5,000-long chain collapsed with ``max_nodes=40`` gives at most 40 boxes."""
    dag = DAG.from_edges([(i, i + 1) for i in range(4999)])
    source = to_digraph(dag, max_nodes=40).source
    assert node_count(source) <= 40
    assert 'label="levels 0-124\\n125 tasks' in source


def test_level_view_draws_only_consecutive_edges() -> None:
    """Level boxes form a chain: skip-level edges are implied and not drawn."""
    view_edges = re.findall(r"b(\d+) -> b(\d+)", to_digraph(random_dag(2000), max_nodes=50).source)
    assert view_edges and all(int(b) == int(a) + 1 for a, b in view_edges)


def test_too_many_groups_fall_back_to_levels() -> None:
    """When groups alone still exceed ``max_nodes``, collapsing goes on by level."""
    p = Pipeline("g")
    for i in range(60):
        p.task(f"a{i}", lambda: 0, group=f"g{i}").task(f"b{i}", lambda: 0, group=f"g{i}")
    source = to_digraph(p, max_nodes=20).source
    assert node_count(source) == 1 and "level 0\\n120 tasks" in source


def test_focus_draws_the_neighbourhood_only() -> None:
    """``focus=task, depth=1`` keeps the task and its direct parents and children."""
    dag = DAG.from_edges([("a", "b"), ("b", "c"), ("c", "d"), ("x", "c")])
    source = to_digraph(dag, focus="c", depth=1).source
    labels = set(re.findall(r'label="(\w)"', source))
    assert labels == {"b", "c", "d", "x"}
    assert "penwidth=2.5" in source


def test_focus_on_unknown_task_suggests_names() -> None:
    """Focusing on a missing task raises `UnknownTaskError`."""
    with pytest.raises(UnknownTaskError):
        to_digraph(DAG.from_edges([("clean", "report")]), focus="clen")


def grouped_dag(n: int, groups: int, seed: int) -> DAG[str]:
    """A random DAG whose tasks carry random groups (``None`` for some), like builder specs."""
    rng = random.Random(seed)
    parents = {f"t{v}": [f"t{rng.randrange(v)}" for _ in range(rng.randint(0, 3)) if v]
               for v in range(n)}
    data = {t: _Spec(rng.choice([None, *(f"g{k}" for k in range(groups))])) for t in parents}
    return DAG.from_parents({t: list(dict.fromkeys(ps)) for t, ps in parents.items()}, data)


class _Spec:
    def __init__(self, group: str | None) -> None:
        self.group = group


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 400), st.integers(0, 30), st.integers(1, 80), st.integers(0, 2**16))
def test_auto_view_is_small_and_accounts_for_every_task(
    n: int, groups: int, max_nodes: int, seed: int
) -> None:
    """Any DAG's automatic view has at most max_nodes boxes, 2*max_nodes edges, all tasks."""
    dag = grouped_dag(n, groups, seed)
    rng = random.Random(seed)
    statuses = {t: rng.choice(list(STATUS_COLORS)) for t in dag.nodes}
    view = build_view(dag, statuses, "auto", max_nodes)
    assert len(view.boxes) <= max_nodes and len(view.edges) <= 2 * max_nodes
    assert sum(box.size for box in view.boxes) == n
    assert sum(sum(box.counts.values()) for box in view.boxes) == n
    assert all(a != b and count >= 1 for (a, b), count in view.edges.items())


def test_collapse_none_draws_every_task() -> None:
    """``collapse=None`` never collapses, whatever the size."""
    assert node_count(to_digraph(random_dag(1000), collapse=None).source) == 1000


# ---------------------------------------------------------------------- the dot binary


def test_svg_contains_task_names(sales: Pipeline) -> None:
    """The real ``dot`` produces an SVG with every task label."""
    svg = to_svg(sales)
    assert svg.lstrip().startswith("<?xml") and "<svg" in svg
    for task in sales:
        assert task in svg


def test_svg_shows_status_colors(sales: Pipeline) -> None:
    """Status fill colors reach the SVG."""
    svg = to_svg(sales, statuses={"report": "failed"})
    assert f'fill="{STATUS_COLORS["failed"]}"' in svg


def test_png_bytes() -> None:
    """``to_png`` returns PNG data."""
    assert to_png(DAG.from_edges([("a", "b")])).startswith(b"\x89PNG")


def test_write_picks_the_format_from_the_suffix(sales: Pipeline, tmp_path: Path) -> None:
    """``write`` writes SVG, PNG or the DOT source according to the file name."""
    assert "<svg" in write(sales, tmp_path / "p.svg").read_text()
    assert write(sales, tmp_path / "p.png").read_bytes().startswith(b"\x89PNG")
    assert write(sales, tmp_path / "p.dot").read_text().startswith("digraph")


def test_write_refuses_unknown_formats(sales: Pipeline, tmp_path: Path) -> None:
    """An unsupported suffix is named with the supported ones."""
    with pytest.raises(InvalidOptionError, match="svg"):
        write(sales, tmp_path / "p.bmp")


def test_missing_dot_raises_with_install_commands_and_source(
    sales: Pipeline, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without ``dot`` on PATH, the error names apt, brew and conda and keeps the DOT text."""
    monkeypatch.setenv("PATH", "")
    with pytest.raises(GraphvizNotFoundError) as info:
        to_svg(sales)
    message = str(info.value)
    assert "apt-get install graphviz" in message and "brew" in message and "conda" in message
    assert info.value.source.startswith("digraph") and "by_region[eu]" in info.value.source


def test_missing_dot_degrades_the_notebook_display_to_text(
    sales: Pipeline, monkeypatch: pytest.MonkeyPatch
) -> None:
    """In Jupyter, a missing ``dot`` gives the text view plus the install hint, no exception."""
    monkeypatch.setenv("PATH", "")
    bundle = sales._repr_mimebundle_()
    assert list(bundle) == ["text/plain"]
    assert "level 2: by_region[eu], by_region[us]" in bundle["text/plain"]
    assert "apt-get install graphviz" in bundle["text/plain"]


def test_layout_timeout_kills_dot_and_keeps_the_source() -> None:
    """A layout over the time limit raises `LayoutTimeoutError` and leaves no ``dot`` behind."""
    digraph = to_digraph(random_dag(3000), collapse=None)
    with pytest.raises(LayoutTimeoutError) as info:
        to_svg(digraph, timeout=0.2)
    assert info.value.seconds == 0.2 and info.value.source == digraph.source
    assert "collapse=" in str(info.value)
    assert not [c for c in psutil.Process().children(recursive=True) if c.name() == "dot"]


def test_bad_timeout_is_refused(sales: Pipeline) -> None:
    """The time limit must be a positive number of seconds."""
    with pytest.raises(InvalidOptionError, match="timeout"):
        to_svg(sales, timeout=0)


# ---------------------------------------------------------------------- Jupyter and text


def test_mimebundle_has_svg_and_text(sales: Pipeline) -> None:
    """``mimebundle`` returns the SVG and a text listing."""
    bundle = mimebundle(sales.build(), {"extract": "completed"})
    assert "<svg" in bundle["image/svg+xml"]
    assert "extract (completed)" in bundle["text/plain"]


def test_dag_displays_itself_through_render(sales: Pipeline) -> None:
    """``DAG._repr_mimebundle_`` delegates to the render package."""
    assert "<svg" in sales.build()._repr_mimebundle_()["image/svg+xml"]


def test_render_returns_a_displayable_drawing(sales: Pipeline, tmp_path: Path) -> None:
    """``ifn.render.draw`` gives an object with SVG display, DOT source and ``save``."""
    drawing = ifn.render.draw(sales, {"clean": "active"}, focus="clean", depth=1)
    assert ifn.render.draw is draw
    assert "<svg" in drawing._repr_mimebundle_()["image/svg+xml"]
    assert 'label="extract"' in drawing.source and 'label="report"' not in drawing.source
    assert drawing.save(tmp_path / "f.svg").read_text().count("<svg") == 1


def test_text_view_of_a_large_graph_stays_short() -> None:
    """The text view names a few tasks per level and a bounded number of levels."""
    text = text_view(DAG.from_edges([(i, i + 1) for i in range(999)]), max_levels=5)
    assert text.splitlines()[0] == "DAG: 1,000 tasks on 1,000 levels"
    assert text.splitlines()[-1] == "  ... and 995 more levels"


def test_text_view_counts_statuses(sales: Pipeline) -> None:
    """With statuses, the header counts tasks per status."""
    text = text_view(sales.build(), {"extract": "completed", "clean": "completed"})
    assert "(3 without status, 2 completed)" in text.splitlines()[0]


def test_dense_small_graph_is_collapsed_too() -> None:
    """Few tasks but many long edges would still stall ``dot``, so auto collapses them."""
    dag = random_dag(200, max_parents=12)
    assert len(dag) <= 300 and dag.edge_count > 600
    assert node_count(to_digraph(dag).source) < 200
