"""The one status palette shared by every view (graphs, legends, widgets, tables).

Colors are keyed by the `JobStatus` values plus ``"none"`` (`NO_STATUS`: a task drawn without
a status, e.g. a pipeline before it is submitted, or a status this version does not know) and
``"cached"`` (completed by reusing an earlier run's result: a paler green, dotted border).
Because `JobStatus` is a ``str`` enum, both ``STATUS_COLORS["failed"]`` and
``STATUS_COLORS[JobStatus.FAILED]`` work. Standard library only.

The no-status key was called ``"pending"`` (`PENDING`) up to version 0.1.0: a word that also
named a run status never set and a run's queued, scheduled and active tasks. ``"pending"`` is
still accepted as a status to draw and ``PENDING`` still imports, both with a `FutureWarning`
(shown to notebook users, unlike a DeprecationWarning raised in library code), until 0.3.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Mapping
from types import MappingProxyType

from ironforge_nb.errors import InvalidOptionError
from ironforge_nb.status import JobStatus

__all__ = [
    "CACHED",
    "NO_STATUS",
    "STATUS_COLORS",
    "STATUS_ORDER",
    "legend_items",
    "normalize_status",
    "status_label",
    "status_style",
    "summary_status",
]

NO_STATUS = "none"  # a display state: no status to draw (none given, or one we do not know)
CACHED = "cached"  # a display state: completed from the cache (the job's status is completed)

# Fill colors: greys for "not started", blues for "about to run", amber for running, green,
# red and muted tones for the end states. Chosen to stay distinct for common color blindness.
STATUS_COLORS: Mapping[str, str] = MappingProxyType({
    NO_STATUS: "#ffffff",
    JobStatus.WAITING.value: "#e0e0e0",
    JobStatus.SCHEDULED.value: "#d4c8e8",
    JobStatus.QUEUED.value: "#9ecae1",
    JobStatus.ACTIVE.value: "#fdb863",
    JobStatus.COMPLETED.value: "#7fc97f",
    CACHED: "#c7e9c0",
    JobStatus.FAILED.value: "#e34a33",
    JobStatus.CANCELLED.value: "#969696",
    JobStatus.SKIPPED.value: "#f5f5f5",
})

# Display order: life-cycle order, used by legends and by "80 completed, 40 queued" counts.
STATUS_ORDER: tuple[str, ...] = (
    NO_STATUS, "waiting", "scheduled", "queued", "active", "completed", CACHED, "failed",
    "cancelled", "skipped",
)

# Which status a collapsed box takes when its tasks differ: trouble first, then activity.
_SUMMARY_PRIORITY: tuple[str, ...] = (
    "failed", "active", "queued", "scheduled", "waiting", NO_STATUS, "cancelled", "skipped",
    "completed", CACHED,
)

_DARK_FILLS = frozenset({JobStatus.FAILED.value, JobStatus.CANCELLED.value})
_OLD_NO_STATUS = "pending"  # the no-status key's old name (deprecated, see the module doc)


def __getattr__(name: str) -> str:
    """``PENDING``, the old name of `NO_STATUS`, with a `FutureWarning`."""
    if name == "PENDING":
        _deprecated("ironforge_nb.render.palette.PENDING", "NO_STATUS", stacklevel=3)
        return NO_STATUS
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _deprecated(old: str, new: str, stacklevel: int) -> None:
    warnings.warn(f"{old} is deprecated: use {new} (the state of a task with no status, "
                  "now called 'none')", FutureWarning, stacklevel=stacklevel)


def normalize_status(status: object) -> str:
    """The palette key of ``status`` (a `JobStatus`, its value, or None for `NO_STATUS`)."""
    if status is None:
        return NO_STATUS
    if status == _OLD_NO_STATUS:
        _deprecated("the status 'pending'", "None or 'none'", stacklevel=3)
        return NO_STATUS
    key = status.value if isinstance(status, JobStatus) else status
    if not isinstance(key, str) or key not in STATUS_COLORS:
        raise InvalidOptionError("status", status, f"one of {', '.join(STATUS_ORDER)}")
    return key


def status_style(status: str) -> dict[str, str]:
    """Graphviz node attributes for a status: fill, border and readable text color."""
    style = {"style": "filled", "fillcolor": STATUS_COLORS[status], "color": "#555555"}
    if status in _DARK_FILLS:
        style["fontcolor"] = "white"
    if status == JobStatus.SKIPPED.value:
        style["style"] = "filled,dashed"
    elif status == CACHED:
        style["style"] = "filled,dotted"
    return style


def summary_status(counts: Mapping[str, int]) -> str:
    """The status a group of tasks is drawn with: the first present in the priority list."""
    return next((s for s in _SUMMARY_PRIORITY if counts.get(s)), NO_STATUS)


def status_label(status: str) -> str:
    """How a legend names ``status``: the status itself, "no status" for `NO_STATUS`."""
    return "no status" if status == NO_STATUS else status


def legend_items(statuses: Iterable[str] | None = None) -> list[tuple[str, str]]:
    """``(status, color)`` pairs in life-cycle order: those in ``statuses``, or all of them."""
    wanted = set(STATUS_ORDER) if statuses is None else set(statuses)
    return [(s, STATUS_COLORS[s]) for s in STATUS_ORDER if s in wanted]
