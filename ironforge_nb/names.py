"""Validation of user-chosen names that end up inside Redis keys.

Queues, tasks, pipelines, namespaces and lock names become parts of key names such as
``{ns}:q:<queue>:wait``. Braces would break the cluster hash tag, colons the key structure,
whitespace every tool that prints keys. So names are ``[A-Za-z0-9_.-]``, 1 to 128 characters.
Task ids made by ``Pipeline.map`` add one bracketed item key: ``score[eu]``.
"""

from __future__ import annotations

import re

from ironforge_nb.errors import InvalidNameError

__all__ = ["MAX_NAME_LENGTH", "validate_name", "validate_task_id"]

MAX_NAME_LENGTH = 128
_NAME = re.compile(r"[A-Za-z0-9_.\-]{1,128}")
_TASK_ID = re.compile(r"[A-Za-z0-9_.\-]{1,128}(?:\[[A-Za-z0-9_.\-]{1,64}\])?")
_ALLOWED = "letters, digits, '_', '.' and '-' (1 to 128 characters)"


def _reason(name: str) -> str:
    if not name:
        return "it is empty; " + _ALLOWED
    if len(name) > MAX_NAME_LENGTH:
        return f"it has {len(name)} characters; at most {MAX_NAME_LENGTH} are allowed"
    bad = sorted({c for c in name if not (c.isascii() and (c.isalnum() or c in "_.-"))})
    return f"it contains {''.join(bad)!r}; use only {_ALLOWED}"


def validate_name(name: object, kind: str = "queue") -> str:
    """Return ``name`` unchanged if it is a valid name, else raise `InvalidNameError`."""
    if not isinstance(name, str):
        raise InvalidNameError(kind, name, f"expected a str, got {type(name).__name__}")
    if _NAME.fullmatch(name) is None:
        raise InvalidNameError(kind, name, _reason(name))
    return name


def validate_task_id(task_id: object) -> str:
    """Like `validate_name`, but also accepts one ``[item]`` suffix made by ``Pipeline.map``."""
    if not isinstance(task_id, str):
        raise InvalidNameError("task", task_id, f"expected a str, got {type(task_id).__name__}")
    if _TASK_ID.fullmatch(task_id) is None:
        raise InvalidNameError("task", task_id, _reason(task_id))
    return task_id
