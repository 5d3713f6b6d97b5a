"""Static fan-out for `Pipeline.map`: one task per item of ``over``, with ids ``name[key]``.

Keys are the items themselves for a list of strings, or the keys of a dict, when they are all
valid names (at most `ITEM_KEY_MAX` characters); otherwise positions ``0, 1, ...``. Every
member has the same function, options and dependencies, so the builder validates and binds one
template spec and `FanOut.specs` copies it per member. Standard library only.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from ironforge_nb.dag.task import MapItem, TaskSpec, paused_gc
from ironforge_nb.errors import InvalidOptionError, ValidationError
from ironforge_nb.names import validate_name, validate_task_id

__all__ = ["ITEM_KEY_MAX", "FanOut", "MapGroup", "fan_out"]

ITEM_KEY_MAX = 64  # longest item or dict key used as is in member ids


@dataclass(frozen=True)
class MapGroup:
    """One ``map`` call: its member ids in item order (and the dict keys if over a dict)."""

    name: str
    members: tuple[str, ...]
    keys: tuple[Any, ...] | None


@dataclass(frozen=True)
class FanOut:
    """The members of one map, worked out from ``over`` before any spec is made."""

    name: str
    members: tuple[str, ...]  # validated ids ``name[key]``, in item order
    keys: list[str]  # the ``key`` of each member id
    items: list[Any]  # the value each member receives
    dict_keys: list[Any] | None  # the original keys, when ``over`` was a dict

    @property
    def group(self) -> MapGroup:
        """What a downstream task depending on the map name needs to know of it."""
        keys = None if self.dict_keys is None else tuple(self.dict_keys)
        return MapGroup(self.name, self.members, keys)

    def specs(self, template: TaskSpec) -> dict[str, TaskSpec]:
        """One spec per member, in item order: ``template`` with the member's id and item.

        Member ids can neither clash (the map name is new, the keys distinct) nor name a
        parameter, so the binding made for the template holds for every member.
        """
        keyed = self.dict_keys is not None
        originals = self.dict_keys if self.dict_keys is not None else [None] * len(self.members)
        specs: dict[str, TaskSpec] = {}
        # the fields are known valid: fill each MapItem's instance dict directly (a frozen
        # dataclass's __init__ sets its 6 fields through object.__setattr__, a third of a
        # 100k-member map's build), copy the template's instance dict as `TaskSpec.evolve`
        # does (inlined: a call with keywords per member cost as much as the copy), and keep
        # the cyclic GC from rescanning the 200k new objects (it did so several times per 100k
        # members)
        new, set_attr, item_type, spec_type = object.__new__, object.__setattr__, MapItem, TaskSpec
        name, keys, items, fields = self.name, self.keys, self.items, template.__dict__
        with paused_gc():
            for i, member in enumerate(self.members):
                info = new(item_type)
                d = info.__dict__
                d["name"], d["key"], d["index"], d["item"] = name, keys[i], i, items[i]
                d["keyed"], d["dict_key"] = keyed, originals[i]
                copied = fields.copy()
                copied["id"], copied["map"] = member, info
                spec = new(spec_type)
                set_attr(spec, "__dict__", copied)
                specs[member] = spec
        return specs


def fan_out(name: str, over: Any) -> FanOut:
    """The members of map ``name`` over ``over``; `InvalidOptionError` if ``over`` is not an
    ordered, non-empty collection (a list, tuple, range or dict)."""
    items, dict_keys = _materialize(over)
    keys = _item_keys(items if dict_keys is None else dict_keys)
    # a valid name plus a key that is a valid name of at most ITEM_KEY_MAX characters (or a
    # position) is a valid task id: checked once, not per member
    validate_task_id(f"{validate_name(name, 'task')}[{'0' * ITEM_KEY_MAX}]")
    members = tuple([f"{name}[{key}]" for key in keys])
    return FanOut(name, members, keys, items, dict_keys)


def _materialize(over: Any) -> tuple[list[Any], list[Any] | None]:
    """The items of ``over`` in order, plus the dict keys when ``over`` is a mapping."""
    if isinstance(over, Mapping):
        keys = list(over)
        items = [over[k] for k in keys]
    elif isinstance(over, (set, frozenset, str, bytes)):
        raise InvalidOptionError("over", over, "a list, tuple, range or dict (ordered items)")
    elif isinstance(over, Iterable):
        keys, items = None, list(over)
    else:
        raise InvalidOptionError("over", over, "a list, tuple, range or dict")
    if not items:
        raise InvalidOptionError("over", over, "at least one item")
    return items, keys


def _item_keys(candidates: list[Any]) -> list[str]:
    """Use the candidates as keys if all are distinct valid short names, else positions."""
    strings = [c for c in candidates if isinstance(c, str)]
    if len(strings) == len(candidates) and len(set(strings)) == len(strings):
        try:
            for key in strings:
                validate_name(key, "map item")
        except ValidationError:
            pass
        else:
            if all(len(key) <= ITEM_KEY_MAX for key in strings):
                return strings
    return [str(i) for i in range(len(candidates))]
