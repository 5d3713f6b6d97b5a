"""Named locks in Redis that tell "held by another owner" apart from "Redis failed".

A lock is one STRING key (`Keys.lock`) holding its owner's random token, with a TTL so a crashed
owner cannot hold it forever. Acquire is ``SET NX PX`` (in `acquire_lock.lua`, which also treats
a retried acquire of a lock we already own as success). Release and extend are Lua scripts that
compare the token and act in one atomic step, so an owner whose lock expired can neither delete
nor revive the lock of the next owner.

`Lock.acquire` returns False *only* when another owner holds the lock. Any Redis failure
(connection refused, timeout, script error) is logged and raised as `LockError` chaining the
cause: a caller never mistakes an outage for contention.

A TTL-based lock is a lease, not a guarantee of mutual exclusion: an owner paused longer than
the TTL loses it (`extend` then returns False). Protect critical writes with a fencing check
where it matters, as the queue's job leases do.
"""

from __future__ import annotations

import logging
import secrets
import time
from types import TracebackType
from typing import Any

from redis.exceptions import RedisError

from ironforge_nb.errors import InvalidOptionError, LockError, LockTimeoutError
from ironforge_nb.queue.config import RedisConfig, default_config
from ironforge_nb.queue.link import Link
from ironforge_nb.queue.scripting import LuaScript

__all__ = ["Lock"]

logger = logging.getLogger("ironforge_nb.lock")

_MAX_POLL = 0.1  # longest sleep between two attempts of a blocking acquire, in seconds
_MIN_POLL = 0.005


def _ttl_ms(ttl: object) -> int:
    if isinstance(ttl, bool) or not isinstance(ttl, int | float) or not ttl > 0:
        raise InvalidOptionError("ttl", ttl, "a number of seconds > 0")
    return max(1, round(ttl * 1000))


class Lock:
    """A named lock in the config's namespace, held for at most ``ttl`` seconds.

    >>> with Lock("nightly-report", ttl=60, timeout=5):
    ...     build_report()

    ``timeout`` is how long ``with`` waits for the lock (``None``: as long as it takes) before
    raising `LockTimeoutError`. One `Lock` object is one owner; share it between threads only
    with your own synchronisation.
    """

    def __init__(
        self,
        name: str,
        ttl: float,
        config: RedisConfig | None = None,
        *,
        timeout: float | None = None,
    ) -> None:
        self.config = config if config is not None else default_config()
        self.name = name
        self.key = self.config.keys.lock(name)  # validates name and namespace
        self.ttl = ttl
        self._ttl_ms = _ttl_ms(ttl)
        if timeout is not None and (isinstance(timeout, bool) or not timeout >= 0):
            raise InvalidOptionError("timeout", timeout, "None or a number of seconds >= 0")
        self.timeout = timeout
        self.token: str | None = None
        # the client the scripts were bound to, and the scripts (rebound if the config's
        # client changes, e.g. after config.close())
        self._bound: tuple[Any, dict[str, LuaScript]] | None = None

    def __repr__(self) -> str:
        state = "owned" if self.token is not None else "not owned"
        return f"<Lock {self.name!r} ttl={self.ttl:g}s {state} ns={self.config.namespace!r}>"

    # -- operations ------------------------------------------------------------------------

    def acquire(self, blocking: bool = False, timeout: float | None = None) -> bool:
        """Take the lock; True if acquired, False only if another owner holds it.

        With ``blocking=True``, retry until acquired or ``timeout`` seconds have passed
        (``None``: no limit). Acquiring a lock this owner already holds refreshes its TTL.
        Raises `LockError` if Redis fails.
        """
        if timeout is not None and (isinstance(timeout, bool) or not timeout >= 0):
            raise InvalidOptionError("timeout", timeout, "None or a number of seconds >= 0")
        token = self.token or secrets.token_hex(16)
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            acquired, holder_ttl_ms = self._call("acquire_lock", token, self._ttl_ms)
            if acquired:
                self.token = token
                return True
            if not blocking:
                return False
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                return False
            # the holder's remaining TTL bounds the wait; poll anyway, it may release early
            pause = min(_MAX_POLL, max(_MIN_POLL, holder_ttl_ms / 1000))
            time.sleep(pause if remaining is None else min(pause, remaining))

    def release(self) -> bool:
        """Free the lock if this owner still holds it; False (nothing changed) otherwise."""
        if self.token is None:
            return False
        released = bool(self._call("release_lock", self.token))
        self.token = None
        return released

    def extend(self, ttl: float | None = None) -> bool:
        """Reset the lock's time to live to ``ttl`` (default: the lock's ``ttl``) from now.

        False if this owner no longer holds it (it expired, maybe taken by another owner).
        """
        if self.token is None:
            return False
        ttl_ms = self._ttl_ms if ttl is None else _ttl_ms(ttl)
        extended = bool(self._call("extend_lock", self.token, ttl_ms))
        if not extended:
            self.token = None
        return extended

    def locked(self) -> bool:
        """True if anyone (this owner or another) holds the lock right now."""
        try:
            return bool(self.config.client().exists(self.key))
        except (RedisError, OSError) as exc:
            raise self._failure("locked", exc) from exc

    def owned(self) -> bool:
        """True if this owner holds the lock right now (checked in Redis, not just locally)."""
        if self.token is None:
            return False
        try:
            value = self.config.client().get(self.key)
        except (RedisError, OSError) as exc:
            raise self._failure("owned", exc) from exc
        if isinstance(value, bytes):
            value = value.decode()
        return bool(value == self.token)

    def __enter__(self) -> Lock:
        if not self.acquire(blocking=True, timeout=self.timeout):
            assert self.timeout is not None  # without a timeout, acquire waits until it wins
            raise LockTimeoutError(self.name, self.timeout)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if not self.release():
            logger.warning(
                "lock %r (namespace %r) expired before the end of its `with` block: "
                "another owner may have run concurrently; use a longer ttl or extend()",
                self.name,
                self.config.namespace,
            )

    # -- internals -------------------------------------------------------------------------

    def _call(self, script: str, *args: object) -> Any:
        """Run one lock script (a `LuaScript`: EVALSHA, else EVAL on NOSCRIPT, so a racing
        SCRIPT FLUSH never reaches the caller); Redis errors become LockError."""
        try:
            client = self.config.client()
            if self._bound is None or self._bound[0] is not client:
                link = Link.of(client)
                self._bound = (client, {name: LuaScript(link, name) for name in
                                        ("acquire_lock", "release_lock", "extend_lock")})
            return self._bound[1][script]([self.key], args)
        except (RedisError, OSError) as exc:
            raise self._failure(script, exc) from exc

    def _failure(self, operation: str, exc: BaseException) -> LockError:
        logger.error(
            "lock %r (namespace %r): %s failed: %s: %s",
            self.name,
            self.config.namespace,
            operation,
            type(exc).__name__,
            exc,
        )
        return LockError(
            f"Redis failed during {operation} of lock {self.name!r} "
            f"(namespace {self.config.namespace!r}): {type(exc).__name__}: {exc}"
        )
