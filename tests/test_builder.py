"""Tests for the fluent builder `ironforge_nb.Pipeline` and its `TaskSpec` records."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

import ironforge_nb as ifn
from ironforge_nb.dag import DAG, Pipeline, TaskSpec
from ironforge_nb.errors import (
    CycleError,
    DuplicateTaskError,
    InvalidNameError,
    InvalidOptionError,
    SelfDependencyError,
    UnknownTaskError,
)


def load() -> list[int]:
    return [3, 1, 2]


def clean(df: list[int]) -> list[int]:
    return sorted(df)


def score(region: str, clean: list[int]) -> str:
    return f"{region}:{sum(clean)}"


def spec(dag: DAG[str], task_id: str) -> TaskSpec:
    data = dag.data(task_id)
    assert isinstance(data, TaskSpec)
    return data


@pytest.fixture
def sales() -> Pipeline:
    """extract -> clean -> score[eu|us] -> report."""
    p = Pipeline("sales")
    (p.task("extract", load)
      .then("clean", clean)
      .map("score", score, over=["eu", "us"], after="clean")
      .then("report", lambda score: ";".join(score)))
    return p


# ---------------------------------------------------------------------- chaining


def test_public_door_exports_pipeline() -> None:
    """``ifn.Pipeline`` is the builder class."""
    assert ifn.Pipeline is Pipeline


def test_task_chaining_returns_the_pipeline_and_records_edges() -> None:
    """``task(..., after=...)`` returns the pipeline and the edge appears in the built DAG."""
    p = Pipeline("p")
    assert p.task("extract", load).task("clean", clean, after="extract") is p
    assert list(p.build().edges()) == [("extract", "clean")]


def test_then_depends_on_the_previously_added_task() -> None:
    """``then`` adds a task after the one added just before it."""
    p = Pipeline("p").task("a", load).then("b", clean).then("c", clean)
    assert p.build().topological_order() == ["a", "b", "c"]
    assert p["c"].parents == ("b",)


def test_then_without_a_previous_task_is_refused() -> None:
    """``then`` as the first call says to start with ``task``."""
    with pytest.raises(InvalidOptionError, match=r"start with \.task"):
        Pipeline("p").then("a", load)


def test_after_accepts_a_list_of_names() -> None:
    """A list in ``after`` adds one edge per name."""
    p = Pipeline("p").task("a", load).task("b", load).task("c", lambda x, y: 0, after=["a", "b"])
    assert set(p.build().parents("c")) == {"a", "b"}


@pytest.mark.parametrize("after", [5, ["a", 5], 3.5])
def test_after_that_is_not_names_is_refused(after: object) -> None:
    """``after`` takes a task name or a list of names; anything else says so."""
    with pytest.raises(InvalidOptionError, match="a task name or a list of task names"):
        Pipeline("p").task("a", load).task("b", load, after=after)  # type: ignore[arg-type]


def test_after_may_name_a_task_defined_later() -> None:
    """Dependencies are resolved at build time, so tasks can be added in any order."""
    p = Pipeline("p").task("report", clean, after="extract").task("extract", load)
    assert p.build().topological_order() == ["extract", "report"]


def test_unnamed_upstream_result_goes_to_the_first_free_parameter() -> None:
    """With ``after="extract"`` and ``def clean(df)``, ``df`` receives extract's result."""
    p = Pipeline("p").task("extract", load).task("clean", clean, after="extract")
    assert p["clean"].bindings == {"df": "extract"}
    args, kwargs = p.build().data("clean").arguments({"extract": [2, 1]})  # type: ignore[union-attr]
    assert clean(*args, **kwargs) == [1, 2]


# ---------------------------------------------------------------------- decorator


def test_bare_decorator_names_the_task_after_the_function() -> None:
    """``@p.task`` registers the function under its own name and returns it unchanged."""
    p = Pipeline("p")

    @p.task
    def extract() -> int:
        return 1

    assert "extract" in p
    assert extract() == 1


def test_decorator_with_options_records_them() -> None:
    """``@p.task(retries=3, timeout=60)`` stores the options on the spec."""
    p = Pipeline("p")

    @p.task(retries=3, timeout=60, queue="heavy", priority=5, group="io", allow_failure=True)
    def fetch() -> None:
        return None

    s = p["fetch"]
    assert (s.retries, s.timeout, s.queue, s.priority, s.group, s.allow_failure) == (
        3, 60.0, "heavy", 5, "io", True)


def test_decorator_name_and_after_options() -> None:
    """``name=`` overrides the function name and ``after=`` adds explicit edges."""
    p = Pipeline("p").task("a", load)

    @p.task(name="second", after="a")
    def whatever() -> None:
        return None

    assert p["second"].parents == ("a",)


def test_decorator_parameters_named_after_tasks_become_edges() -> None:
    """A parameter named after an existing task is an edge and receives that task's result."""
    p = Pipeline("p").task("extract", load).then("clean", clean)

    @p.task
    def audit(clean: list[int], extract: list[int]) -> bool:
        return clean == sorted(extract)

    dag = p.build()
    assert set(dag.parents("audit")) == {"clean", "extract"}
    args, kwargs = spec(dag, "audit").arguments({"clean": [1, 2, 3], "extract": [3, 2, 1]})
    assert audit(*args, **kwargs) is True


def test_other_parameters_are_run_params() -> None:
    """Parameters not bound to a task are run params: required without a default."""
    p = Pipeline("p").task("extract", load)

    @p.task
    def report(extract: list[int], day: str, fmt: str = "csv") -> str:
        return f"{day}.{fmt}"

    s = p.build().data("report")
    assert isinstance(s, TaskSpec)
    assert (s.run_params, s.optional_params) == (("day",), ("fmt",))
    assert s.arguments({"extract": []}, {"day": "d1"}) == ([], {"extract": [], "day": "d1"})


def test_missing_required_run_param_is_named() -> None:
    """Calling ``arguments`` without a required run param names it."""
    p = Pipeline("p")

    @p.task
    def report(day: str) -> str:
        return day

    with pytest.raises(InvalidOptionError, match="'day'"):
        p.build().data("report").arguments({}, {})  # type: ignore[union-attr]


def test_params_dict_gives_constant_arguments() -> None:
    """``params={...}`` binds constants, which are then not run params."""
    p = Pipeline("p").task("scale", lambda factor, day: factor, params={"factor": 2})
    s = p["scale"]
    assert (s.params, s.run_params) == ({"factor": 2}, ("day",))


def test_function_path_receives_upstream_results_by_task_name() -> None:
    """A ``module:function`` path binds each upstream result to a keyword of its name."""
    p = Pipeline("p").task("extract", load).task(
        "clean", "mypkg.tasks:clean", after="extract", params=["day"])
    s = p["clean"]
    assert (s.fn, s.bindings, s.run_params) == ("mypkg.tasks:clean", {"extract": "extract"},
                                                 ("day",))


# ---------------------------------------------------------------------- map


def test_map_over_names_uses_them_as_keys(sales: Pipeline) -> None:
    """Mapping over valid string items gives ids ``score[eu]``, ``score[us]``."""
    assert sales.maps == {"score": ("score[eu]", "score[us]")}
    assert sales["score[us]"].map.item == "us"  # type: ignore[union-attr]


def test_map_over_other_items_uses_positions() -> None:
    """Items that are not valid names (numbers, long text) get positions as keys."""
    p = Pipeline("p").map("sq", lambda item: item * item, over=[3, 4])
    assert p.tasks == ("sq[0]", "sq[1]")


def test_map_over_a_dict_uses_its_keys_and_values() -> None:
    """A dict ``over`` keys the tasks by its keys and gives each its value."""
    p = Pipeline("p").map("fx", lambda item: item, over={"eur": 1.0, "usd": 1.1})
    assert p["fx[usd]"].map.item == 1.1  # type: ignore[union-attr]


def test_map_item_goes_to_the_first_parameter_not_bound_to_a_task(sales: Pipeline) -> None:
    """``score(region, clean)``: ``clean`` is the upstream result, ``region`` the item."""
    s = sales.build().data("score[eu]")
    assert isinstance(s, TaskSpec)
    assert (s.item_param, s.bindings) == ("region", {"clean": "clean"})
    args, kwargs = s.arguments({"clean": [1, 2]})
    assert score(*args, **kwargs) == "eu:3"


def test_map_parameter_named_item_takes_the_item() -> None:
    """A parameter named ``item`` receives the item even when it is not the first one."""
    p = Pipeline("p").task("base", load).map("m", lambda df, item: 0, over=[1], after="base")
    assert (p["m[0]"].item_param, p["m[0]"].bindings) == ("item", {"df": "base"})


def test_depending_on_the_map_name_gathers_every_member(sales: Pipeline) -> None:
    """A task after ``score`` depends on all ``score[*]`` and receives a list in item order."""
    dag = sales.build()
    assert dag.parents("report") == ("score[eu]", "score[us]")
    _, kwargs = spec(dag, "report").arguments({"score[us]": "u", "score[eu]": "e"})
    assert kwargs == {"score": ["e", "u"]}


def test_gather_over_a_dict_map_is_a_dict() -> None:
    """Gathering a map made over a dict gives ``{key: result}``."""
    p = Pipeline("p").map("fx", lambda item: item, over={"eur": 1, "usd": 2})
    p.task("total", lambda fx: sum(fx.values()), after="fx")
    s = spec(p.build(), "total")
    assert s.arguments({"fx[eur]": 10, "fx[usd]": 20}) == ([], {"fx": {"eur": 10, "usd": 20}})


def test_map_members_default_to_the_map_group(sales: Pipeline) -> None:
    """Map members are grouped under the map name, for clusters and collapsing."""
    assert {sales[t].group for t in sales.maps["score"]} == {"score"}


def test_map_over_a_set_is_refused() -> None:
    """A set has no stable order, so keys would not be stable either."""
    with pytest.raises(InvalidOptionError, match="over"):
        Pipeline("p").map("m", lambda item: 0, over={1, 2})


def test_map_function_needs_a_parameter_for_the_item() -> None:
    """A map function with no free parameter is refused with a hint to name one ``item``."""
    with pytest.raises(InvalidOptionError, match="item"):
        Pipeline("p").task("a", load).map("m", lambda a: 0, over=[1], after="a")


# ---------------------------------------------------------------------- validation


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("retries", -1), ("retries", 1.5), ("retries", True),
        ("timeout", 0), ("timeout", -3), ("timeout", float("inf")),
        ("priority", 1001), ("priority", -1001), ("priority", "high"),
        ("group", ""), ("params", {"not an identifier": 1}), ("allow_failure", "yes"),
    ],
)
def test_bad_option_values_name_the_option(option: str, value: Any) -> None:
    """An out-of-range option raises `InvalidOptionError` naming it and its range."""
    with pytest.raises(InvalidOptionError) as info:
        Pipeline("p").task("a", load, **{option: value})
    assert info.value.option == option
    assert "expected" in str(info.value)


def test_unknown_option_is_refused() -> None:
    """A misspelt option is reported with the list of known ones."""
    with pytest.raises(InvalidOptionError, match="retries"):
        Pipeline("p").task("a", load, retry=3)  # type: ignore[call-arg]


def test_bad_queue_name_is_an_invalid_name() -> None:
    """A queue name with a colon would break the key layout."""
    with pytest.raises(InvalidNameError):
        Pipeline("p").task("a", load, queue="a:b")


@pytest.mark.parametrize("name", ["bad name", "a:b", "x{y}", "", "score[0]"])
def test_bad_task_names_are_refused(name: str) -> None:
    """Task names are validated (brackets are reserved for map members)."""
    with pytest.raises(InvalidNameError):
        Pipeline("p").task(name, load)


def test_bad_pipeline_name_is_refused() -> None:
    """The pipeline name is validated like a key part."""
    with pytest.raises(InvalidNameError):
        Pipeline("sales report")


def test_duplicate_task_is_refused_at_once() -> None:
    """Adding a task id twice raises `DuplicateTaskError` naming it."""
    p = Pipeline("p").task("a", load)
    with pytest.raises(DuplicateTaskError, match="'a'"):
        p.task("a", clean)


def test_map_name_clashing_with_a_task_is_a_duplicate() -> None:
    """A map cannot reuse a task's name (its name stands for its members)."""
    with pytest.raises(DuplicateTaskError):
        Pipeline("p").task("m", load).map("m", lambda item: 0, over=[1])


def test_unknown_dependency_suggests_close_names() -> None:
    """Depending on an unknown task fails at build with close matches."""
    p = Pipeline("p").task("extract", load).task("clean", clean, after="extrct")
    with pytest.raises(UnknownTaskError) as info:
        p.build()
    assert (info.value.task, info.value.missing, info.value.suggestions) == (
        "clean", "extrct", ["extract"])


def test_self_dependency_is_refused_at_build() -> None:
    """A task listed in its own ``after`` raises `SelfDependencyError`."""
    p = Pipeline("p").task("a", load, after="a")
    with pytest.raises(SelfDependencyError):
        p.build()


def test_cycle_is_refused_at_build_with_the_cycle() -> None:
    """Forward references can form a cycle; build raises `CycleError` carrying it."""
    p = Pipeline("p").task("a", clean, after="c").task("b", clean, after="a")
    p.task("c", clean, after="b")
    with pytest.raises(CycleError) as info:
        p.build()
    cycle = info.value.cycle
    assert cycle[0] == cycle[-1] and set(cycle) == {"a", "b", "c"}


# ---------------------------------------------------------------------- build, plan, display


def test_build_is_not_affected_by_later_changes(sales: Pipeline) -> None:
    """A built DAG stays as it was when tasks are added to the pipeline afterwards."""
    dag = sales.build()
    sales.task("late", load, after="report")
    assert "late" not in dag and len(dag) == 5
    assert "late" in sales.build()


def test_specs_are_frozen(sales: Pipeline) -> None:
    """Task specs are immutable records."""
    with pytest.raises(dataclasses.FrozenInstanceError):
        sales["clean"].retries = 9  # type: ignore[misc]


def test_container_protocol(sales: Pipeline) -> None:
    """``len``, ``in``, iteration, ``tasks`` and ``p[id]`` follow insertion order."""
    assert len(sales) == 5
    assert list(sales) == list(sales.tasks) == [
        "extract", "clean", "score[eu]", "score[us]", "report"]
    with pytest.raises(UnknownTaskError, match="did you mean 'clean'"):
        sales["clan"]


def test_plan_is_a_dataframe_in_topological_order(sales: Pipeline) -> None:
    """``plan()`` has one row per task with parents, level, group and options."""
    sales.task("slow", load, timeout=30, retries=2, priority=-5, queue="heavy")
    plan = sales.plan()
    assert list(plan.columns) == [
        "task", "parents", "level", "group", "queue", "priority", "retries", "timeout"]
    row = plan.set_index("task").loc["report"]
    assert (row.parents, row.level, row.group, row.timeout) == (
        ["score[eu]", "score[us]"], 3, None, None)
    slow = plan.set_index("task").loc["slow"]
    assert (slow.queue, slow.priority, slow.retries, slow.timeout) == ("heavy", -5, 2, 30.0)
    assert plan.task.tolist()[:2] == ["extract", "slow"]


def test_text_view_lists_tasks_by_level(sales: Pipeline) -> None:
    """``str(p)`` lists the tasks level by level."""
    assert str(sales).splitlines() == [
        "pipeline sales: 5 tasks on 4 levels",
        "  level 0: extract",
        "  level 1: clean",
        "  level 2: score[eu], score[us]",
        "  level 3: report",
    ]
    assert repr(sales) == "Pipeline('sales', 5 tasks)"


def test_invalid_pipeline_still_displays_as_text() -> None:
    """A pipeline that does not build shows why instead of raising in Jupyter."""
    p = Pipeline("p").task("a", clean, after="missing")
    bundle = p._repr_mimebundle_()
    assert list(bundle) == ["text/plain"]
    assert "unknown task 'missing'" in bundle["text/plain"]


def test_mimebundle_has_svg_and_text(sales: Pipeline) -> None:
    """In Jupyter a pipeline shows an SVG drawing with the text listing as fallback."""
    bundle = sales._repr_mimebundle_()
    assert "<svg" in bundle["image/svg+xml"] and "score[eu]" in bundle["image/svg+xml"]
    assert bundle["text/plain"].startswith("pipeline sales")


def test_draw_accepts_drawing_options(sales: Pipeline) -> None:
    """``p.draw(focus=..., depth=...)`` draws the neighbourhood, titled with the pipeline."""
    drawing = sales.draw({"clean": "completed"}, focus="extract", depth=1)
    assert 'label="clean"' in drawing.source and 'label="report"' not in drawing.source
    assert repr(drawing).startswith("pipeline sales: 2 tasks")


def test_decorator_with_a_positional_name() -> None:
    """``@p.task("id")`` registers the function under that id."""
    p = Pipeline("p")

    @p.task("custom")
    def anything() -> int:
        return 1

    assert p.tasks == ("custom",) and anything() == 1
