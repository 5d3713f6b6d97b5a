"""Tests for the pure graph model `ironforge_nb.dag.DAG` (no Redis, no Graphviz)."""

from __future__ import annotations

import gc
import pickle
from itertools import pairwise
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ironforge_nb.dag import DAG
from ironforge_nb.errors import (
    CycleError,
    DuplicateTaskError,
    InvalidOptionError,
    IronForgeError,
    SelfDependencyError,
    UnknownTaskError,
    ValidationError,
)

Graph = tuple[list[int], list[tuple[int, int]]]

SALES = {
    "extract": [],
    "clean": ["extract"],
    "by_region": ["clean"],
    "report": ["by_region", "clean"],
    "audit": ["clean", "by_region"],
}


@pytest.fixture
def sales() -> DAG[str]:
    """The README's example pipeline, with one attached object per task."""
    return DAG.from_parents(SALES, data={name: f"spec:{name}" for name in SALES})


# ---------------------------------------------------------------------- construction


def test_from_edges_orders_nodes_by_first_appearance() -> None:
    """Without an explicit node list, nodes come in order of first appearance in the edges."""
    dag = DAG.from_edges([("b", "c"), ("a", "c"), ("b", "a")])
    assert dag.nodes == ("b", "c", "a")


def test_from_edges_explicit_nodes_fix_order_and_add_isolated_nodes() -> None:
    """An explicit node list fixes the order and may contain nodes without edges."""
    dag = DAG.from_edges([("a", "b")], nodes=["z", "b", "a"])
    assert dag.nodes == ("z", "b", "a")
    assert dag.roots() == ("z", "a")


def test_from_edges_accepts_a_generator() -> None:
    """Edges may be any iterable, consumed once."""
    dag = DAG.from_edges((i, i + 1) for i in range(3))
    assert dag.topological_order() == [0, 1, 2, 3]


def test_duplicate_edges_are_collapsed() -> None:
    """The same edge given twice counts once."""
    dag = DAG.from_edges([("a", "b"), ("a", "b"), ("b", "c"), ("a", "b")])
    assert dag.edge_count == 2
    assert list(dag.edges()) == [("a", "b"), ("b", "c")]
    assert dag.parents("b") == ("a",)


def test_from_parents_keeps_mapping_order_and_data(sales: DAG[str]) -> None:
    """The mapping's order is the node order and each task keeps its attached object."""
    assert sales.nodes == tuple(SALES)
    assert sales.data("report") == "spec:report"


def test_data_is_none_without_attachment() -> None:
    """Graphs built from edges carry no attached objects."""
    assert DAG.from_edges([("a", "b")]).data("a") is None


def test_from_parents_accepts_a_single_parent_string() -> None:
    """A plain string as the parent list means that one parent, not its characters."""
    dag = DAG.from_parents({"extract": [], "clean": "extract"})
    assert dag.parents("clean") == ("extract",)


def test_from_parents_rejects_data_for_unknown_task() -> None:
    """Data attached to a task that is not in the graph is refused."""
    with pytest.raises(UnknownTaskError) as info:
        DAG.from_parents({"a": []}, data={"b": 1})
    assert info.value.missing == "b"


def test_empty_graph() -> None:
    """A graph without nodes is valid and answers every query with nothing."""
    dag: DAG[str] = DAG.from_edges([])
    assert (len(dag), dag.edge_count, dag.topological_order(), dag.generations()) == (0, 0, [], [])
    assert dag.critical_path({}) == ([], 0.0)


# ---------------------------------------------------------------------- validation


def test_self_edge_raises_self_dependency() -> None:
    """An edge from a task to itself names that task."""
    with pytest.raises(SelfDependencyError) as info:
        DAG.from_edges([("a", "b"), ("b", "b")])
    assert info.value.task == "b"


def test_self_parent_raises_self_dependency() -> None:
    """A task listing itself among its parents is refused."""
    with pytest.raises(SelfDependencyError):
        DAG.from_parents({"a": [], "b": ["a", "b"]})


def test_duplicate_node_raises() -> None:
    """A node listed twice in the explicit node list names the duplicate."""
    with pytest.raises(DuplicateTaskError) as info:
        DAG.from_edges([], nodes=["a", "b", "a"])
    assert info.value.task == "a"


def test_unknown_parent_suggests_close_names() -> None:
    """A dependency on an unknown task names it and suggests similar existing names."""
    with pytest.raises(UnknownTaskError) as info:
        DAG.from_parents({"extract": [], "clean": ["extrct"]})
    err = info.value
    assert (err.task, err.missing, err.suggestions) == ("clean", "extrct", ["extract"])
    assert "did you mean 'extract'" in str(err)


def test_unknown_edge_end_with_explicit_nodes_raises() -> None:
    """With an explicit node list, an edge naming another node is an unknown task."""
    with pytest.raises(UnknownTaskError) as info:
        DAG.from_edges([("load", "clen")], nodes=["load", "clean"])
    assert info.value.missing == "clen"
    assert info.value.suggestions == ["clean"]


def test_unknown_lookup_raises_with_suggestions(sales: DAG[str]) -> None:
    """Asking about a task that does not exist suggests close matches."""
    with pytest.raises(UnknownTaskError) as info:
        sales.parents("reprt")
    assert info.value.suggestions == ["report"]


def test_unhashable_lookup_is_an_unknown_task(sales: DAG[str]) -> None:
    """An unhashable lookup key is reported as an unknown task, not a TypeError."""
    with pytest.raises(UnknownTaskError):
        sales.children(["report"])  # type: ignore[arg-type]


def test_non_pair_edge_is_rejected() -> None:
    """An edge that is not a (parent, child) pair is refused with the offending edge."""
    bad: list[Any] = [("a", "b"), ("a", "b", "c")]
    with pytest.raises(InvalidOptionError) as info:
        DAG.from_edges(bad)
    assert info.value.value == ("a", "b", "c")


def test_unhashable_node_is_rejected() -> None:
    """A node that cannot be a dict key is refused by name, not with a bare TypeError."""
    bad: list[Any] = ["a", ["b"]]
    with pytest.raises(InvalidOptionError) as info:
        DAG.from_edges([], nodes=bad)
    assert info.value.value == ["b"]


def test_unhashable_edge_end_is_rejected() -> None:
    """An edge naming an unhashable node is refused with that node."""
    bad: list[Any] = [("a", {"b": 1})]
    with pytest.raises(InvalidOptionError):
        DAG.from_edges(bad)


def test_cycle_error_carries_the_cycle() -> None:
    """A cycle raises CycleError (a ValueError) whose .cycle closes on its first node."""
    with pytest.raises(CycleError) as info:
        DAG.from_edges([("a", "b"), ("b", "c"), ("c", "a"), ("c", "d")])
    err = info.value
    assert isinstance(err, ValueError) and isinstance(err, IronForgeError)
    assert err.cycle[0] == err.cycle[-1]
    assert set(err.cycle) == {"a", "b", "c"}


def test_validation_errors_share_a_root() -> None:
    """Every validation error is a ValidationError, so callers can catch them all at once."""
    for cls in (CycleError, DuplicateTaskError, UnknownTaskError, SelfDependencyError):
        assert issubclass(cls, ValidationError)


def test_builds_pause_the_garbage_collector_and_restore_it() -> None:
    """Builds run with the cyclic GC paused (no full rescans of a 1M-node build), then restore
    it as it was: on after a build or a failed one, still off if the caller had turned it off."""
    seen: list[bool] = []

    class Probe(str):
        """A node id that records whether the collector is on whenever it is hashed."""

        def __hash__(self) -> int:
            seen.append(gc.isenabled())
            return str.__hash__(self)

    a, b = Probe("a"), Probe("b")
    parents = {a: [], b: [a]}
    seen.clear()
    assert gc.isenabled()
    DAG.from_edges([(a, b)])
    DAG.from_parents(parents)
    with pytest.raises(CycleError):
        DAG.from_edges([(a, b), (b, a)])
    assert seen and not any(seen)
    assert gc.isenabled()
    gc.disable()
    try:
        DAG.from_edges([(a, b)])
        assert not gc.isenabled()
    finally:
        gc.enable()


# ---------------------------------------------------------------------- queries


def test_parents_and_children_in_insertion_order(sales: DAG[str]) -> None:
    """Neighbours come back in node insertion order, whatever order the edges were given in."""
    assert sales.parents("report") == ("clean", "by_region")
    assert sales.children("clean") == ("by_region", "report", "audit")


def test_len_contains_iter(sales: DAG[str]) -> None:
    """Length, membership and iteration follow the node list."""
    assert len(sales) == 5
    assert "audit" in sales and "nope" not in sales
    assert list(sales) == list(SALES)


def test_edges_and_edge_count(sales: DAG[str]) -> None:
    """Edges are listed by parent then child insertion order."""
    assert list(sales.edges()) == [
        ("extract", "clean"),
        ("clean", "by_region"),
        ("clean", "report"),
        ("clean", "audit"),
        ("by_region", "report"),
        ("by_region", "audit"),
    ]
    assert sales.edge_count == 6


def test_roots_and_leaves(sales: DAG[str]) -> None:
    """Roots have no parents and leaves no children."""
    assert sales.roots() == ("extract",)
    assert sales.leaves() == ("report", "audit")


def test_topological_order_goes_level_by_level_in_insertion_order() -> None:
    """Tasks come level by level, and in insertion order within a level."""
    dag = DAG.from_edges([("c", "d"), ("a", "b")], nodes=["a", "b", "c", "d"])
    assert dag.topological_order() == ["a", "c", "b", "d"]
    swapped = DAG.from_edges([("b", "a"), ("d", "c")], nodes=["a", "b", "c", "d"])
    assert swapped.topological_order() == ["b", "d", "a", "c"]


def test_topological_order_is_generations_flattened(sales: DAG[str]) -> None:
    """The order lists the generations one after the other."""
    assert sales.topological_order() == [t for level in sales.generations() for t in level]


def test_topological_order_is_deterministic() -> None:
    """Building the same graph twice gives the same order."""
    edges = [(i % 7, 7 + i % 11) for i in range(50)] + [(20, 3), (20, 9)]
    first = DAG.from_edges(edges).topological_order()
    assert first == DAG.from_edges(list(edges)).topological_order()


def test_topological_order_returns_a_fresh_list(sales: DAG[str]) -> None:
    """Mutating the returned order does not change the graph."""
    sales.topological_order().clear()
    assert len(sales.topological_order()) == 5


def test_levels_are_longest_distance_from_a_root(sales: DAG[str]) -> None:
    """A task's level is the longest path to it, not the shortest."""
    assert sales.levels() == {"extract": 0, "clean": 1, "by_region": 2, "report": 3, "audit": 3}


def test_generations_group_by_level(sales: DAG[str]) -> None:
    """Generations list the tasks of each level in insertion order."""
    assert sales.generations() == [["extract"], ["clean"], ["by_region"], ["report", "audit"]]


def test_ancestors_and_descendants(sales: DAG[str]) -> None:
    """Reachability excludes the task itself."""
    assert sales.ancestors("report") == {"extract", "clean", "by_region"}
    assert sales.descendants("clean") == {"by_region", "report", "audit"}
    assert sales.ancestors("extract") == set()


def test_upstream_sub_dag_keeps_data(sales: DAG[str]) -> None:
    """The upstream view holds the tasks, their ancestors, the edges between them and the data."""
    up = sales.upstream("by_region")
    assert up.nodes == ("extract", "clean", "by_region")
    assert up.edge_count == 2
    assert up.data("clean") == "spec:clean"


def test_downstream_of_several_tasks(sales: DAG[str]) -> None:
    """The downstream view of several tasks is the union of their descendants and themselves."""
    assert sales.downstream("by_region", "audit").nodes == ("by_region", "report", "audit")


def test_subgraph_is_induced(sales: DAG[str]) -> None:
    """A subgraph keeps only the edges between the chosen tasks, in the original order."""
    sub = sales.subgraph(["report", "extract", "clean"])
    assert sub.nodes == ("extract", "clean", "report")
    assert list(sub.edges()) == [("extract", "clean"), ("clean", "report")]


def test_neighbourhood_follows_edges_both_ways(sales: DAG[str]) -> None:
    """The neighbourhood holds tasks within depth edges, upstream or downstream."""
    assert sales.neighbourhood("by_region", 0).nodes == ("by_region",)
    assert sales.neighbourhood("by_region", 1).nodes == ("clean", "by_region", "report", "audit")
    assert sales.neighbourhood("by_region", 2) == sales


def test_neighbourhood_rejects_negative_depth(sales: DAG[str]) -> None:
    """A negative depth is an invalid option."""
    with pytest.raises(InvalidOptionError):
        sales.neighbourhood("clean", -1)


def test_critical_path(sales: DAG[str]) -> None:
    """The critical path is the chain with the largest total duration."""
    durations = {"extract": 1.0, "clean": 2.0, "by_region": 3.0, "report": 1.0, "audit": 5.0}
    assert sales.critical_path(durations) == (["extract", "clean", "by_region", "audit"], 11.0)


def test_critical_path_missing_durations_count_as_zero(sales: DAG[str]) -> None:
    """Tasks without a duration take no time."""
    path, total = sales.critical_path({"clean": 2.0})
    assert total == 2.0 and "clean" in path


def test_critical_path_rejects_negative_duration(sales: DAG[str]) -> None:
    """Durations must be finite and non-negative."""
    with pytest.raises(InvalidOptionError):
        sales.critical_path({"clean": -1.0})


def test_repr_is_short(sales: DAG[str]) -> None:
    """The repr counts tasks and edges."""
    assert repr(sales) == "DAG(5 tasks, 6 edges)"
    assert repr(DAG.from_edges([("a", "b")])) == "DAG(2 tasks, 1 edge)"


def test_describe_lists_tasks_by_level(sales: DAG[str]) -> None:
    """The console text lists each level's tasks."""
    assert str(sales).splitlines() == [
        "DAG(5 tasks, 6 edges)",
        "  level 0: extract",
        "  level 1: clean",
        "  level 2: by_region",
        "  level 3: report, audit",
    ]


def test_describe_truncates_wide_levels() -> None:
    """A level wider than the limit says how many tasks were left out."""
    dag = DAG.from_edges([], nodes=range(20))
    assert dag.describe(width=3).splitlines()[1] == "  level 0: 0, 1, 2, ... and 17 more"


def test_equality_ignores_edge_input_order() -> None:
    """Two graphs with the same nodes and edges are equal."""
    a = DAG.from_edges([("x", "y"), ("x", "z")], nodes="xyz")
    b = DAG.from_edges([("x", "z"), ("x", "y")], nodes="xyz")
    assert a == b and a != DAG.from_edges([("x", "y")], nodes="xyz")


def test_pickle_round_trip(sales: DAG[str]) -> None:
    """A DAG survives pickling (it travels with runs)."""
    copy = pickle.loads(pickle.dumps(sales))
    assert copy == sales and copy.data("audit") == "spec:audit"


# ---------------------------------------------------------------------- scale


def test_long_chain_needs_no_recursion() -> None:
    """A 100k-long chain is ordered, levelled and walked without hitting the recursion limit."""
    n = 100_000
    dag = DAG.from_edges(zip(range(n - 1, 0, -1), range(n - 2, -1, -1), strict=True))
    assert dag.topological_order() == list(range(n - 1, -1, -1))
    assert dag.levels()[0] == n - 1
    assert len(dag.ancestors(0)) == n - 1
    assert dag.critical_path({}) == ([n - 1], 0.0)


def test_long_cycle_is_found() -> None:
    """A 100k-long cycle is reported whole."""
    n = 100_000
    with pytest.raises(CycleError) as info:
        DAG.from_edges([(i, (i + 1) % n) for i in range(n)])
    assert len(info.value.cycle) == n + 1


# ---------------------------------------------------------------------- properties


@st.composite
def dags(draw: st.DrawFn) -> Graph:
    """A random DAG: nodes in a shuffled order, edges from lower to higher hidden rank."""
    n = draw(st.integers(min_value=0, max_value=25))
    rank = draw(st.permutations(range(n)))
    pairs = st.tuples(st.integers(0, max(n - 1, 0)), st.integers(0, max(n - 1, 0)))
    raw = draw(st.lists(pairs, max_size=3 * n)) if n else []
    edges = [(rank[min(a, b)], rank[max(a, b)]) for a, b in raw if a != b]
    return draw(st.permutations(range(n))), edges


@settings(max_examples=200, deadline=None)
@given(dags())
def test_property_order_respects_every_edge(graph: Graph) -> None:
    """Any DAG's topological order lists every node once and each parent before its child."""
    nodes, edges = graph
    order = DAG.from_edges(edges, nodes=nodes).topological_order()
    assert sorted(order) == sorted(nodes)
    position = {node: i for i, node in enumerate(order)}
    assert all(position[u] < position[v] for u, v in edges)


@settings(max_examples=200, deadline=None)
@given(dags())
def test_property_levels_exceed_parent_levels(graph: Graph) -> None:
    """Every child sits at least one level below each of its parents; roots sit at 0."""
    nodes, edges = graph
    dag = DAG.from_edges(edges, nodes=nodes)
    levels = dag.levels()
    assert all(levels[u] < levels[v] for u, v in edges)
    assert all(levels[r] == 0 for r in dag.roots())


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(0, 12), st.integers(0, 12)).filter(lambda e: e[0] != e[1]),
        min_size=1,
        max_size=40,
    ),
    st.lists(st.integers(0, 12), min_size=2, max_size=8, unique=True),
)
def test_property_cycles_are_real(edges: list[tuple[int, int]], ring: list[int]) -> None:
    """Any graph with a cycle raises CycleError whose .cycle is a closed walk over input edges."""
    edges = edges + list(zip(ring, ring[1:] + ring[:1], strict=True))  # guarantee one cycle
    with pytest.raises(CycleError) as info:
        DAG.from_edges(edges)
    cycle = info.value.cycle
    assert len(cycle) >= 3 and cycle[0] == cycle[-1]
    assert len(set(cycle[:-1])) == len(cycle) - 1
    assert set(pairwise(cycle)) <= set(edges)


# ---------------------------------------------------------------------- display in Jupyter


def test_mimebundle_has_svg_and_text(sales: DAG[str]) -> None:
    """Jupyter gets an SVG drawing and a plain-text fallback from the render layer."""
    bundle = sales._repr_mimebundle_()
    assert bundle["image/svg+xml"].lstrip().startswith(("<?xml", "<svg"))
    assert "extract" in bundle["text/plain"]


def test_mimebundle_honours_include_and_exclude(sales: DAG[str]) -> None:
    """Jupyter's include/exclude filters select the returned formats."""
    assert set(sales._repr_mimebundle_(include=["text/plain"])) == {"text/plain"}
    assert "image/svg+xml" not in sales._repr_mimebundle_(exclude=["image/svg+xml"])
