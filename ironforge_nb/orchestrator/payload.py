"""The payload of a task job: JSON that says what to call and where each argument comes from.

A payload is one line of compact JSON, optionally followed by ``\\n`` and one signed pickle
(`codec.dumps`) holding the argument values that JSON cannot carry exactly (pickle mode only).
JSON text never contains a raw newline, so the split is unambiguous. Fields:

=================  ==========================================================================
``run``, ``task``  run id and task id
``code``/``path``  the function: SHA-256 digest of its signed pickle in the code store
                   (``Keys.code(digest)``), or an import path ``"package.module:function"``
``json``           1 when the task runs in JSON mode (its result is stored as JSON)
``parents``        ``{parameter: parent job id}``: the parent's result is the argument
``gathers``        ``{parameter: [member job ids in item order]}``: the list of their results
``gather_keys``    ``{parameter: [keys]}``: the gathered results become ``{key: result}``
``item_param``     the parameter receiving the map item; ``item``: the item (when plain JSON)
``consts``         ``{parameter: constant}`` (the plain-JSON ones)
``need``           run params the task requires; ``optional``: run params used when given
``positional``     positional-only parameters, passed in this order
``timeout``        seconds per attempt (also in the job's meta hash as ``timeout``)
``blob``           1 when a signed pickle follows: ``{"item":..., "consts": {...},
                   "gather_keys": {...}}`` with the values JSON could not carry
=================  ==========================================================================

Run params live once in the run's meta hash (field ``params``, encoded by `codec.encode_value`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ironforge_nb.dag.task import finish_arguments
from ironforge_nb.errors import SignatureError, TaskError
from ironforge_nb.orchestrator import codec

__all__ = ["TaskPayload", "attach_extra", "decode_payload", "encode_payload", "split_plain",
           "to_json"]

_SEP = b"\n"
# compact JSON text, with the encoder built once: json.dumps with non-default separators
# would build an encoder per call (10k tasks = 10k encoders)
to_json = json.JSONEncoder(separators=(",", ":")).encode


@dataclass
class TaskPayload:
    """A decoded task payload (see the module docstring for each field)."""

    run: str
    task: str
    code: str | None = None
    path: str | None = None
    json_mode: bool = False
    parents: dict[str, str] = field(default_factory=dict)
    gathers: dict[str, list[str]] = field(default_factory=dict)
    gather_keys: dict[str, list[Any]] = field(default_factory=dict)
    item_param: str | None = None
    item: Any = None
    consts: dict[str, Any] = field(default_factory=dict)
    need: list[str] = field(default_factory=list)
    optional: list[str] = field(default_factory=list)
    positional: list[str] = field(default_factory=list)
    timeout: float | None = None

    def job_ids(self) -> list[str]:
        """Every parent job whose result this task reads, each once."""
        ids = list(self.parents.values())
        for members in self.gathers.values():
            ids.extend(members)
        return list(dict.fromkeys(ids))

    def arguments(self, results: Mapping[str, Any],
                  run_params: Mapping[str, Any]) -> tuple[list[Any], dict[str, Any]]:
        """``(args, kwargs)`` from the parents' results (by job id) and the run params.

        The same rule as `TaskSpec.arguments`, on job ids instead of task ids.
        """
        values: dict[str, Any] = {p: results[j] for p, j in self.parents.items()}
        for param, members in self.gathers.items():
            gathered = [results[j] for j in members]
            keys = self.gather_keys.get(param)
            values[param] = gathered if keys is None else dict(zip(keys, gathered, strict=True))
        if self.item_param is not None:
            values[self.item_param] = self.item

        def missing(name: str) -> Exception:
            return TaskError(None, f"task {self.task!r} needs run param {name!r}, which the "
                                   "run's params do not have")

        return finish_arguments(values, self.consts, self.need, self.optional,
                                self.positional, run_params, missing)


def encode_payload(head: dict[str, Any], extra: Mapping[str, Any],
                   secret: bytes | None) -> bytes:
    """JSON ``head`` (``blob`` set when ``extra`` is not empty) plus ``extra`` signed-pickled.

    Submit writes the same layout from text it assembles itself (``orchestrator.submit``), and
    both end with `attach_extra`."""
    if not extra:
        return to_json(head).encode()
    head["blob"] = 1
    return attach_extra(to_json(head).encode(), extra, secret, "the payload")


def attach_extra(head: bytes, extra: Mapping[str, Any], secret: bytes | None,
                 what: str) -> bytes:
    """A payload's JSON ``head`` (which says ``"blob":1``) followed by ``extra`` signed-pickled;
    an unpicklable value is an `InvalidOptionError` naming ``what``."""
    return head + _SEP + codec.dumps_input(
        dict(extra), codec.require_secret(secret, "pickled data"), what)


def decode_payload(data: bytes, secret: bytes | None, job_id: str, *,
                   json_only: bool = False) -> TaskPayload:
    """Parse a payload; its pickled part (if any) is verified before it is unpickled.

    Raises `SignatureError` for a pickled part that is unsigned, tampered, or refused in
    JSON-only mode, and for a payload that is not JSON at all (e.g. a planted raw pickle);
    `TaskError` for JSON that is not a task payload.
    """
    text, sep, blob = data.partition(_SEP)
    try:
        head = json.loads(text)
    except ValueError:
        raise SignatureError(job_id, "the payload is not a JSON task payload; raw pickles are "
                                     "never accepted") from None
    if not isinstance(head, dict) or "task" not in head or not ("code" in head or "path" in head):
        raise TaskError(job_id, "the payload is not an IronForge task payload")
    if json_only and ("code" in head or sep or head.get("blob")):
        raise SignatureError(job_id, "this worker runs in JSON-only mode and refuses pickled "
                                     "code or arguments")
    extra: dict[str, Any] = {}
    if head.get("blob") or sep:
        extra = codec.loads(blob, secret, job_id)
    return _payload(head, extra, job_id)


def _payload(head: Mapping[str, Any], extra: Mapping[str, Any], job_id: str) -> TaskPayload:
    try:
        p = TaskPayload(
            run=str(head["run"]), task=str(head["task"]), code=head.get("code"),
            path=head.get("path"), json_mode=bool(head.get("json")),
            parents=dict(head.get("parents", {})), gathers=dict(head.get("gathers", {})),
            gather_keys=dict(head.get("gather_keys", {})), item_param=head.get("item_param"),
            item=head.get("item"), consts=dict(head.get("consts", {})),
            need=list(head.get("need", [])), optional=list(head.get("optional", [])),
            positional=list(head.get("positional", [])), timeout=head.get("timeout"),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise TaskError(job_id, f"malformed task payload: {exc!r}") from None
    if "item" in extra:
        p.item = extra["item"]
    p.consts.update(extra.get("consts", {}))
    p.gather_keys.update(extra.get("gather_keys", {}))
    return p


def split_plain(values: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """``values`` split into (plain JSON ones, the others)."""
    plain: dict[str, Any] = {}
    other: dict[str, Any] = {}
    for name, value in values.items():
        (plain if codec.is_plain(value) else other)[name] = value
    return plain, other
