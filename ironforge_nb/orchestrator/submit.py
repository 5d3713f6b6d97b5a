"""`submit`: a pipeline (or a built `DAG` of `TaskSpec`) becomes a run, in ONE script call,
or, for a big run, in staged chunks and a last call that makes it exist.

Everything is checked and encoded in Python first (names, run params, modes, secret, sizes), so
a bad input raises before anything is written; then submit_run.lua creates every job, the run's
hashes and the root jobs' queue entries atomically. A kernel interrupt leaves either the whole
run or nothing, and the same ``run_id`` submitted twice makes one run.

A run of `STAGED_MIN` tasks or more, none of them cached, is staged (`_Staging`): its tasks
are encoded and sent `STAGE_CHUNK` at a time, each chunk while Redis writes the one before
(the client's encode, about a third of a 100k-task submit, no longer adds to its wall time),
and a last call makes the run exist. The promises are the same: nothing staged can be seen or
claimed; a payload found too big in a later chunk, or an interrupt, aborts what was staged
before it raises; a client that dies between chunks leaves keys that the next submit or delete,
or a worker's housekeeping (`RunTransitions.sweep`), deletes `STAGE_TTL_MS` after its last
chunk (delete_runs.lua); a resent chunk or last call
changes nothing; another client staging the same run id is waited for.

Modes: a run is in JSON mode when every task is a ``"package.module:function"`` path and every
constant, map item, gather key and run param is plain JSON (or ``mode="json"`` demands it); its
payloads and results contain no pickle at all. Otherwise (pickle mode) notebook functions are
shipped by value with cloudpickle, stored once per content hash, and everything pickled is
signed (`codec`): that needs a secret (``ifn.connect()`` or ``IRONFORGE_SECRET``).
"""

from __future__ import annotations

import contextlib
import secrets
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import groupby
from json.encoder import encode_basestring_ascii as _quote  # '"..."', escaped as json.dumps
from operator import ne
from typing import TYPE_CHECKING, Any, Literal, cast

from redis.exceptions import ResponseError

from ironforge_nb.dag.builder import Pipeline
from ironforge_nb.dag.graph import DAG
from ironforge_nb.dag.task import TaskSpec, paused_gc
from ironforge_nb.errors import InvalidNameError, InvalidOptionError, RunStateError, SizeLimitError
from ironforge_nb.names import validate_name, validate_task_id
from ironforge_nb.orchestrator import codec, run_transitions
from ironforge_nb.orchestrator.cachekey import cache_lines
from ironforge_nb.orchestrator.payload import attach_extra, split_plain, to_json
from ironforge_nb.orchestrator.run_transitions import RunTransitions
from ironforge_nb.queue.config import RedisConfig, default_config
from ironforge_nb.queue.options import seconds_to_ms, validate_count

if TYPE_CHECKING:
    from ironforge_nb.orchestrator.run import Run

__all__ = ["MAX_RUN_ID", "submit"]

MAX_RUN_ID = 100  # leaves room for ".<index>" in job ids (names are at most 128 characters)
INLINE_INPUTS = 32  # a task reading at most this many parents gets their results with its claim
# a run of at least STAGED_MIN tasks (none cached) is submitted STAGE_CHUNK tasks at a time, each
# chunk encoded while Redis writes the previous one (`_Staging`)
STAGED_MIN = 20_000
STAGE_CHUNK = 5_000
Mode = Literal["auto", "json", "pickle"]


def submit(pipeline: Pipeline | DAG[str], params: Mapping[str, Any] | None = None, *,
           run_id: str | None = None, config: RedisConfig | None = None,
           queue: str | None = None, mode: Mode = "auto", backoff: float = 1.0,
           max_stalls: int | None = None,
           cache: bool | None = None) -> Run:
    """Submit ``pipeline`` as a run and return its `Run` handle at once.

    ``params`` feed the tasks' run params; ``run_id`` (default: pipeline name + random hex)
    makes submission idempotent; ``queue`` replaces the queue of tasks left on "default";
    ``mode`` forces JSON or pickle mode; ``backoff`` is the base delay (seconds) of retries;
    ``max_stalls`` how many times a task is queued again after its worker died under it before
    it fails, for the tasks that do not set their own (None: `DEFAULT_MAX_STALLS`);
    ``cache`` (default: the pipeline's ``cache``) reuses the results of earlier runs for the
    tasks whose code and inputs are unchanged (`ironforge_nb.orchestrator.cache`).
    Raises `ValidationError` subclasses for bad input and `ConfigError` when pickled code must
    be signed and no secret is configured; in both cases nothing is written. A run of 20,000
    tasks or more goes in chunks (see the module docstring): it still exists whole or not at
    all, and `RunStateError` means another client has been submitting the same ``run_id``
    for over a minute.
    """
    from ironforge_nb.orchestrator.run import Run

    with paused_gc():  # see paused_gc: a 100k-task encode allocates millions of objects
        prep = _prepare(pipeline, params, run_id, config, queue, mode, backoff, max_stalls,
                        cache)
        scripts = RunTransitions(prep.config)
        if prep.size >= STAGED_MIN and prep.cache is None:
            _Staging(prep, scripts).submit()
        else:
            call = prep.encode_all()
            if scripts.submit_run(*call) == "deleting":  # an old run with this id is going
                scripts.purge(retention=False)
                scripts.submit_run(*call)
    scripts.purge()  # RedisConfig.run_retention: old ended runs go, in bounded steps
    return Run(prep.run_id, prep.config, secret=prep.secret)


def _encode(pipeline: Pipeline | DAG[str], params: Mapping[str, Any] | None,
            run_id: str | None, config: RedisConfig | None, queue: str | None, mode: Mode,
            backoff: float, max_stalls: int | None = None,
            cache: bool | None = None,
            ) -> tuple[str, RedisConfig, bytes | None, tuple[Any, ...]]:
    """Check and encode everything: (run id, config, secret, submit_run arguments)."""
    prep = _prepare(pipeline, params, run_id, config, queue, mode, backoff, max_stalls, cache)
    return prep.run_id, prep.config, prep.secret, prep.encode_all()


@dataclass
class _Prepared:
    """A run checked and ready to encode: everything but its tasks' payloads (`_Plan.add_all`,
    at once or a chunk at a time) is known, and only a payload over the size limit can still
    be refused."""

    run_id: str
    name: str
    config: RedisConfig
    secret: bytes | None
    json_mode: bool
    specs: tuple[TaskSpec, ...]
    params: dict[str, Any]
    plan: _Plan
    dag: DAG[str]
    cache: bool | None  # the run's cache flag; None: no task is cached (no keys to make)

    @property
    def size(self) -> int:
        return len(self.specs)

    def encode_all(self) -> tuple[Any, ...]:
        """Every task encoded: the arguments of `RunTransitions.submit_run`."""
        plan, specs = self.plan, self.specs
        plan.add_all(specs)
        cached = ""
        if self.cache is not None:
            order = [specs[plan.index[t]] for t in self.dag.topological_order()]
            cached = cache_lines(order, plan.index, self.name, self.run_id, self.params,
                                 self.cache)
        return (self.run_id, self.name, *self.blobs(), list(plan.profiles), plan.codes,
                plan.records(), plan.blob(), len(specs), cached)

    def blobs(self) -> tuple[bytes, bytes, str]:
        """The run's params and maps, encoded, and its mode."""
        run_params, secret, json_mode = self.params, self.secret, self.json_mode
        params_blob = (b"" if not run_params else
                       codec.encode_value(run_params, secret, json_mode=True) if json_mode else
                       codec.dumps_input(run_params, cast(bytes, secret), "params"))
        maps_blob = codec.encode_value(_maps(self.specs), secret, json_mode=json_mode)
        return params_blob, maps_blob, "json" if json_mode else "pickle"


def _prepare(pipeline: Pipeline | DAG[str], params: Mapping[str, Any] | None,
             run_id: str | None, config: RedisConfig | None, queue: str | None, mode: Mode,
             backoff: float, max_stalls: int | None = None,
             cache: bool | None = None) -> _Prepared:
    """Check everything but the payloads' sizes (see `_Prepared`)."""
    dag, name = _as_dag(pipeline)
    if cache is None:
        cache = pipeline.cache if isinstance(pipeline, Pipeline) else False
    elif not isinstance(cache, bool):
        raise InvalidOptionError("cache", cache, "True, False or None (the pipeline's)")
    cfg = config if config is not None else default_config()
    run_params = _check_params(params)
    rid = _run_id(run_id, name)
    if mode not in ("auto", "json", "pickle"):
        raise InvalidOptionError("mode", mode, "'auto', 'json' or 'pickle'")
    if queue is not None:
        validate_name(queue, "queue")
    specs = cast("tuple[TaskSpec, ...]", dag.attached())
    json_mode = _json_mode(specs, run_params, mode)
    secret = None if json_mode else codec.require_secret(
        codec.default_secret(), "submitting notebook functions (pickled code)")
    plan = _Plan(rid, cfg, secret, json_mode, queue, seconds_to_ms("backoff", backoff),
                 {t: i for i, t in enumerate(dag.nodes)},
                 None if max_stalls is None else validate_count("max_stalls", max_stalls, 0))
    plan.link(specs, run_params)
    cached = cache or any(spec.cache for spec in specs)
    return _Prepared(rid, name, cfg, secret, json_mode, specs, run_params, plan, dag,
                     cache if cached else None)


class _Staging:
    """A big run submitted in chunks (submit_run.lua, "Staged submit"): each chunk of
    `STAGE_CHUNK` tasks is encoded while Redis writes the previous one, and a last call makes
    the run exist. Nothing is visible before that call, and an interrupted submit is aborted
    (or, if its client died, swept after `STAGE_TTL_MS`), so a run still exists whole or not
    at all. Each attempt has its own token; another client staging the same run id is waited
    for (its run then exists, or its staging is swept and this one begins again)."""

    def __init__(self, prep: _Prepared, scripts: RunTransitions) -> None:
        self.prep = prep
        self.scripts = scripts
        self.encoded = 0  # tasks encoded so far (plan.add_all), in order

    def submit(self) -> None:
        """Stage and commit; returns once the run exists (made by this call or another)."""
        # another stager keeps its staging alive for STAGE_TTL_MS after each of its chunks
        give_up = time.monotonic() + 2 * run_transitions.STAGE_TTL_MS / 1000
        while True:
            reply = self._attempt(secrets.token_hex(8))
            if reply in ("created", "exists"):
                return
            if reply == "busy":  # another client is staging this run id: wait for its end
                if self._await_other(give_up):
                    return
            elif reply in ("deleting", "lost"):  # an old run, or our staging swept: finish
                self.scripts.purge(retention=False)  # its deletion, then begin again
            else:  # pragma: no cover (submit_run.lua has no other reply)
                raise RuntimeError(f"submit_run: unexpected reply {reply!r}")
            if time.monotonic() > give_up:
                raise RunStateError(self.prep.run_id, "being submitted", "submit",
                                    "another client has been submitting this run id for "
                                    "over a minute; wait for it or use another run_id")

    def _attempt(self, token: str) -> str:
        prep, scripts = self.prep, self.scripts
        rid, plan, size = prep.run_id, prep.plan, prep.size
        reply: Callable[[], str] | None = None  # the chunk in flight
        try:
            for start in range(0, size, STAGE_CHUNK):
                end = min(size, start + STAGE_CHUNK)
                if end > self.encoded:  # encoded while Redis writes the chunk in flight
                    plan.add_all(prep.specs[self.encoded:end])
                    self.encoded = end
                if reply is not None and (answer := reply()) != "staged":
                    reply = None
                    return answer
                reply = scripts.stage_chunk(rid, token, start, list(plan.profiles),
                                            plan.records(start, end), plan.blob(start, end),
                                            end - start)
            blobs = prep.blobs()  # while Redis writes the last chunk
            answer = cast("Callable[[], str]", reply)()
            reply = None
            if answer != "staged":
                return answer
            return scripts.commit_run(rid, token, prep.name, *blobs, list(plan.profiles),
                                      plan.codes, size)
        except BaseException:
            self._abort(token, reply)
            raise

    def _abort(self, token: str, reply: Callable[[], str] | None) -> None:
        """Give up this attempt's staging (best effort: a cut connection leaves it to the
        sweep after `STAGE_TTL_MS`)."""
        with contextlib.suppress(Exception):
            if reply is not None:
                with contextlib.suppress(ResponseError):
                    reply()
            if self.scripts.abort_staged(self.prep.run_id, token) == "aborted":
                self.scripts.purge(retention=False)

    def _await_other(self, give_up: float) -> bool:
        """Wait while another token stages this run id: True once the run exists, False
        once that staging is gone (swept past its deadline by our purge, or aborted)."""
        client = self.prep.config.client()
        keys = self.prep.config.keys.run(self.prep.run_id)
        while time.monotonic() < give_up:
            if client.exists(keys.meta):
                return True
            self.scripts.purge(retention=False)  # sweeps a staging whose client went quiet
            if not client.hexists(keys.staged, "token"):
                return False
            time.sleep(0.05)
        return False


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
    # a Pipeline validated its task ids when they were added; a DAG built by hand may hold
    # anything, and ids go verbatim into keys, records and payload JSON
    for t in dag.nodes if not isinstance(pipeline, Pipeline) else dag.nodes[:1]:
        spec = dag.data(t)
        if not isinstance(spec, TaskSpec) or spec.id != validate_task_id(t):
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


def _json_mode(specs: Sequence[TaskSpec], params: Mapping[str, Any], mode: Mode) -> bool:
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
    if spec.params and not codec.is_plain(dict(spec.params)):
        return "non-JSON constants in params"
    for gather in spec.gathers:
        if gather.keys is not None and not codec.is_plain(list(gather.keys)):
            return f"non-JSON keys of map {gather.name!r}"
    return None


def _maps(specs: Sequence[TaskSpec]) -> dict[str, list[Any]]:
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
    """The encoded run, built task by task: option profiles, code blobs, task records and
    payloads, in the layout of submit_run.lua (a few strings, not arguments per task).

    Payload JSON is assembled from pieces rather than a dict per task and one ``json`` call,
    but every piece comes from the json module: strings through `_quote` (the json
    encoder's own string quoting, C code), values (items, constants, lists) through
    `to_json`; only the fixed keys are written here. `payload.decode_payload` reads it like
    any other JSON.
    """

    run_id: str
    config: RedisConfig
    secret: bytes | None
    json_mode: bool
    queue: str | None
    backoff_ms: int
    index: dict[str, int]  # task id -> position; its job id is "<run id>.<position>"
    max_stalls: int | None  # the tasks' default (None: the engine's)
    profiles: dict[tuple[Any, ...], int] = field(default_factory=dict)
    codes: list[tuple[str, bytes]] = field(default_factory=list)
    # the records' columns (submit_run.lua), a value per task
    tasks: list[str] = field(default_factory=list)
    profile_of: list[int] = field(default_factory=list)
    parents: list[int] = field(default_factory=list)
    sizes: list[int] = field(default_factory=list)
    inputs: list[str] = field(default_factory=list)
    payloads: list[str] = field(default_factory=list)  # latin-1 text (see `_payload`)
    _kids: list[list[str]] = field(default_factory=list)
    _options: dict[tuple[Any, ...], int] = field(default_factory=dict)
    _functions: dict[int, str] = field(default_factory=dict)
    _sources_of: dict[tuple[int, int], tuple[str, dict[str, Any], str]] = field(
        default_factory=dict)
    _lists: dict[tuple[str, ...], str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._kids = [[] for _ in self.index]
        self._head = '{"run":' + _quote(self.run_id) + ',"task":'
        self._json = ',"json":1' if self.json_mode else ""

    def link(self, specs: Sequence[TaskSpec], params: Mapping[str, Any]) -> None:
        """Check that every task's run params are given and list each task's children (a
        task's record names them, and they come after it)."""
        kids, index = self._kids, self.index
        for spec in specs:
            for name in spec.run_params:
                if name not in params:
                    raise InvalidOptionError(
                        "params", sorted(params), f"a value for {name!r} (task {spec.id!r})")
            task = spec.id
            for parent in spec.parents:
                kids[index[parent]].append(task)

    def add_all(self, specs: Sequence[TaskSpec]) -> None:
        """Encode the next tasks, in DAG order (their positions), after `link`: one loop with
        its names bound once, as a 100k-task submit spends microseconds per task here."""
        limit = self.config.max_payload_bytes
        payloads, bound = self.payloads, self._bound
        payload_of, profile_of = self._payload, self._profile
        tasks, profiles, parents = self.tasks.append, self.profile_of.append, self.parents.append
        sizes, inputs = self.sizes.append, self.inputs.append
        for spec in specs:
            task = spec.id
            payload = payload_of(spec)
            size = len(payload)
            if size > limit:
                raise SizeLimitError(f"payload of task {task!r}", size, limit,
                                     "pass big data through a task's result or a file path, "
                                     "not as a constant or map item")
            payloads.append(payload)
            tasks(task)
            profiles(profile_of(spec))
            parents(len(spec.parents))
            sizes(size)
            inputs(bound(spec)[2] if spec.bindings else "")

    def blob(self, start: int = 0, end: int | None = None) -> bytes:
        """The payloads of tasks ``start`` to ``end`` (default: all) concatenated, as bytes
        (each is held as text: see `_payload`)."""
        return "".join(self.payloads[start:end]).encode("latin-1")

    def records(self, start: int = 0, end: int | None = None) -> tuple[str, ...]:
        """The records of tasks ``start`` to ``end`` (default: all) as submit_run.lua's six
        columns: the task ids one per line, then profiles, parents counts, payload sizes,
        inputs and children in runs of equal values."""
        kids = self._kids[start:end]
        return ("\n".join(self.tasks[start:end]) + "\n", _runs(self.profile_of[start:end]),
                _runs(self.parents[start:end]), _runs(self.sizes[start:end]),
                _runs(self.inputs[start:end]), _runs([",".join(k) for k in kids]))

    def _profile(self, spec: TaskSpec) -> int:
        key = (spec.queue, spec.priority, spec.retries, spec.timeout, spec.allow_failure,
               spec.max_stalls)
        found = self._options.get(key)
        if found is None:
            queue = (self.queue if self.queue is not None and spec.queue == "default"
                     else spec.queue)
            timeout = "" if spec.timeout is None else repr(spec.timeout)
            stalls = spec.max_stalls if spec.max_stalls is not None else self.max_stalls
            profile = (queue, spec.priority, spec.retries + 1, self.backoff_ms, timeout,
                       "1" if spec.allow_failure else "0", "" if stalls is None else str(stalls))
            found = self._options[key] = self.profiles.setdefault(profile,
                                                                  len(self.profiles) + 1)
        return found

    def _function(self, fn: Callable[..., Any] | str) -> str:
        """The payload piece naming the function: its code digest or its import path."""
        piece = self._functions.get(id(fn))
        if piece is None:
            if isinstance(fn, str):
                piece = ',"path":' + to_json(fn)
            else:
                digest, blob = codec.code_blob(fn, cast(bytes, self.secret))
                self.codes.append((self.config.keys.code(digest), blob))
                piece = ',"code":' + _quote(digest)
            self._functions[id(fn)] = piece
        return piece

    def _payload(self, spec: TaskSpec) -> str:
        """The task's payload as text, one character per byte: its JSON is ASCII (the json
        module's quoting escapes the rest), and a pickled part is decoded as latin-1, so the
        text's length is the payload's size and `blob` encodes all of them at once."""
        parts = [self._head, _quote(spec.id), self._function(spec.fn), self._json]
        extra: dict[str, Any] = {}
        if spec.bindings:
            sources = self._bound(spec)
            parts.append(sources[0])
            extra.update(sources[1])
        if spec.item_param is not None and spec.map is not None:
            parts.append(',"item_param":' + _quote(spec.item_param))
            item = spec.map.item
            if type(item) is int:
                parts.append(',"item":' + str(item))
            elif codec.is_plain(item):
                parts.append(',"item":' + to_json(item))
            else:
                extra["item"] = item
        if spec.params:
            plain, other = split_plain(spec.params)
            if plain:
                parts.append(',"consts":' + to_json(plain))
            if other:
                extra["consts"] = other
        if spec.run_params:
            parts.append(',"need":' + self._names(spec.run_params))
        if spec.optional_params:
            parts.append(',"optional":' + self._names(spec.optional_params))
        if spec.positional:
            parts.append(',"positional":' + self._names(spec.positional))
        if spec.timeout is not None:
            parts.append(',"timeout":' + to_json(spec.timeout))
        if not extra:
            parts.append("}")
            return "".join(parts)
        parts.append(',"blob":1}')
        return attach_extra("".join(parts).encode(), extra, self.secret,
                            f"task {spec.id!r}").decode("latin-1")

    def _names(self, names: tuple[str, ...]) -> str:
        """A JSON list of parameter names (the same few lists recur across tasks)."""
        text = self._lists.get(names)
        if text is None:
            text = self._lists[names] = to_json(list(names))
        return text

    def _bound(self, spec: TaskSpec) -> tuple[str, dict[str, Any], str]:
        """`_sources` of a task with bindings, cached by the identity of its bindings and
        gathers (alive for the whole submit): the members of a map share their template's, so
        they are encoded once, except members that gather another map, which the builder gives
        a gathers tuple each (encoded per member, as any task)."""
        key = (id(spec.bindings), id(spec.gathers))
        sources = self._sources_of.get(key)
        if sources is None:
            sources = self._sources_of[key] = self._sources(spec)
        return sources

    def _sources(self, spec: TaskSpec) -> tuple[str, dict[str, Any], str]:
        """Parent and gather bindings, as job ids: the payload piece, the pickled part
        (gather keys that JSON cannot carry), and the record's inputs field: the positions
        of the parents whose results the task reads, comma-separated, when there are at most
        `INLINE_INPUTS` (the claim then brings their results along; else '')."""
        extra: dict[str, Any] = {}
        gathers = {g.name: g for g in spec.gathers}
        parents: dict[str, str] = {}
        lists: dict[str, list[str]] = {}
        keyed: dict[str, list[Any]] = {}
        for param, source in spec.bindings.items():
            gather = gathers.get(source)
            if gather is None:
                parents[param] = self._job(source)
                continue
            lists[param] = [self._job(m) for m in gather.members]
            if gather.keys is not None:
                keys = list(gather.keys)
                if codec.is_plain(keys):
                    keyed[param] = keys
                else:
                    extra.setdefault("gather_keys", {})[param] = keys
        piece = "".join([f',"{key}":' + to_json(value) for key, value in (
            ("parents", parents), ("gathers", lists), ("gather_keys", keyed)) if value])
        read = dict.fromkeys([*parents.values(), *(j for ids in lists.values() for j in ids)])
        inputs = ",".join(j.rsplit(".", 1)[1] for j in read) if len(read) <= INLINE_INPUTS else ""
        return piece, extra, inputs

    def _job(self, task: str) -> str:
        return f"{self.run_id}.{self.index[task]}"


def _runs(values: Sequence[Any]) -> str:
    """``values`` as a submit_run.lua column: a line "<count> <value>" per run of equal
    values, or, when fewer than two values share a run on average, "*" and a line per value
    (the script parses a line per run: half as many captures then)."""
    if sum(map(ne, values[1:], values[:-1])) * 2 >= len(values):  # runs - 1, counted in C
        return "*\n" + "\n".join(map(str, values)) + "\n"
    return "".join([f"{len(list(group))} {value}\n" for value, group in groupby(values)])
