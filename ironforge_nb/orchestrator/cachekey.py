"""Cache keys of a run's tasks: what a task computes, as a hash (computed at submit, in the
notebook, where the source of the functions exists).

``key = sha256(format, pipeline, task id, code fingerprint, version, map item, constants, the
run params the task reads, its bindings as (parameter -> parent's key), Python major.minor)``.
Parents enter by their *keys*, not their values (a Merkle chain: cheap for 100 MB frames, and
a change upstream changes every key below it). A parent that is not cached puts the run id in
its key, so its descendants run again too.

Code fingerprint: the function's source, parsed, docstrings dropped and dumped without line
numbers (so moving a cell or editing a comment or docstring changes nothing), plus the values
of its closure cells and, recursively, the source of the functions of the same module it calls
by name and the values of the simple constants it reads. A function without source (built
with exec) falls back to its code objects (bytecode, constants, names), never to cloudpickle
bytes, which embed the cell's temp file name and change from kernel to kernel. An import path
(JSON mode) is keyed by the path plus the task's ``version=``.

Values (constants, items, run params): canonical JSON when plain; pandas objects by
``hash_pandas_object`` plus their columns and dtypes; numpy arrays by dtype, shape and bytes;
anything else by its pickle, accepted only if pickling it twice gives the same bytes. A value
none of these can hash is refused with `InvalidOptionError` naming the task and the parameter.
"""

from __future__ import annotations

import ast
import hashlib
import inspect
import json
import sys
import textwrap
import types
from collections.abc import Callable, Mapping
from typing import Any

from ironforge_nb.dag.task import TaskSpec
from ironforge_nb.errors import InvalidOptionError

__all__ = ["FORMAT", "KeyMaker", "code_fingerprint", "value_digest"]

FORMAT = "ifn-cache-1"
_PY = f"{sys.version_info.major}.{sys.version_info.minor}"
_SIMPLE = (int, float, str, bytes, bool, type(None))


def code_fingerprint(fn: Callable[..., Any] | str, version: str | None = None) -> str:
    """The hash of what ``fn`` computes (see the module docstring)."""
    h = hashlib.sha256()
    if isinstance(fn, str):
        h.update(f"path\0{fn}\0{version or ''}".encode())
        return h.hexdigest()
    h.update(f"version\0{version or ''}\0".encode())
    _feed_function(h, fn, set())
    return h.hexdigest()


def _feed_function(h: Any, fn: Any, seen: set[int]) -> None:
    """Add ``fn``'s code, closure and referenced same-module helpers to ``h``."""
    if id(fn) in seen:
        return
    seen.add(id(fn))
    target = getattr(fn, "__func__", fn)  # bound methods
    code = getattr(target, "__code__", None)
    h.update(_source_text(target, code).encode())
    if code is None:
        return
    for cell in getattr(target, "__closure__", None) or ():
        try:
            h.update(b"cell\0" + _cell_digest(cell.cell_contents, h, seen).encode())
        except ValueError:  # an empty cell (a name assigned later)
            h.update(b"cell\0empty")
    module = getattr(target, "__module__", None)
    glb = getattr(target, "__globals__", {})
    for name in sorted(_global_names(code)):
        value = glb.get(name)
        if isinstance(value, types.FunctionType) and value.__module__ == module:
            h.update(f"helper\0{name}\0".encode())
            _feed_function(h, value, seen)
        elif isinstance(value, _SIMPLE):
            h.update(f"const\0{name}\0{value!r}\0".encode())


def _cell_digest(value: Any, h: Any, seen: set[int]) -> str:
    if isinstance(value, types.FunctionType):
        _feed_function(h, value, seen)
        return "fn"
    try:
        return value_digest(value)
    except _Unhashable:
        return f"type:{type(value).__module__}.{type(value).__qualname__}"


def _source_text(fn: Any, code: types.CodeType | None) -> str:
    """Normalized source (AST without docstrings), else a walk of the code objects."""
    try:
        source = textwrap.dedent(inspect.getsource(fn))
        tree = ast.parse(source)
    except (OSError, TypeError, SyntaxError, IndentationError):
        if code is None:
            return f"object\0{type(fn).__module__}.{type(fn).__qualname__}"
        return "code\0" + _PY + "\0" + _code_text(code)
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if (isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef | ast.Module)
                and body and isinstance(body[0], ast.Expr)
                and isinstance(body[0].value, ast.Constant)
                and isinstance(body[0].value.value, str)):
            node.body = body[1:] or [ast.Pass()]
    return "src\0" + ast.dump(tree, annotate_fields=False, include_attributes=False)


def _code_text(code: types.CodeType) -> str:
    parts = [code.co_code.hex(), ",".join(code.co_names), ",".join(code.co_varnames)]
    for const in code.co_consts:
        parts.append(_code_text(const) if isinstance(const, types.CodeType) else repr(const))
    return "|".join(parts)


def _global_names(code: types.CodeType) -> set[str]:
    names = set(code.co_names)
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            names |= _global_names(const)
    return names


class _Unhashable(Exception):
    """A value none of the hashing methods accepts."""


def value_digest(value: Any) -> str:
    """A stable hash of a value (see the module docstring); `_Unhashable` when none fits."""
    h = hashlib.sha256()
    try:
        text = json.dumps(value, sort_keys=True, separators=(",", ":"), allow_nan=True)
    except (TypeError, ValueError):
        text = None
    if text is not None and _plain(value):
        h.update(b"json\0" + text.encode())
        return h.hexdigest()
    h.update(_special(value))
    return h.hexdigest()


def _plain(value: Any) -> bool:
    """JSON that round-trips: no tuples (they come back as lists) and str dict keys only."""
    if isinstance(value, _SIMPLE) and not isinstance(value, bytes):
        return True
    if isinstance(value, list):
        return all(_plain(v) for v in value)
    if isinstance(value, dict):
        return all(isinstance(k, str) and _plain(v) for k, v in value.items())
    return False


def _special(value: Any) -> bytes:
    module = type(value).__module__.split(".")[0]
    if module == "pandas":
        import pandas as pd

        if isinstance(value, pd.DataFrame | pd.Series | pd.Index):
            hashed: bytes = pd.util.hash_pandas_object(value, index=True).to_numpy().tobytes()
            shape = (list(map(str, value.columns)), list(map(str, value.dtypes)))\
                if isinstance(value, pd.DataFrame) else (str(value.name), str(value.dtype))
            return b"pandas\0" + repr(shape).encode() + hashed
    if module == "numpy":
        import numpy as np

        if isinstance(value, np.ndarray) and value.dtype != object:
            return b"ndarray\0" + f"{value.dtype.str}{value.shape}".encode() + \
                np.ascontiguousarray(value).tobytes()
    import cloudpickle

    try:
        first: bytes = cloudpickle.dumps(value)
        second: bytes = cloudpickle.dumps(value)
    except Exception as exc:
        raise _Unhashable(f"it cannot be pickled ({type(exc).__name__}: {exc})") from exc
    if first != second:
        raise _Unhashable("its pickle differs from one dump to the next")
    return b"pickle\0" + first


class KeyMaker:
    """The cache keys of one submit, task by task in DAG order (parents first)."""

    def __init__(self, pipeline: str, run_id: str, params: Mapping[str, Any]) -> None:
        self.pipeline = pipeline
        self.run_id = run_id
        self.params = params
        self.keys: dict[str, str] = {}
        self._code: dict[int, str] = {}
        self._params: dict[str, str] = {}

    def key(self, spec: TaskSpec, cached: bool) -> str:
        """The key of ``spec`` (recorded for its children); a task that is not ``cached``
        gets a key unique to this run, so that its descendants miss too."""
        h = hashlib.sha256()
        h.update(f"{FORMAT}\0{_PY}\0{self.pipeline}\0{spec.id}\0".encode())
        if not cached:
            h.update(f"uncached\0{self.run_id}".encode())
        else:
            h.update(self._fingerprint(spec).encode())
            for name, digest in self._values(spec):
                h.update(f"\0{name}={digest}".encode())
        key = self.keys[spec.id] = h.hexdigest()
        return key

    def _fingerprint(self, spec: TaskSpec) -> str:
        version = getattr(spec, "version", None)
        ident = id(spec.fn)
        found = self._code.get(ident)
        if found is None:
            found = self._code[ident] = code_fingerprint(spec.fn, version)
        return found if version is None else f"{found}\0{version}"

    def _values(self, spec: TaskSpec) -> list[tuple[str, str]]:
        out = [(f"parent:{p}", self.keys[p]) for p in spec.parents]
        out += [(f"bind:{param}", source) for param, source in sorted(spec.bindings.items())]
        if spec.item_param is not None and spec.map is not None:
            out.append((f"item:{spec.item_param}", self._digest(spec, spec.item_param,
                                                                spec.map.item)))
        for name, value in sorted(spec.params.items()):
            out.append((f"const:{name}", self._digest(spec, name, value)))
        for name in (*spec.run_params, *spec.optional_params):
            if name in self.params:
                digest = self._params.get(name)
                if digest is None:
                    digest = self._params[name] = self._digest(spec, name, self.params[name])
                out.append((f"param:{name}", digest))
        out.append(("positional", ",".join(spec.positional)))
        return out

    def _digest(self, spec: TaskSpec, name: str, value: Any) -> str:
        try:
            return value_digest(value)
        except _Unhashable as exc:
            raise InvalidOptionError(
                f"param {name!r} of task {spec.id!r}", type(value).__name__,
                f"a value the cache can hash ({exc}): JSON data, a DataFrame, a numpy array "
                "or a picklable object; or cache=False on this task") from None


def cache_lines(order: list[TaskSpec], positions: Mapping[str, int], pipeline: str,
                run_id: str, params: Mapping[str, Any], run_cache: bool) -> str:
    """submit_run.lua's cache argument: '' when no task is cached, else one line per task in
    position order, ``"<key> <ttl ms>"`` (ttl 0: the default) or ``"- 0"``.

    ``order`` lists the specs parents first (a topological order); a task is cached when its
    ``cache`` option says so, else when the run is (``run_cache``).
    """
    wanted = [spec.cache if spec.cache is not None else run_cache for spec in order]
    if not any(wanted):
        return ""
    maker = KeyMaker(pipeline, run_id, params)
    lines = ["- 0\n"] * len(order)
    for spec, cached in zip(order, wanted, strict=True):
        key = maker.key(spec, cached)
        if cached:
            ttl = 0 if spec.cache_ttl is None else max(1, round(spec.cache_ttl * 1000))
            lines[positions[spec.id]] = f"{key} {ttl}\n"
    return "".join(lines)
