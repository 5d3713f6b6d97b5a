"""The endpoint registry: who gets which events, with which secret, stored in Redis.

An endpoint's settings (URL, event filter, secrets, SSRF opt-out) are one JSON value in the
namespace's endpoints HASH; its filter alone is also in the routes HASH that the transition
scripts read (``queue/lua/outbox_helpers.lua``), so registering one is what turns
notifications on. Each change is one script (``register_endpoint``, ``remove_endpoint``,
``rotate_secret``): nothing is ever half-written.
"""

from __future__ import annotations

import json
import secrets as _random
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ironforge_nb.errors import InvalidOptionError, WebhookNotFoundError
from ironforge_nb.names import validate_name
from ironforge_nb.queue.config import RedisConfig, default_config
from ironforge_nb.queue.link import Link
from ironforge_nb.queue.scripting import LuaScript
from ironforge_nb.status import WebhookEvent
from ironforge_nb.webhooks.policy import Resolver, check_url
from ironforge_nb.webhooks.signing import new_secret, validate_secret

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["ROTATION_GRACE_S", "Endpoint", "endpoints", "get_endpoint", "live_secrets",
           "register", "remove", "rotate_secret"]

ROTATION_GRACE_S = 24 * 3600.0  # how long a rotated-out secret keeps signing, by default


@dataclass(frozen=True)
class Endpoint:
    """A registered webhook endpoint. ``secret`` is the current signing secret; ``secrets``
    every secret that still signs (newest first: more than one during a rotation's grace
    period). ``disabled`` says why deliveries stopped (a 410 answer), None while enabled."""

    id: str
    url: str
    events: tuple[WebhookEvent, ...]
    pipeline: str | None
    queue: str | None
    allow_private: bool
    created_ms: int
    secret: str = field(repr=False)
    secrets: tuple[str, ...] = field(repr=False, default=())
    disabled: str | None = None

    @property
    def filters(self) -> dict[str, Any]:
        """The filter transitions apply: event types, and pipeline and queue (None = any)."""
        return {"events": [str(e) for e in self.events], "pipeline": self.pipeline,
                "queue": self.queue}

    @classmethod
    def from_settings(cls, endpoint_id: str, settings: dict[str, Any]) -> Endpoint:
        """The endpoint stored as ``settings`` (the JSON of the endpoints HASH)."""
        keys = live_secrets(settings)
        return cls(id=endpoint_id, url=settings["url"],
                   events=tuple(WebhookEvent(e) for e in settings["events"]),
                   pipeline=settings.get("pipeline"), queue=settings.get("queue"),
                   allow_private=bool(settings.get("allow_private")),
                   created_ms=int(settings.get("created", 0)),
                   secret=keys[0] if keys else "", secrets=tuple(keys),
                   disabled=settings.get("disabled") or None)


def live_secrets(settings: dict[str, Any], now_ms: float | None = None) -> list[str]:
    """The secrets of ``settings`` that still sign, newest first."""
    now = time.time() * 1000 if now_ms is None else now_ms
    return [s["key"] for s in settings.get("secrets", [])
            if not s.get("expires") or s["expires"] > now]


def _events(events: Iterable[str] | None) -> list[str]:
    if events is None:
        return [str(e) for e in WebhookEvent]
    if isinstance(events, str):
        events = [events]
    chosen = list(dict.fromkeys(events))
    valid = [str(e) for e in WebhookEvent]
    bad = [e for e in chosen if e not in valid]
    if bad or not chosen:
        raise InvalidOptionError("events", list(events),
                                 f"a non-empty list of {', '.join(valid)}")
    return chosen


def _scripts(config: RedisConfig, name: str) -> LuaScript:
    return LuaScript(Link.of(config.client()), name)


def register(url: str, events: Iterable[str] | None = None, secret: str | None = None, *,
             allow_private: bool = False, pipeline: str | None = None,
             queue: str | None = None, config: RedisConfig | None = None,
             resolver: Resolver | None = None) -> Endpoint:
    """Register an endpoint for ``events`` (default: all of `WebhookEvent`), optionally only
    those of one ``pipeline`` (by name) or ``queue`` (job events only: runs span queues).

    ``secret`` defaults to a new ``whsec_...`` one (read it from the returned endpoint).
    The URL must pass the SSRF policy (`policy.check_url`; ``allow_private=True`` for a
    receiver on this machine or a private network, local development only); ``resolver`` is
    for tests and custom DNS. Raises `WebhookRejectedError` or `InvalidOptionError`, with
    nothing written.
    """
    config = config if config is not None else default_config()
    check_url(url, allow_private=allow_private, resolver=resolver)
    chosen = _events(events)
    key = new_secret() if secret is None else validate_secret(secret)
    for value, kind in ((pipeline, "pipeline"), (queue, "queue")):
        if value is not None:
            validate_name(value, kind)
    endpoint_id = "ep_" + _random.token_hex(6)
    settings = {"url": url, "events": chosen, "pipeline": pipeline, "queue": queue,
                "allow_private": bool(allow_private), "created": int(time.time() * 1000),
                "secrets": [{"key": key}]}
    endpoint = Endpoint.from_settings(endpoint_id, settings)
    keys = config.keys
    _scripts(config, "register_endpoint")(
        [keys.webhooks, keys.hooks.routes],
        [endpoint_id, json.dumps(settings), json.dumps(endpoint.filters)])
    return endpoint


def get_endpoint(endpoint_id: str, config: RedisConfig | None = None) -> Endpoint:
    """The endpoint ``endpoint_id``; raises `WebhookNotFoundError` if there is none."""
    config = config if config is not None else default_config()
    raw = config.client().hget(config.keys.webhooks, endpoint_id)
    if raw is None:
        raise WebhookNotFoundError("endpoint", endpoint_id, config.namespace)
    return Endpoint.from_settings(endpoint_id, json.loads(raw))


def remove(endpoint_id: str, config: RedisConfig | None = None) -> None:
    """Delete an endpoint: no new deliveries for it, and its pending ones are given up."""
    config = config if config is not None else default_config()
    keys = config.keys
    if not _scripts(config, "remove_endpoint")([keys.webhooks, keys.hooks.routes],
                                               [endpoint_id]):
        raise WebhookNotFoundError("endpoint", endpoint_id, config.namespace)


def rotate_secret(endpoint_id: str, *, grace: float = ROTATION_GRACE_S,
                  secret: str | None = None, config: RedisConfig | None = None) -> Endpoint:
    """Give the endpoint a new secret (``secret``, else a generated one); the current one
    keeps signing for ``grace`` seconds, so each delivery carries both signatures until then.
    Returns the endpoint, whose ``secret`` is the new one and ``secrets`` all that sign."""
    config = config if config is not None else default_config()
    if isinstance(grace, bool) or not isinstance(grace, int | float) or grace < 0:
        raise InvalidOptionError("grace", grace, "a number of seconds >= 0")
    key = new_secret() if secret is None else validate_secret(secret)
    reply = _scripts(config, "rotate_secret")([config.keys.webhooks],
                                              [endpoint_id, key, int(grace * 1000)])
    if isinstance(reply, list):
        raise WebhookNotFoundError("endpoint", endpoint_id, config.namespace)
    return Endpoint.from_settings(endpoint_id, json.loads(reply))


def endpoints(config: RedisConfig | None = None) -> pd.DataFrame:
    """The registered endpoints, one row each (secrets left out: notebooks get shared)."""
    import pandas as pd

    config = config if config is not None else default_config()
    raw = config.client().hgetall(config.keys.webhooks)
    rows = []
    for key, value in sorted(raw.items()):
        ep = Endpoint.from_settings(key.decode(), json.loads(value))
        rows.append({"id": ep.id, "url": ep.url, "events": ", ".join(map(str, ep.events)),
                     "pipeline": ep.pipeline, "queue": ep.queue,
                     "allow_private": ep.allow_private, "enabled": ep.disabled is None,
                     "disabled": ep.disabled, "secrets": len(ep.secrets),
                     "created": pd.Timestamp(ep.created_ms, unit="ms", tz="UTC")})
    columns = ["id", "url", "events", "pipeline", "queue", "allow_private", "enabled",
               "disabled", "secrets", "created"]
    return pd.DataFrame(rows, columns=columns).sort_values("created", ignore_index=True)
