"""`submit`: a pipeline (or a built `DAG` of `TaskSpec`) becomes a run, in ONE script call.

Everything is checked and encoded in Python first (names, run params, modes, secret, sizes), so
a bad input raises before anything is written; then submit_run.lua creates every job, the run's
hashes and the root jobs' queue entries atomically. A kernel interrupt leaves either the whole
run or nothing, and the same ``run_id`` submitted twice makes one run.

Modes: a run is in JSON mode when every task is a ``"package.module:function"`` path and every
constant, map item, gather key and run param is plain JSON (or ``mode="json"`` demands it); its
payloads and results contain no pickle at all. Otherwise (pickle mode) notebook functions are
shipped by value with cloudpickle, stored once per content hash, and everything pickled is
signed (`codec`): that needs a secret (``ifn.connect()`` or ``IRONFORGE_SECRET``).
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, cast

from ironforge_nb.dag.builder import Pipeline
from ironforge_nb.dag.graph import DAG
from ironforge_nb.dag.task import TaskSpec
from ironforge_nb.errors import InvalidNameError, InvalidOptionError, SizeLimitError
from ironforge_nb.names import validate_name
from ironforge_nb.queue.config import RedisConfig, default_config
from ironforge_nb.queue.options import seconds_to_ms
from ironforge_nb.runs import codec
from ironforge_nb.runs.payload import encode_payload, split_plain
from ironforge_nb.runs.scripts import RunScripts

if TYPE_CHECKING:
    from ironforge_nb.runs.run import Run

__all__ = ["MAX_RUN_ID", "submit"]

MAX_RUN_ID = 100  # leaves room for ".<index>" in job ids (names are at most 128 characters)
Mode = Literal["auto", "json", "pickle"]


def submit(pipeline: Pipeline | DAG[str], params: Mapping[str, Any] | None = None, *,
           run_id: str | None = None, config: RedisConfig | None = None,
           queue: str | None = None, mode: Mode = "auto", backoff: float = 1.0) -> Run:
    """Submit ``pipeline`` as a run and return its `Run` handle at once.

    ``params`` feed the tasks' run params; ``run_id`` (default: pipeline name + random hex)
    makes submission idempotent; ``queue`` replaces the queue of tasks left on "default";
    ``mode`` forces JSON or pickle mode; ``backoff`` is the base delay (seconds) of retries.
    Raises `ValidationError` subclasses for bad input and `ConfigError` when pickled code must
    be signed and no secret is configured; in both cases nothing is written.
    """
    from ironforge_nb.runs.run import Run

    dag, name = _as_dag(pipeline)
    cfg = config if config is not None else default_config()
    run_params = _check_params(params)
    rid = _run_id(run_id, name)
    if mode not in ("auto", "json", "pickle"):
        raise InvalidOptionError("mode", mode, "'auto', 'json' or 'pickle'")
    if queue is not None:
        validate_name(queue, "queue")
    specs = [cast(TaskSpec, dag.data(t)) for t in dag.nodes]
    json_mode = _json_mode(specs, run_params, mode)
    secret = None if json_mode else codec.require_secret(
        codec.default_secret(), "submitting notebook functions (pickled code)")
    plan = _Plan(rid, cfg, secret, json_mode, queue, seconds_to_ms("backoff", backoff),
                 {t: f"{rid}.{i}" for i, t in enumerate(dag.nodes)})
    for spec in specs:
        plan.add(spec, run_params)
    params_blob = (codec.encode_value(run_params, secret, json_mode=json_mode)
                   if run_params else b"")
    maps_blob = codec.encode_value(_maps(specs), secret, json_mode=json_mode)
    scripts = RunScripts(cfg)
    call = (rid, name, params_blob, maps_blob, "json" if json_mode else "pickle",
            plan.profile_list, plan.codes, plan.records(), len(specs))
    if scripts.submit_run(*call) == "deleting":  # an old run with this id is being deleted
        scripts.purge(retention=False)
        scripts.submit_run(*call)
    scripts.purge()  # RedisConfig.run_retention: old ended runs go, in bounded steps
    return Run(rid, cfg, secret=secret)


def _as_dag(pipeline: Pipeline | DAG[str]) -> tuple[DAG[str], str]:
    """The validated DAG and a name for the run."""
    if isinstance(pipeline, Pipeline):
        dag, name = pipeline.build(), pipeline.name
    elif isinstance(pipeline, DAG):
        dag, name = pipeline, "dag"
    else:
        raise InvalidOptionError("pipeline", type(pipeline).__name__,
                                 "a Pipeline or the DAG returned by Pipeline.build()")
    if len(dag) == 0:
        raise InvalidOptionError("pipeline", name, "a pipeline with at least one task")
    if not all(isinstance(dag.data(t), TaskSpec) for t in dag.nodes[:1]):
        raise InvalidOptionError("pipeline", repr(dag), "a DAG built by Pipeline.build() "
                                 "(each task needs a TaskSpec with its function)")
    return dag, name


def _check_params(params: Mapping[str, Any] | None) -> dict[str, Any]:
    if params is None:
        return {}
    if not isinstance(params, Mapping) or not all(isinstance(k, str) for k in params):
        raise InvalidOptionError("params", params, "a dict with str keys")
    return dict(params)


def _run_id(run_id: str | None, name: str) -> str:
    if run_id is None:
        return f"{name[:60]}-{secrets.token_hex(5)}"
    validate_name(run_id, "run")
    if len(run_id) > MAX_RUN_ID:
        raise InvalidNameError("run", run_id, f"it has {len(run_id)} characters; at most "
                               f"{MAX_RUN_ID} are allowed for a run id")
    return run_id


def _json_mode(specs: list[TaskSpec], params: Mapping[str, Any], mode: Mode) -> bool:
    """Whether the run can (auto) or must (json) avoid pickle; `InvalidOptionError` naming
    the first task that prevents a demanded JSON mode."""
    if mode == "pickle":
        return False
    for spec in specs:
        problem = _json_problem(spec)
        if problem is not None:
            if mode == "json":
                raise InvalidOptionError(f"task {spec.id!r}", problem, "in JSON mode: a "
                                         "'package.module:function' path and JSON arguments")
            return False
    if not codec.is_plain(params):
        if mode == "json":
            raise InvalidOptionError("params", params, "JSON data in JSON mode")
        return False
    return True


def _json_problem(spec: TaskSpec) -> str | None:
    if not isinstance(spec.fn, str):
        return "a Python function (shipped as pickle)"
    if spec.map is not None and spec.item_param and not codec.is_plain(spec.map.item):
        return f"map item {spec.map.item!r}"
    if not codec.is_plain(dict(spec.params)):
        return "non-JSON constants in params"
    for gather in spec.gathers:
        if gather.keys is not None and not codec.is_plain(list(gather.keys)):
            return f"non-JSON keys of map {gather.name!r}"
    return None


def _maps(specs: list[TaskSpec]) -> dict[str, list[Any]]:
    """``{map name: [member task ids in item order, original dict keys or None]}``."""
    maps: dict[str, list[Any]] = {}
    for spec in specs:
        if spec.map is not None:
            entry = maps.setdefault(spec.map.name, [[], [] if spec.map.keyed else None])
            entry[0].append(spec.id)
            if entry[1] is not None:
                entry[1].append(spec.map.dict_key)
    return maps


@dataclass
class _Plan:
    """The encoded run, built task by task: option profiles, code blobs, task records."""

    run_id: str
    config: RedisConfig
    secret: bytes | None
    json_mode: bool
    queue: str | None
    backoff_ms: int
    job_ids: dict[str, str]  # task id -> job id: "<run id>.<position in the DAG>"
    children: dict[str, list[str]] = field(default_factory=dict)
    profiles: dict[tuple[Any, ...], int] = field(default_factory=dict)
    codes: list[tuple[str, bytes]] = field(default_factory=list)
    rows: list[tuple[str, str, int, int, bytes]] = field(default_factory=list)
    _digests: dict[int, str] = field(default_factory=dict)

    @property
    def profile_list(self) -> list[tuple[Any, ...]]:
        return list(self.profiles)

    def add(self, spec: TaskSpec, params: Mapping[str, Any]) -> None:
        """Validate and encode one task."""
        for name in spec.run_params:
            if name not in params:
                raise InvalidOptionError(
                    "params", sorted(params), f"a value for {name!r} (task {spec.id!r})")
        jid = self.job_ids[spec.id]
        for parent in spec.parents:
            self.children.setdefault(parent, []).append(spec.id)
        payload = self._payload(spec, jid)
        if len(payload) > self.config.max_payload_bytes:
            raise SizeLimitError(f"payload of task {spec.id!r}", len(payload),
                                 self.config.max_payload_bytes,
                                 "pass big data through a task's result or a file path, not as "
                                 "a constant or map item")
        self.rows.append((spec.id, jid, self._profile(spec), len(spec.parents), payload))

    def records(self) -> list[Any]:
        """The task records of submit_run.lua, two arguments per task (children are known
        once all tasks are in)."""
        out: list[Any] = []
        children = self.children
        for task, jid, profile, n_parents, payload in self.rows:
            kids = ",".join(children.get(task, ()))
            out += (f"{task} {jid} {profile} {n_parents} {kids}", payload)
        return out

    def _profile(self, spec: TaskSpec) -> int:
        queue = self.queue if self.queue is not None and spec.queue == "default" else spec.queue
        timeout = "" if spec.timeout is None else repr(spec.timeout)
        key = (queue, spec.priority, spec.retries + 1, self.backoff_ms, timeout,
               "1" if spec.allow_failure else "0")
        return self.profiles.setdefault(key, len(self.profiles) + 1)

    def _function(self, fn: Callable[..., Any]) -> str:
        digest = self._digests.get(id(fn))
        if digest is None:
            digest, blob = codec.code_blob(fn, cast(bytes, self.secret))
            self._digests[id(fn)] = digest
            self.codes.append((self.config.keys.code(digest), blob))
        return digest

    def _payload(self, spec: TaskSpec, jid: str) -> bytes:
        head: dict[str, Any] = {"run": self.run_id, "task": spec.id}
        if isinstance(spec.fn, str):
            head["path"] = spec.fn
        else:
            head["code"] = self._function(spec.fn)
        if self.json_mode:
            head["json"] = 1
        extra: dict[str, Any] = {}
        if spec.bindings:
            self._sources(spec, head, extra)
        if spec.item_param is not None and spec.map is not None:
            head["item_param"] = spec.item_param
            if codec.is_plain(spec.map.item):
                head["item"] = spec.map.item
            else:
                extra["item"] = spec.map.item
        if spec.params:
            plain, other = split_plain(spec.params)
            if plain:
                head["consts"] = plain
            if other:
                extra["consts"] = other
        if spec.run_params:
            head["need"] = list(spec.run_params)
        if spec.optional_params:
            head["optional"] = list(spec.optional_params)
        if spec.positional:
            head["positional"] = list(spec.positional)
        if spec.timeout is not None:
            head["timeout"] = spec.timeout
        return encode_payload(head, extra, self.secret)

    def _sources(self, spec: TaskSpec, head: dict[str, Any], extra: dict[str, Any]) -> None:
        """Parent and gather bindings, as job ids."""
        gathers = {g.name: g for g in spec.gathers}
        parents: dict[str, str] = {}
        for param, source in spec.bindings.items():
            gather = gathers.get(source)
            if gather is None:
                parents[param] = self.job_ids[source]
                continue
            head.setdefault("gathers", {})[param] = [self.job_ids[m] for m in gather.members]
            if gather.keys is not None:
                keys = list(gather.keys)
                where = head if codec.is_plain(keys) else extra
                where.setdefault("gather_keys", {})[param] = keys
        if parents:
            head["parents"] = parents

