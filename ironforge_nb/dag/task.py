"""`TaskSpec`: the plain, frozen record of one pipeline task, as `Pipeline.build()` attaches it.

A spec says what to call (``fn``: a callable, or ``"package.module:function"`` for the JSON
mode), which upstream results feed which parameter (``bindings``), which values come from the
run's ``params`` (``run_params``), and the scheduling options. It holds no behaviour beyond
`TaskSpec.arguments`, which applies the bindings, so the orchestrator and any other executor agree
on how a task is called. Standard library only.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeAlias

from ironforge_nb.dag._core import paused_gc
from ironforge_nb.errors import InvalidOptionError
from ironforge_nb.names import validate_name

__all__ = ["Gather", "MapItem", "TaskFn", "TaskSpec", "check_options", "finish_arguments",
           "fn_label", "paused_gc"]

TaskFn: TypeAlias = "Callable[..., Any] | str"

PRIORITY_RANGE = (-1000, 1000)
OPTION_NAMES = ("retries", "timeout", "queue", "priority", "group", "params", "allow_failure",
                "max_stalls", "cache", "cache_ttl", "version")
_FN_PATH = re.compile(r"[A-Za-z_][\w.]*:[A-Za-z_][\w.]*")


@dataclass(frozen=True)
class MapItem:
    """Where a task made by ``Pipeline.map`` sits in its fan-out.

    ``key`` is what appears in the task id (``score[eu]`` has key ``"eu"``), ``index`` its
    position in ``over``, ``item`` the value the task receives, ``keyed`` whether ``over`` was a
    dict (then ``item`` is the dict's value and ``dict_key`` the original key).
    """

    name: str
    key: str
    index: int
    item: Any = field(hash=False)
    keyed: bool = False
    dict_key: Any = field(default=None, hash=False)


@dataclass(frozen=True)
class Gather:
    """A downstream task's view of a whole map: its members in item order.

    The bound parameter receives ``[result of each member]``, or, when the map went over a
    dict, ``{original key: result}`` (``keys`` holds those original keys).
    """

    name: str
    members: tuple[str, ...]
    keys: tuple[Any, ...] | None = field(default=None, hash=False)

    def collect(self, results: Mapping[str, Any]) -> list[Any] | dict[Any, Any]:
        """Gather the members' results from ``results`` (task id -> value)."""
        values = [results[m] for m in self.members]
        if self.keys is None:
            return values
        return dict(zip(self.keys, values, strict=True))


@dataclass(frozen=True)
class TaskSpec:
    """One task: what to call, with which inputs, under which options (a plain record).

    ``after`` is the dependency list as written (it may name a whole map); ``parents`` the
    resolved task ids (equal to ``after`` until ``Pipeline.build()`` resolves it).
    ``bindings`` maps a parameter to the upstream task id or map name whose result it gets;
    ``item_param`` names the parameter that receives a map item; ``run_params`` and
    ``optional_params`` are the parameters looked up in the run's ``params`` (required ones,
    and ones with a default). ``params`` holds constant keyword arguments. ``cache`` overrides
    the run's cache setting for this task (None: follow it), ``cache_ttl`` limits how long its
    cached result is reused (seconds), ``version`` is part of its cache key (for import-path
    tasks, whose code is not hashed).
    """

    id: str
    fn: Callable[..., Any] | str = field(hash=False)
    after: tuple[str, ...] = ()
    parents: tuple[str, ...] = ()
    bindings: Mapping[str, str] = field(default_factory=dict, hash=False)
    item_param: str | None = None
    run_params: tuple[str, ...] = ()
    optional_params: tuple[str, ...] = ()
    positional: tuple[str, ...] = ()
    retries: int = 0
    timeout: float | None = None
    queue: str = "default"
    priority: int = 0
    group: str | None = None
    params: Mapping[str, Any] = field(default_factory=dict, hash=False)
    allow_failure: bool = False
    max_stalls: int | None = None  # None: the run's (submit's max_stalls), else the engine's
    map: MapItem | None = None
    gathers: tuple[Gather, ...] = ()
    cache: bool | None = None
    cache_ttl: float | None = None
    version: str | None = None

    def evolve(self, **changes: Any) -> TaskSpec:
        """A copy with ``changes``, like `dataclasses.replace` but without running
        ``__init__`` again: the values are already validated, and ``Pipeline.map`` copies one
        template per member (a frozen dataclass's ``__init__`` sets each of its 19 fields
        through ``object.__setattr__``, which dominated building a 10k-task map). ``changes``
        must name fields of `TaskSpec`."""
        fields = self.__dict__.copy()  # the instance dict: frozen only via __setattr__
        fields.update(changes)
        new = object.__new__(TaskSpec)
        object.__setattr__(new, "__dict__", fields)
        return new

    @property
    def options(self) -> dict[str, Any]:
        """The scheduling options as a plain dict (what ``plan()`` and the orchestrator read)."""
        return {name: getattr(self, name) for name in OPTION_NAMES}

    def arguments(
        self, results: Mapping[str, Any], run_params: Mapping[str, Any] | None = None
    ) -> tuple[list[Any], dict[str, Any]]:
        """The ``(args, kwargs)`` to call ``fn`` with, given upstream results and run params.

        Raises `InvalidOptionError` naming the run param when a required one is missing.
        """
        params = run_params or {}
        gathers = {g.name: g for g in self.gathers}
        values: dict[str, Any] = {}
        for param, source in self.bindings.items():
            gather = gathers.get(source)
            values[param] = gather.collect(results) if gather else results[source]
        if self.item_param is not None and self.map is not None:
            values[self.item_param] = self.map.item

        def missing(name: str) -> Exception:
            return InvalidOptionError("params", sorted(params), f"a value for {name!r} "
                                      f"(task {self.id!r})")

        return finish_arguments(values, self.params, self.run_params, self.optional_params,
                                self.positional, params, missing)


def finish_arguments(values: dict[str, Any], constants: Mapping[str, Any],
                     required: Sequence[str], optional: Sequence[str],
                     positional: Sequence[str], run_params: Mapping[str, Any],
                     missing: Callable[[str], Exception]) -> tuple[list[Any], dict[str, Any]]:
    """``(args, kwargs)`` of a call: ``values`` (upstream results, map item) plus the
    constants and run params, with the leading ``positional`` names taken out as args.

    The one binding rule, shared by `TaskSpec.arguments` (in the notebook) and the
    orchestrator's `TaskPayload.arguments` (on a worker); ``missing(name)`` builds the error
    raised for a required run param that ``run_params`` lacks.
    """
    values.update(constants)
    for name in required:
        if name not in run_params:
            raise missing(name)
        values[name] = run_params[name]
    values.update((n, run_params[n]) for n in optional if n in run_params)
    args = []
    for name in positional:
        if name not in values:
            break
        args.append(values.pop(name))
    return args, values


def fn_label(fn: Callable[..., Any] | str) -> str:
    """A short human name for a task function (``module.qualname`` or the path string)."""
    if isinstance(fn, str):
        return fn
    module = getattr(fn, "__module__", None) or ""
    name = getattr(fn, "__qualname__", None) or getattr(fn, "__name__", None) or repr(fn)
    return f"{module}.{name}" if module and module != "__main__" else str(name)


def check_fn(fn: object) -> Callable[..., Any] | str:
    """Accept a callable or a ``"package.module:function"`` path, else `InvalidOptionError`."""
    if callable(fn):
        return fn
    if isinstance(fn, str) and _FN_PATH.fullmatch(fn):
        return fn
    raise InvalidOptionError("fn", fn, "a callable or a 'package.module:function' path")


def check_options(options: Mapping[str, Any]) -> dict[str, Any]:
    """Validate task options and return them normalized; unknown names are rejected."""
    out: dict[str, Any] = {}
    for name, value in options.items():
        checker = _CHECKERS.get(name)
        if checker is None:
            raise InvalidOptionError(name, value, f"a known task option: {', '.join(OPTION_NAMES)}")
        out[name] = checker(value)
    return out


def _retries(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise InvalidOptionError("retries", value, "an int >= 0")
    return value


def _timeout(value: Any) -> float | None:
    if value is None:
        return None
    ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    if not ok or not math.isfinite(value) or value <= 0:
        raise InvalidOptionError("timeout", value, "a number of seconds > 0, or None")
    return float(value)


def _priority(value: Any) -> int:
    low, high = PRIORITY_RANGE
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise InvalidOptionError("priority", value, f"an int from {low} to {high}")
    return value


def _group(value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not 1 <= len(value) <= 128:
        raise InvalidOptionError("group", value, "a str of 1 to 128 characters, or None")
    return value


def _params(value: Any) -> dict[str, Any] | tuple[str, ...]:
    """A dict of constant keyword arguments, or a list of run-param names the task asks for."""
    if value is None:
        return {}
    if isinstance(value, Mapping):
        if not all(isinstance(k, str) and k.isidentifier() for k in value):
            raise InvalidOptionError("params", value, "a dict whose keys are parameter names")
        return dict(value)
    if isinstance(value, (list, tuple)) and all(
        isinstance(k, str) and k.isidentifier() for k in value
    ):
        return tuple(value)
    raise InvalidOptionError(
        "params", value, "a dict of constant arguments or a list of run-param names"
    )


def _max_stalls(value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise InvalidOptionError("max_stalls", value, "an int >= 0, or None for the default")
    return value


def _allow_failure(value: Any) -> bool:
    if not isinstance(value, bool):
        raise InvalidOptionError("allow_failure", value, "True or False")
    return value


def _cache(value: Any) -> bool | None:
    if value is not None and not isinstance(value, bool):
        raise InvalidOptionError("cache", value, "True, False, or None (follow the run)")
    return value


def _cache_ttl(value: Any) -> float | None:
    if value is None:
        return None
    ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    if not ok or not math.isfinite(value) or value < 0.001:
        raise InvalidOptionError("cache_ttl", value, "a number of seconds >= 0.001, or None")
    return float(value)


def _version(value: Any) -> str | None:
    if value is None or (isinstance(value, str) and 1 <= len(value) <= 200):
        return value
    raise InvalidOptionError("version", value, "a str of 1 to 200 characters, or None")


_CHECKERS: dict[str, Callable[[Any], Any]] = {
    "retries": _retries,
    "timeout": _timeout,
    "queue": lambda value: validate_name(value, "queue"),
    "priority": _priority,
    "group": _group,
    "params": _params,
    "allow_failure": _allow_failure,
    "max_stalls": _max_stalls,
    "cache": _cache,
    "cache_ttl": _cache_ttl,
    "version": _version,
}
