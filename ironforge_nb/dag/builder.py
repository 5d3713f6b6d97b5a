"""`Pipeline`: the fluent builder (method chaining, a decorator, static fan-out: `fanout.py`).

>>> p = Pipeline("sales")
>>> _ = p.task("extract", lambda: [3, 1, 2]).then("clean", sorted)
>>> p.build().topological_order()
['extract', 'clean']

Adding tasks checks names and options at once; ``build()`` validates the whole graph once
(unknown dependencies with suggestions, self-edges, cycles) and returns an immutable `DAG` with
one `TaskSpec` attached per task. How a task's parameters are fed is the rule that
`bind_parameters` (`binding.py`) applies:

* a parameter named after an upstream task (or map) receives its result; with the decorator
  that is how edges are declared;
* upstream tasks listed in ``after`` that no parameter names feed the leading parameters
  without a default, in order (``.task("clean", clean, after="extract")`` with
  ``def clean(df)`` passes extract's result as ``df``); extra ones are order-only;
* a map task receives its item as ``item``, else as the first parameter left unbound;
* a parameter named in ``params={...}`` gets that constant; any other parameter is a run
  param, taken from ``submit(params=...)``.

Standard library only (``plan()`` imports pandas when called).
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import replace
from typing import TYPE_CHECKING, Any, TypedDict, TypeVar, cast, overload

from ironforge_nb.dag.binding import bind_parameters
from ironforge_nb.dag.fanout import MapGroup, fan_out
from ironforge_nb.dag.graph import DAG
from ironforge_nb.dag.task import (
    Gather,
    TaskFn,
    TaskSpec,
    check_fn,
    check_options,
    paused_gc,
)
from ironforge_nb.errors import (
    DuplicateTaskError,
    InvalidOptionError,
    UnknownTaskError,
    ValidationError,
)
from ironforge_nb.names import validate_name

if TYPE_CHECKING:
    import pandas as pd
    from typing_extensions import Unpack

    from ironforge_nb.orchestrator.run import Run
    from ironforge_nb.queue.config import RedisConfig
    from ironforge_nb.render.output import Rendering

__all__ = ["Pipeline", "TaskOptions"]

F = TypeVar("F", bound=Callable[..., Any])
After = str | Iterable[str] | None


class TaskOptions(TypedDict, total=False):
    """Options accepted by `Pipeline.task`, `Pipeline.then` and `Pipeline.map`."""

    retries: int  # extra attempts after a failure (>= 0)
    timeout: float | None  # seconds per attempt (> 0), None for no limit
    queue: str  # queue name the task is sent to
    priority: int  # -1000..1000, higher first
    group: str | None  # display group (clusters, collapsing)
    params: Mapping[str, Any] | list[str] | tuple[str, ...]  # constants, or run-param names
    allow_failure: bool  # a failure does not skip the descendants
    max_stalls: int | None  # times it may be queued again after its worker died under it
    cache: bool | None  # reuse a result of an earlier run (None: as the run says)
    cache_ttl: float | None  # seconds a cached result may be reused (None: result_ttl)
    version: str | None  # part of the cache key (import-path tasks: their code is not hashed)


_BLANK = TaskSpec(id="blank", fn="blank:blank")  # every default of a spec (see Pipeline._spec)


class _Known:
    """The names a parameter may refer to (tasks and maps defined so far), probed without
    copying either dict (a ChainMap's ``in`` runs a generator per probe)."""

    __slots__ = ("_maps", "_specs")

    def __init__(self, specs: Mapping[str, Any], maps: Mapping[str, Any]) -> None:
        self._specs = specs
        self._maps = maps

    def __contains__(self, name: object) -> bool:
        return name in self._specs or name in self._maps


class Pipeline:
    """A named set of tasks and their dependencies, built step by step.

    Chain ``task``/``then``/``map`` calls, or decorate functions with ``@p.task``; ``build()``
    returns the validated, immutable `DAG` and ``plan()`` a pandas table of it. A pipeline
    displays itself as a graph in Jupyter and as a list of levels in a console.
    ``cache=True`` makes every submit reuse the results of earlier runs whose code and inputs
    are unchanged (a task's ``cache=False`` opts it out; ``submit(cache=...)`` overrides).
    """

    def __init__(self, name: str, *, cache: bool = False) -> None:
        self.name = validate_name(name, "pipeline")
        if not isinstance(cache, bool):
            raise InvalidOptionError("cache", cache, "True or False")
        self.cache = cache  # submits reuse results of earlier runs (see orchestrator.cache)
        self._specs: dict[str, TaskSpec] = {}
        self._maps: dict[str, MapGroup] = {}
        self._known = _Known(self._specs, self._maps)  # a view: no copy per task
        self._last: str | None = None

    # ------------------------------------------------------------------ adding tasks

    @overload
    def task(
        self, task_id: str, fn: TaskFn, /, *, after: After = None, **options: Unpack[TaskOptions]
    ) -> Pipeline: ...

    @overload
    def task(self, fn: F, /) -> F: ...

    @overload
    def task(
        self,
        task_id: str | None = None,
        /,
        *,
        name: str | None = None,
        after: After = None,
        **options: Unpack[TaskOptions],
    ) -> Callable[[F], F]: ...

    def task(
        self,
        first: Any = None,
        fn: Any = None,
        /,
        *,
        name: str | None = None,
        after: After = None,
        **options: Any,
    ) -> Any:
        """Add a task: ``p.task("id", fn, after=...)`` chains, ``@p.task`` decorates.

        The decorator forms (``@p.task``, ``@p.task(retries=3)``, ``@p.task("id")``) name the
        task after the function unless given ``name``, and return the function unchanged.
        """
        if callable(first) and fn is None:
            self._add(validate_name(name or first.__name__, "task"), first, after, options)
            return first
        if first is not None and name is not None:
            raise InvalidOptionError("name", name, "either a positional task id or name=, not both")
        task_id = first if first is not None else name
        if fn is not None:
            if task_id is None:
                raise InvalidOptionError("task_id", None, "a task name before the function")
            self._add(validate_name(task_id, "task"), fn, after, options)
            return self
        check_options(options)  # fail at the decorator line, not at the def

        def decorate(func: F) -> F:
            self._add(validate_name(task_id or func.__name__, "task"), func, after, options)
            return func

        return decorate

    def then(self, task_id: str, fn: TaskFn, **options: Unpack[TaskOptions]) -> Pipeline:
        """Add a task after the previously added one (after a whole map, if that came last)."""
        if self._last is None:
            raise InvalidOptionError("then", task_id, "a task added before: start with .task()")
        return self.task(task_id, fn, after=self._last, **options)

    def map(
        self,
        name: str,
        fn: TaskFn,
        *,
        over: Iterable[Any] | Mapping[Any, Any],
        after: After = None,
        **options: Unpack[TaskOptions],
    ) -> Pipeline:
        """Fan out: one task per item of ``over``, with ids ``name[key]``.

        Keys are the items themselves for a list of strings, or the keys of a dict, when they
        are all valid names (at most 64 characters); otherwise positions ``0, 1, ...``. A task
        depending on ``name`` depends on every member and receives their results as a list in
        item order (a dict keyed like ``over`` when ``over`` is a dict). The members' group
        defaults to ``name``.
        """
        name = validate_name(name, "task")
        self._check_new(name)
        fan = fan_out(name, over)
        options = {"group": name, **options}
        # every member has the same function, options and dependencies: validate and bind
        # once, then copy the template per member
        template = self._spec(fan.members[0], fn, after, options, mapped=True)
        self._specs.update(fan.specs(template))
        self._maps[name] = fan.group
        self._last = name
        return self

    def _add(self, task_id: str, fn: Any, after: After, options: Mapping[str, Any]) -> None:
        """Validate and record one task spec (dependencies are resolved at build time)."""
        self._check_new(task_id)
        self._specs[task_id] = self._spec(task_id, fn, after, options, mapped=False)
        self._last = task_id

    def _spec(self, task_id: str, fn: Any, after: After, options: Mapping[str, Any],
              mapped: bool) -> TaskSpec:
        """The validated spec of one task (of a map member, without its `MapItem`)."""
        fn = check_fn(fn)
        opts = check_options(options)
        raw = opts.pop("params", {})
        constants = raw if isinstance(raw, dict) else {}
        asked = raw if isinstance(raw, tuple) else ()
        declared = _after_list(after)
        bound = bind_parameters(task_id, fn, declared, self._known, constants, asked, mapped)
        implicit = bound.implicit_after
        deps = tuple(dict.fromkeys([*declared, *implicit]) if implicit else declared)
        # every value is validated above: fill the defaults' template instead of running the
        # frozen dataclass's __init__ (18 object.__setattr__ calls per task)
        return _BLANK.evolve(
            id=task_id, fn=fn, after=deps, parents=deps, bindings=bound.bindings,
            item_param=bound.item_param, run_params=bound.run_params,
            optional_params=bound.optional_params, positional=bound.positional,
            params=constants, **opts,
        )

    def _check_new(self, task_id: str) -> None:
        if task_id in self._specs or task_id in self._maps:
            raise DuplicateTaskError(task_id)

    # ------------------------------------------------------------------ building

    def build(self) -> DAG[str]:
        """Validate the whole graph once and return it as an immutable `DAG` of `TaskSpec`.

        Raises `UnknownTaskError` (with close matches), `SelfDependencyError` or `CycleError`.
        The result does not change when tasks are added to this pipeline later.
        """
        with paused_gc():
            # the members of a map share their template's after/bindings/gathers/parents
            # objects: resolve each distinct combination once (the specs are alive here, so
            # their ids are stable) and give every member the same resolved tuples
            memo: dict[tuple[int, int, int, int], tuple[tuple[str, ...], tuple[Gather, ...]]]
            memo = {}
            specs: dict[str, TaskSpec] = {}
            for task_id, spec in self._specs.items():
                key = (id(spec.after), id(spec.bindings), id(spec.gathers), id(spec.parents))
                found = memo.get(key)
                if found is None:
                    resolved = self._resolve(spec)
                    found = memo[key] = (resolved.parents, resolved.gathers)
                    specs[task_id] = resolved
                elif found[0] is spec.parents and found[1] is spec.gathers:
                    specs[task_id] = spec
                else:
                    specs[task_id] = spec.evolve(parents=found[0], gathers=found[1])
            parents = {task_id: spec.parents for task_id, spec in specs.items()}
            return DAG.from_parents(parents, data=specs)

    def _resolve(self, spec: TaskSpec, strict: bool = True) -> TaskSpec:
        """Expand map names in ``after`` into member ids and attach the gathers."""
        parents: list[str] = []
        gathers: list[Gather] = []
        for dep in spec.after:
            group = self._maps.get(dep)
            if group is not None:
                parents.extend(group.members)
                if dep in spec.bindings.values():
                    gathers.append(Gather(dep, group.members, group.keys))
            elif dep in self._specs or not strict:
                parents.append(dep)
            else:
                raise UnknownTaskError(spec.id, dep, self._suggest(dep))
        resolved = tuple(dict.fromkeys(parents))
        if not gathers and not spec.gathers and resolved == spec.parents:
            return spec  # nothing to expand: skip the copy (10k-task pipelines build fast)
        return replace(spec, parents=resolved, gathers=tuple(gathers))

    def _suggest(self, missing: str) -> list[str]:
        return difflib.get_close_matches(missing, [*self._maps, *self._specs], n=3)

    def plan(self) -> pd.DataFrame:
        """One row per task in topological order: its parents, level, group and options."""
        import pandas as pd

        dag = self.build()
        levels = dag.levels()
        specs = [cast(TaskSpec, dag.data(t)) for t in dag.topological_order()]
        columns: dict[str, Any] = {
            "task": [s.id for s in specs],
            "parents": [list(s.parents) for s in specs],
            "level": [levels[s.id] for s in specs],
        }
        for name in ("group", "queue", "priority", "retries", "timeout"):
            # object dtype keeps "no group"/"no timeout" as None instead of NaN
            dtype = object if name in ("group", "timeout") else None
            columns[name] = pd.Series([getattr(s, name) for s in specs], dtype=dtype)
        frame: pd.DataFrame = pd.DataFrame(columns)
        return frame

    def submit(self, params: Mapping[str, Any] | None = None, *, run_id: str | None = None,
               config: RedisConfig | None = None, queue: str | None = None,
               **options: Any) -> Run:
        """Build and run this pipeline on the queue engine; returns the `Run` at once.

        See `ironforge_nb.orchestrator.submit` (imported here, so the DAG layer stays Redis-free).
        """
        from ironforge_nb.orchestrator.submit import submit

        return submit(self, params, run_id=run_id, config=config, queue=queue, **options)

    # ------------------------------------------------------------------ container protocol

    @property
    def tasks(self) -> tuple[str, ...]:
        """Every task id, in the order tasks were added."""
        return tuple(self._specs)

    @property
    def maps(self) -> dict[str, tuple[str, ...]]:
        """Each map name with its member task ids, in item order."""
        return {name: group.members for name, group in self._maps.items()}

    def __len__(self) -> int:
        return len(self._specs)

    def __iter__(self) -> Iterator[str]:
        return iter(tuple(self._specs))

    def __contains__(self, task_id: object) -> bool:
        return task_id in self._specs

    def __getitem__(self, task_id: str) -> TaskSpec:
        """The spec of one task, its map-name dependencies expanded as far as known now."""
        spec = self._specs.get(task_id)
        if spec is None:
            raise UnknownTaskError(None, task_id, self._suggest(task_id))
        return self._resolve(spec, strict=False)

    # ------------------------------------------------------------------ display

    def __repr__(self) -> str:
        n = len(self._specs)
        return f"Pipeline({self.name!r}, {n} task{'s' * (n != 1)})"

    def __str__(self) -> str:
        return self.describe()

    def describe(self) -> str:
        """Plain text: the pipeline's tasks level by level (or why it does not build)."""
        from ironforge_nb.render.text import text_view

        try:
            dag = self.build()
        except ValidationError as exc:
            return f"{self!r}: does not build: {exc}"
        return text_view(dag, title=f"pipeline {self.name}")

    def draw(self, statuses: Mapping[str, object] | None = None, **opts: Any) -> Rendering:
        """A drawing with options, e.g. ``p.draw(focus="clean", depth=2)`` or ``collapse=...``.

        Same options as `ironforge_nb.render.to_digraph`; displays itself in Jupyter and has
        ``.source``, ``.svg()`` and ``.save(path)``.
        """
        from ironforge_nb.render import draw

        return draw(self, statuses, **opts)

    def _repr_mimebundle_(
        self, include: Iterable[str] | None = None, exclude: Iterable[str] | None = None
    ) -> dict[str, Any]:
        """Jupyter display: the graph as SVG plus the text listing (text only if invalid)."""
        try:
            dag = self.build()
        except ValidationError as exc:
            return {"text/plain": f"{self!r}: does not build: {exc}"}
        from ironforge_nb.render import mimebundle

        bundle: dict[str, Any] = mimebundle(dag, title=f"pipeline {self.name}")
        wanted = set(bundle) if include is None else set(include)
        wanted -= set(exclude or ())
        return {k: v for k, v in bundle.items() if k in wanted}


def _after_list(after: After) -> list[str]:
    """Normalize ``after`` (a name, names, or None) to a list of names."""
    if after is None:
        return []
    if isinstance(after, str):
        names = [after]
    elif isinstance(after, Iterable):
        names = list(after)
    else:
        raise InvalidOptionError("after", after, "a task name or a list of task names")
    for dep in names:
        if not isinstance(dep, str):
            raise InvalidOptionError("after", after, "a task name or a list of task names")
    return list(dict.fromkeys(names))

