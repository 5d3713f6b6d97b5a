"""The package's Lua scripts: their source, read once from ``queue/lua/``, and `LuaScript`,
the one way every part of IronForge (queue, DAG runs, locks) calls a script.

Shared Lua code lives in helper files that are not scripts of their own: ``lua_source``
prepends them to the scripts that use them at load time (one copy of the logic, no include
preprocessor; error line numbers in those scripts are offset by the helpers' length).
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Sequence
from importlib import resources
from typing import Any

from redis.exceptions import NoScriptError

from ironforge_nb.queue.link import Link

__all__ = ["CLAIM_HELPER_USERS", "DELIVERY_HELPER_USERS", "LEASE_HELPER_USERS",
           "RUN_HELPER_USERS", "WALK_HELPER_USERS", "LuaScript", "lua_source"]

# lua/run_helpers.lua: the DAG-run bookkeeping (release children, skip descendants, settle
# the run) of every script that ends or creates tasks of a run.
# lua/lease_helpers.lua (which uses run_helpers): leases that end for free or as a stall.
LEASE_HELPER_USERS = frozenset({"reap_expired", "release_dead", "stall_job", "release_job",
                                "fail_job"})
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


@functools.cache
def lua_source(name: str) -> str:
    """Source of ``ironforge_nb/queue/lua/<name>.lua`` (package data), read once per process,
    with the helper files it uses first (`RUN_HELPER_USERS`, with outbox_helpers.lua before
    run_helpers.lua, then `LEASE_HELPER_USERS` or `WALK_HELPER_USERS`, then
    `CLAIM_HELPER_USERS`; `DELIVERY_HELPER_USERS`)."""
    parts = [(resources.files("ironforge_nb.queue") / "lua" / f"{name}.lua").read_text()]
    if name in CLAIM_HELPER_USERS:
        parts.insert(0, lua_source("claim_helpers"))
    if name in LEASE_HELPER_USERS:
        parts.insert(0, lua_source("lease_helpers"))
    if name in WALK_HELPER_USERS:
        parts.insert(0, lua_source("walk_helpers"))
    if name in RUN_HELPER_USERS:
        parts.insert(0, lua_source("run_helpers"))
        parts.insert(0, lua_source("outbox_helpers"))
    if name in DELIVERY_HELPER_USERS:
        parts.insert(0, lua_source("delivery_helpers"))
    return "\n".join(parts)


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
        self._source = lua_source(name)
        self._sha = hashlib.sha1(self._source.encode()).hexdigest()

    def __repr__(self) -> str:
        return f"<LuaScript {self.name} {self._sha[:10]}>"

    def __call__(self, keys: Sequence[Any], args: Sequence[Any]) -> Any:
        """Run the script by its SHA1 (by its source when Redis no longer has it)."""
        try:
            return self._link.call(("EVALSHA", self._sha, len(keys), *keys, *args))
        except NoScriptError:
            return self.eval(keys, args)

    def eval(self, keys: Sequence[Any], args: Sequence[Any]) -> Any:
        """Run the script by its source (which also caches it again in Redis).

        Also the better first choice for rare calls with megabytes of arguments (a DAG
        submit): a NOSCRIPT reply would make them cross the network twice, while the source
        adds a few KB and Redis reuses the script it compiled before.
        """
        return self._link.call(("EVAL", self._source, len(keys), *keys, *args))

    def after(self, wait: Sequence[Any], keys: Sequence[Any], args: Sequence[Any]) -> Any:
        """Run the script right after the blocking command ``wait`` (see `Link.wait_then`)."""
        reply = self._link.wait_then(wait, ("EVALSHA", self._sha, len(keys), *keys, *args))
        if isinstance(reply, NoScriptError):
            return self.eval(keys, args)
        if isinstance(reply, Exception):
            raise reply
        return reply
