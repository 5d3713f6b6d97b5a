"""Importable task functions for run tests (JSON mode needs "tests.tasks:<name>" paths).

Workers of other tests may add functions here: append only, never change an existing one.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any


def one() -> int:
    """A root task: 1."""
    return 1


def add(a: int, b: int) -> int:
    """The sum of two upstream results."""
    return a + b


def double(x: int) -> int:
    """Twice its input."""
    return 2 * x


def inc(x: int) -> int:
    """Its input plus one."""
    return x + 1


def square(item: int) -> int:
    """A map task: the item squared."""
    return item * item


def total(values: list[int]) -> int:
    """A gather task: the sum of the gathered results."""
    return sum(values)


def scale(x: int, factor: int) -> int:
    """``x`` times a run param or constant ``factor``."""
    return x * factor


def noop(**_: Any) -> None:
    """Does nothing (benchmarks, big pipelines)."""


def boom(**_: Any) -> None:
    """Always fails."""
    raise RuntimeError("boom: this task always fails")


def flaky(marker: str, fail_times: int) -> str:
    """Fails ``fail_times`` times (counted in the file ``marker``), then returns "ok"."""
    path = Path(marker)
    count = int(path.read_text()) if path.exists() else 0
    path.write_text(str(count + 1))
    if count < fail_times:
        raise RuntimeError(f"flaky: failure {count + 1} of {fail_times}")
    return "ok"


def fail_if_file(marker: str) -> str:
    """Fails while the file ``marker`` exists (tests delete it before retrying)."""
    if os.path.exists(marker):
        raise RuntimeError(f"marker {marker} exists")
    return "fixed"


def maybe(x: Any = None) -> str:
    """Accepts a missing (None) upstream result: what allow_failure children receive."""
    return "got none" if x is None else f"got {x!r}"


def plus(x: int, y: int) -> int:
    """The sum of two upstream results, fed in ``after`` order (no parameter names a task)."""
    return x + y


def sum_sq(sq: list[int], unused: Any = None) -> int:
    """A JSON-mode gather: a path task receives the map ``sq``'s results as keyword ``sq``."""
    return sum(sq)


def from_one(one: int) -> int:
    """A JSON-mode child of a task named ``one``: path tasks receive parents by task name."""
    return 10 * one


def scaled_total(sq: list[int], factor: int) -> int:
    """The map ``sq``'s results summed, times the run param ``factor`` (a task with more
    parents than a claim inlines, reading params too)."""
    return factor * sum(sq)
