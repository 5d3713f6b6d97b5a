"""Loading and calling Lua scripts: their source, assembled once from ``queue/lua/``, and
`LuaScript`, the one way every part of IronForge (queue, DAG runs, locks, webhooks) calls a
script. The transitions themselves are wrapped in `queue.transitions` (one queue's jobs) and
`orchestrator.run_transitions` (runs).

Every script is sent as one text made of parts (no include preprocessor in Redis):

1. the prelude, generated here from Python (`constants`, `prelude`): the names
   ``JobStatus.X``, ``RunStatus.X``, ``EventType.X``, ``WebhookEvent.X``, ``DeliveryStatus.X``
   (from `ironforge_nb.status`), ``ErrorCode.X`` (from `queue.codes`), ``QueueKey.X`` (the queue
   keys' suffixes, `queue.keys`), ``JobKey.X`` (a job's own keys' suffixes, `queue.keys`
   ``JOB_<X>_SUFFIX``) and ``JobField.X`` (the job hash's fields, `queue.records`).
   Scripts spell a status, an event type or an error code only through these names
   (``tests/test_lua_prelude.py`` fails on a bare literal), so status.py stays the single
   source of the strings stored in Redis. At load time each name is replaced by its value
   (`expand`; an unknown name fails the load): Lua 5.1 has no constants, and tables of them
   built on every call cost ~2.4 µs per script call. The prelude itself is a comment listing
   the values;
2. ``common.lua``: the idioms every transition shares (Redis TIME in ms, the wait score, wake
   hints, the retry backoff, one event XADD);
3. the helper files the script uses (`HELPERS`), then the script itself.

Of parts 2 and 3 Redis gets only the definitions the script reaches, and the small helpers
(``now_ms``, ``add_event``, ``wait_score``, ``wake_workers``, ``run_key``...) written out where
they are called (`luatext`): every definition costs a closure, and every call of a helper a
Lua call, on each script call. Both keep each line where it was in its file.

Lua reports an error at a line of the assembled text (``user_script:<n>``); `LuaScript` maps that
line back to its file and line (`Assembly.locate`) and the error raised names them, e.g.
``claim_helpers.lua:97 (in claim_jobs)``.
"""

from __future__ import annotations

import functools
import hashlib
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields
from enum import Enum
from importlib import resources
from typing import Any

from redis.exceptions import NoScriptError, ResponseError

from ironforge_nb.queue import luatext
from ironforge_nb.queue.link import Link

__all__ = ["CLAIM_HELPER_USERS", "DELIVERY_HELPER_USERS", "HELPERS", "LEASE_HELPER_USERS",
           "RUN_HELPER_USERS", "WALK_HELPER_USERS", "Assembly", "LuaScript", "assemble",
           "constants", "expand", "lua_source", "prelude"]

# lua/run_helpers.lua: the DAG-run bookkeeping (release children, skip descendants, settle
# the run) of every script that ends or creates tasks of a run.
# lua/lease_helpers.lua (which uses run_helpers): leases that end for free or as a stall.
LEASE_HELPER_USERS = frozenset({"reap_expired", "release_dead", "stall_job", "release_job",
                                "fail_job", "release_claim"})
RUN_HELPER_USERS = frozenset({"complete_job", "fail_job", "cancel_job", "submit_run",
                              "cancel_run", "retry_run", "walk_run"}) | LEASE_HELPER_USERS
# lua/walk_helpers.lua (after run_helpers): the bounded walks of a run's cancel and retry.
WALK_HELPER_USERS = frozenset({"cancel_run", "retry_run", "walk_run"})
# lua/claim_helpers.lua: claim_ready, the claim of claim_jobs and of "complete and fetch next",
# and mark_started, the start of a held lease.
CLAIM_HELPER_USERS = frozenset({"claim_jobs", "complete_job", "start_jobs"})
# lua/delivery_helpers.lua: giving up a webhook delivery, trimming the delivery ZSETs.
DELIVERY_HELPER_USERS = frozenset({"claim_deliveries", "settle_delivery"})
# lua/outbox_helpers.lua (the webhook outbox) goes with run_helpers.lua, before it: the
# transitions that end jobs and runs are exactly the run helpers' users.

# helper file -> the scripts it is prepended to, in the order the files are assembled
HELPERS: tuple[tuple[str, frozenset[str]], ...] = (
    ("delivery_helpers", DELIVERY_HELPER_USERS),
    ("outbox_helpers", RUN_HELPER_USERS),
    ("run_helpers", RUN_HELPER_USERS),
    ("walk_helpers", WALK_HELPER_USERS),
    ("lease_helpers", LEASE_HELPER_USERS),
    ("claim_helpers", CLAIM_HELPER_USERS),
)


_TABLES = ("JobStatus", "RunStatus", "EventType", "WebhookEvent", "DeliveryStatus", "ErrorCode",
           "QueueKey", "JobKey", "JobField")
_NAME = re.compile(r"\b(" + "|".join(_TABLES) + r")\.([A-Za-z_]\w*)")


@functools.cache
def constants() -> dict[str, dict[str, str | int]]:
    """What the scripts' names stand for, generated from the Python definitions: table ->
    name -> value (``JobStatus`` -> ``ACTIVE`` -> ``'active'``...)."""
    from ironforge_nb.queue import keys
    from ironforge_nb.queue.codes import ErrorCode
    from ironforge_nb.queue.keys import QueueKeys
    from ironforge_nb.queue.records import RESERVED_FIELDS
    from ironforge_nb.status import (
        DeliveryStatus,
        EventType,
        JobStatus,
        RunStatus,
        WebhookEvent,
    )

    def enum(e: type[Enum]) -> dict[str, str | int]:
        return {name: (m.value if isinstance(m.value, str) else int(m.value))
                for name, m in e.__members__.items()}  # aliases too (codes.ErrorCode)

    table: dict[str, dict[str, str | int]] = {
        "JobStatus": enum(JobStatus),  # a job's `status`
        "RunStatus": enum(RunStatus),  # a run's `status`
        "EventType": enum(EventType),  # an event's `type`
        "WebhookEvent": enum(WebhookEvent),  # a webhook payload's `type`
        "DeliveryStatus": enum(DeliveryStatus),  # a webhook delivery's `status`
        "ErrorCode": enum(ErrorCode),  # the first element of a refusal reply {code, detail}
        # a queue key is queue_prefix .. <queue> .. ':' .. QueueKey.X
        "QueueKey": {f.name.upper(): f.name for f in fields(QueueKeys)},
        # a job's own keys are job_prefix .. <id> .. JobKey.X
        "JobKey": {name[4:-7]: getattr(keys, name) for name in keys.__all__
                   if name.startswith("JOB_") and name.endswith("_SUFFIX")},
        "JobField": {f.upper(): f for f in sorted(RESERVED_FIELDS)},  # the job hash's fields
    }
    for names in table.values():
        for value in names.values():
            if isinstance(value, str) and not re.fullmatch(r"[\w.:-]+", value):
                raise ValueError(f"{value!r} cannot be a Lua constant")
    return table


def _literal(value: str | int) -> str:
    return f"'{value}'" if isinstance(value, str) else f"({value})"


def expand(text: str, file: str = "<lua>") -> str:
    """``text`` with each ``Table.NAME`` of `constants` replaced by its value, as a Lua
    literal (on the same line: line numbers do not move). An unknown name is an error here,
    at load time, rather than a nil at run time."""
    table = constants()

    def repl(m: re.Match[str]) -> str:
        value = table[m.group(1)].get(m.group(2))
        if value is None:
            line = text.count("\n", 0, m.start()) + 1
            raise ValueError(f"{file}:{line}: {m.group(0)} is not defined (see "
                             "ironforge_nb/status.py, queue/codes.py, queue/keys.py, "
                             "queue/records.py)")
        return _literal(value)

    return _NAME.sub(repl, text)


@functools.cache
def prelude() -> str:
    """The first lines of every assembled script: what its constant names stood for (Lua
    comments: the names are replaced by literals at load time, `expand`, so that no script
    builds tables of constants on each call)."""
    lines = ["-- prelude: generated by ironforge_nb/queue/scripting.py from status.py, codes.py, "
             "keys.py and records.py; each Table.NAME below was replaced by its value\n"]
    for name, members in constants().items():
        body = ", ".join(f"{key} = {_literal(value)}" for key, value in members.items())
        lines.append(f"-- {name}: {body}\n")
    return "".join(lines)


def _read(name: str) -> str:
    return (resources.files("ironforge_nb.queue") / "lua" / f"{name}.lua").read_text()


@dataclass(frozen=True)
class Assembly:
    """The text sent for one script and where each of its lines comes from."""

    name: str
    source: str
    parts: tuple[tuple[int, str], ...]  # (first line in `source`, file name), in order

    def locate(self, line: int) -> tuple[str, int]:
        """The file and the line of that file of line ``line`` of `source` (1-based)."""
        where, first = "prelude (generated)", 1
        for start, file in self.parts:
            if start > line:
                break
            where, first = file, start
        return where, line - first + 1

    def explain(self, message: str) -> str:
        """``message`` of a Redis error with each ``user_script:<n>`` replaced by the file
        and line it points to, and the script named."""
        def repl(m: re.Match[str]) -> str:
            file, line = self.locate(int(m.group(1)))
            return f"{file}:{line} (in {self.name})"
        return re.sub(r"@?user_script:(\d+)", repl, message)


@functools.cache
def assemble(name: str) -> Assembly:
    """The prelude, common.lua, the helpers ``name`` uses (`HELPERS`) and ``name.lua``, with
    their constant names replaced by values (`expand`), the one-line helpers inlined and the
    definitions the script does not reach left out (`luatext`), every line where it was."""
    files = ["common", *(h for h, users in HELPERS if name in users), name]
    texts = [expand(_read(file), f"{file}.lua") for file in files]
    found = luatext.templates("\n".join(texts[:-1]))
    hidden = luatext.shadowed(texts, found)
    texts = [luatext.inline(text, found, hidden) for text in texts]
    texts = [*luatext.used(texts[:-1], texts[-1]), texts[-1]]
    text = prelude()
    parts = []
    line = text.count("\n") + 1
    for file, body in zip(files, texts, strict=True):
        if not body.endswith("\n"):
            body += "\n"
        parts.append((line, f"{file}.lua"))
        text += body
        line += body.count("\n")
    return Assembly(name, text, tuple(parts))


def lua_source(name: str) -> str:
    """Source sent to Redis for script ``name`` (see `assemble`)."""
    return assemble(name).source


class LuaScript:
    """One Lua script on a `Link`: EVALSHA, else EVAL of the source on NOSCRIPT.

    redis-py's `Script` answers NOSCRIPT (cache flushed, Redis restarted, failover to a new
    node) with SCRIPT LOAD and a second EVALSHA; a flush between the two reaches the caller as
    NoScriptError although Redis never failed (P1-2). EVAL loads and runs in one step, so it
    cannot be raced. Works on a Redis Cluster client too: `Link` then routes each command by
    its keys.
    """

    def __init__(self, link: Link, name: str) -> None:
        self.name = name
        self._link = link

    # Assembled at the first call, not when made: a `Queue` makes all of its scripts, and
    # assembling all 31 takes ~0.1 s, which a fresh executor or kernel would otherwise pay
    # before its first job for scripts it may never call. Once set, each is a plain attribute.
    @functools.cached_property
    def _assembly(self) -> Assembly:
        return assemble(self.name)

    @functools.cached_property
    def _source(self) -> str:
        return self._assembly.source

    @functools.cached_property
    def _sha(self) -> str:
        return hashlib.sha1(self._source.encode()).hexdigest()

    def __repr__(self) -> str:
        return f"<LuaScript {self.name} {self._sha[:10]}>"

    def _located(self, exc: ResponseError) -> ResponseError:
        """``exc`` with its message naming the Lua file and line (`Assembly.explain`)."""
        text = str(exc)
        if "user_script:" not in text:
            return exc
        located = type(exc)(self._assembly.explain(text))
        located.__cause__ = exc
        return located

    def __call__(self, keys: Sequence[Any], args: Sequence[Any]) -> Any:
        """Run the script by its SHA1 (by its source when Redis no longer has it)."""
        try:
            return self._link.call(("EVALSHA", self._sha, len(keys), *keys, *args))
        except NoScriptError:
            return self.eval(keys, args)
        except ResponseError as exc:
            raise self._located(exc)  # noqa: B904 (its __cause__ is set)

    def send(self, keys: Sequence[Any], args: Sequence[Any], *, by_source: bool = False
             ) -> Callable[[], Any]:
        """Send the script now (`Link.send`); returns the function that waits for its reply
        (by its source when Redis no longer had it), so that the caller works meanwhile.
        ``by_source``: sent as `eval` sends it (megabytes of arguments)."""
        head = ("EVAL", self._source) if by_source else ("EVALSHA", self._sha)
        pending = self._link.send((*head, len(keys), *keys, *args))

        def result() -> Any:
            try:
                return pending.result()
            except NoScriptError:
                return self.eval(keys, args)
            except ResponseError as exc:
                raise self._located(exc)  # noqa: B904 (its __cause__ is set)

        return result

    def eval(self, keys: Sequence[Any], args: Sequence[Any]) -> Any:
        """Run the script by its source (which also caches it again in Redis).

        Also the better first choice for rare calls with megabytes of arguments (a DAG
        submit): a NOSCRIPT reply would make them cross the network twice, while the source
        adds a few KB and Redis reuses the script it compiled before.
        """
        try:
            return self._link.call(("EVAL", self._source, len(keys), *keys, *args))
        except ResponseError as exc:
            raise self._located(exc)  # noqa: B904 (its __cause__ is set)

    def after(self, wait: Sequence[Any], keys: Sequence[Any], args: Sequence[Any]) -> Any:
        """Run the script right after the blocking command ``wait`` (see `Link.wait_then`)."""
        reply = self._link.wait_then(wait, ("EVALSHA", self._sha, len(keys), *keys, *args))
        if isinstance(reply, NoScriptError):
            return self.eval(keys, args)
        if isinstance(reply, ResponseError):
            raise self._located(reply)
        if isinstance(reply, Exception):
            raise reply
        return reply
