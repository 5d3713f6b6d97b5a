"""`bind_parameters`: which parameter of a task function receives what.

The rule is documented on `Pipeline` (module `builder`) and applied here once per task when it
is added: upstream results by parameter name, then in order; the map item; constants; run
params for the rest. The outcome is a `Binding` of plain strings that `TaskSpec` stores and
`TaskSpec.arguments` applies. This runs once per task of 10k-task pipelines, hence plain loops
and a one-entry signature cache. Standard library only.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Container, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

from ironforge_nb.dag.task import fn_label
from ironforge_nb.errors import InvalidOptionError

__all__ = ["Binding", "bind_parameters"]


class Binding(NamedTuple):
    """How one function's parameters are fed (the result of `bind_parameters`)."""

    bindings: dict[str, str]
    implicit_after: list[str]
    item_param: str | None
    run_params: tuple[str, ...]
    optional_params: tuple[str, ...]
    positional: tuple[str, ...]


def bind_parameters(
    task_id: str,
    fn: Callable[..., Any] | str,
    after: Sequence[str],
    known: Container[str],
    constants: Mapping[str, Any],
    asked: Sequence[str],
    mapped: bool,
) -> Binding:
    """Decide which parameter of ``fn`` receives what (the rule documented on `Pipeline`).

    1. a parameter named after an upstream task or map (listed in ``after`` or already
       defined, ``known``) receives its result, and adds the edge;
    2. on a map task, a parameter named ``item`` receives the item;
    3. a parameter named in the ``params`` dict receives that constant;
    4. the upstream results of ``after`` that no parameter names go, in order, to the next
       parameters without a default (on a map task, leaving one for the item);
    5. on a map task, the item goes to the first parameter still unbound;
    6. every other parameter is a run param, looked up in the run's ``params``.
    A function given by path cannot be inspected: each upstream result goes to the keyword
    named after its task, the item to ``item``, and run params are the ``params`` list.
    """
    if isinstance(fn, str):
        run = tuple(n for n in asked if n not in constants)
        return Binding({a: a for a in after}, [], "item" if mapped else None, run, (), ())
    sig = _signature(fn)
    if sig is None:
        return Binding({}, [], None, tuple(asked), (), ())
    bindings = _by_name(task_id, sig.names, after, known)
    implicit = [n for n in bindings if n not in after] if bindings else []
    item = "item" if mapped and "item" in sig.names and "item" not in bindings else None
    free = _by_position(sig, bindings, after, constants, item, mapped)
    if mapped and item is None:
        item = next((n for n in free if n not in bindings), None)
        if item is None:
            raise InvalidOptionError(
                "fn", fn_label(fn), f"a function with a parameter for the item of map task "
                f"{task_id!r} (name it 'item')"
            )
    run, optional = _run_params(sig, bindings, constants, item, asked)
    return Binding(bindings, implicit, item, run, optional, sig.positional)


def _by_name(task_id: str, names: Sequence[str], after: Sequence[str],
             known: Container[str]) -> dict[str, str]:
    """Rule 1: parameters named after an upstream task or map, bound to it."""
    bindings: dict[str, str] = {}
    for n in names:  # `known` is only probed, never copied: O(1) per task, not O(n)
        if n != task_id and (n in after or n in known):
            bindings[n] = n
    return bindings


def _by_position(sig: _Signature, bindings: dict[str, str], after: Sequence[str],
                 constants: Mapping[str, Any], item: str | None, mapped: bool) -> list[str]:
    """Rule 4: bind the unnamed upstream results of ``after`` to the next free parameters
    without a default (adding to ``bindings``); returns those free parameters."""
    free = []
    for n in sig.names:
        if n in sig.required and n not in bindings and n not in constants and n != item:
            free.append(n)
    if free and after:
        pending = [a for a in after if a not in bindings]  # so far bindings are name -> name
        room = len(free) - (1 if mapped and item is None else 0)
        for param, source in zip(free, pending[: max(room, 0)], strict=False):
            bindings[param] = source
    return free


def _run_params(sig: _Signature, bindings: Mapping[str, str], constants: Mapping[str, Any],
                item: str | None, asked: Sequence[str]
                ) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Rule 6: the parameters left, as (required run params, optional ones); the names in
    ``asked`` (the ``params`` list) are required run params too."""
    needed: list[str] = []
    optional: list[str] = []
    for n in sig.names:
        if n not in bindings and n not in constants and n != item:
            (needed if n in sig.required else optional).append(n)
    if asked:
        run = tuple(dict.fromkeys(needed + list(asked)))
        return run, tuple(n for n in optional if n not in run)
    return tuple(needed), tuple(optional)


@dataclass(frozen=True)
class _Signature:
    """What binding needs of a function's signature, as plain strings (reading the
    properties of `inspect.Parameter` cost more than the binding itself, per task)."""

    names: tuple[str, ...]  # named parameters in order (``*args``/``**kwargs`` left out)
    required: frozenset[str]  # those without a default
    positional: tuple[str, ...]  # the positional-only ones


def _signature(fn: Callable[..., Any]) -> _Signature | None:
    """The named parameters of ``fn``; None if they cannot be inspected.

    Cached for the last function seen: pipelines often add many tasks of one function.
    """
    if _last_signature and _last_signature[0] is fn:
        cached: _Signature | None = _last_signature[1]
        return cached
    params = _inspect_signature(fn)
    sig = None if params is None else _Signature(
        tuple(p.name for p in params),
        frozenset(p.name for p in params if p.default is p.empty),
        tuple(p.name for p in params if p.kind is p.POSITIONAL_ONLY),
    )
    _last_signature[:] = [fn, sig]
    return sig


_last_signature: list[Any] = []


def _inspect_signature(fn: Callable[..., Any]) -> list[inspect.Parameter] | None:
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        return None
    skip = (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)
    return [p for p in sig.parameters.values() if p.kind not in skip]

