"""The delivery side of the outbox: claim, settle and replay deliveries, list them, and build
the exact bytes each attempt sends.

A delivery is one event for one endpoint: a HASH written by the transition that the event
reports (``queue/lua/outbox_helpers.lua``), due in the outbox ZSET. Dispatchers claim due
deliveries under a lease (``claim_deliveries.lua``) and record each attempt's end
(``settle_delivery.lua``): delivered, retried later, or given up (dead); `replay` sends a
finished one again (``replay_delivery.lua``).
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from ironforge_nb.errors import DeliveryStateError, WebhookNotFoundError
from ironforge_nb.queue.config import RedisConfig, default_config
from ironforge_nb.queue.link import Link
from ironforge_nb.queue.scripting import LuaScript

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["KEEP", "Claimed", "DeliveryScripts", "deliveries", "iso_ms", "replay"]

KEEP = 1000  # delivered deliveries kept for `deliveries()`, and dead ones (oldest deleted)
_TIME_FIELDS = ("created", "finished")


def iso_ms(ms: int) -> str:
    """``ms`` since the epoch as an ISO 8601 UTC time with milliseconds."""
    when = datetime.fromtimestamp(ms / 1000, tz=UTC)
    return when.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"


@dataclass(frozen=True)
class Claimed:
    """A delivery leased to this dispatcher for one attempt."""

    id: str
    token: str
    attempt: int  # 1 for the first attempt
    endpoint_id: str
    settings: dict[str, Any]  # the endpoint's settings when claimed
    event: int  # the event number: the same for every attempt and every endpoint
    type: str
    created_ms: int
    data: dict[str, Any]

    def msg_id(self, namespace: str) -> str:
        """The ``webhook-id``: the same on every retry (and replay) of this event."""
        return f"msg_{namespace}_{self.event}"

    def body(self, namespace: str) -> bytes:
        """The JSON payload, byte for byte the same on every attempt."""
        data = dict(self.data, namespace=namespace)
        for name in _TIME_FIELDS:
            if isinstance(data.get(name), int | float) and data[name]:
                data[name] = iso_ms(int(data[name]))
        payload = {"type": self.type, "timestamp": iso_ms(self.created_ms), "data": data}
        return json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class DeliveryScripts:
    """The delivery scripts bound to one config's client and namespace."""

    def __init__(self, config: RedisConfig) -> None:
        link = Link.of(config.client())
        self._config = config
        self._keys = config.keys
        self._hooks = config.keys.hooks
        self._claim = LuaScript(link, "claim_deliveries")
        self._settle = LuaScript(link, "settle_delivery")
        self._replay = LuaScript(link, "replay_delivery")

    def claim(self, dispatcher: str, lease_ms: int, n: int) -> tuple[int, int, list[Claimed]]:
        """Lease up to ``n`` due deliveries: (earliest outbox time left or -1, server time ms,
        the claimed deliveries)."""
        k, h = self._keys, self._hooks
        reply = self._claim([h.outbox, k.webhooks, h.routes, h.dead],
                            [k.webhook_delivery_prefix, dispatcher, lease_ms, n,
                             uuid.uuid4().hex, KEEP])
        claimed = []
        for did, token, attempt, settings, event, etype, created, data in reply[2:]:
            endpoint_id = _text(did).split("-", 1)[1]
            claimed.append(Claimed(
                id=_text(did), token=_text(token), attempt=int(attempt),
                endpoint_id=endpoint_id, settings=json.loads(settings), event=int(event),
                type=_text(etype), created_ms=int(created), data=json.loads(data)))
        return int(reply[0]), int(reply[1]), claimed

    def settle(self, claimed: Claimed, outcome: str, *, delay_ms: int = 0,
               http_status: int | None = None, error: str = "") -> str | None:
        """Record the end of an attempt (outcome: delivered, retry, dead or disable);
        returns the delivery's new status, or None when the lease was lost (another
        dispatcher claimed it again: this attempt's outcome is not recorded)."""
        k, h = self._keys, self._hooks
        reply = self._settle(
            [k.webhook_delivery(claimed.id), h.outbox, h.delivered, h.dead, k.webhooks,
             h.routes],
            [claimed.id, claimed.token, outcome, delay_ms,
             "" if http_status is None else http_status, error, KEEP,
             k.webhook_delivery_prefix])
        if isinstance(reply[0], int) and reply[0] < 0:
            return None
        return _text(reply[0])

    def replay(self, delivery_id: str) -> None:
        """Send a dead or delivered delivery again (attempts start over)."""
        k, h = self._keys, self._hooks
        code, detail = self._replay(
            [k.webhook_delivery(delivery_id), h.outbox, h.delivered, h.dead], [delivery_id])
        if code == -1:
            raise WebhookNotFoundError("delivery", delivery_id, self._config.namespace)
        if code == -3:
            raise DeliveryStateError(delivery_id, _text(detail), "replay")


def replay(delivery_id: str, config: RedisConfig | None = None) -> None:
    """Send a delivery again (a dead one, after fixing the receiver; or a delivered one): it
    goes back to the outbox with its retry schedule restarted and the same ``webhook-id``.
    Raises `WebhookNotFoundError`, or `DeliveryStateError` if it is still on its way."""
    DeliveryScripts(config if config is not None else default_config()).replay(delivery_id)


_FIELDS = ("endpoint", "type", "status", "attempts", "last_status", "last_error", "error",
           "next", "delivered", "created", "event")
COLUMNS = ["delivery", "event", "type", "endpoint", "status", "attempts", "last_status",
           "error", "next_attempt", "delivered_at", "created"]


def deliveries(endpoint_id: str | None = None, config: RedisConfig | None = None,
               limit: int = KEEP) -> pd.DataFrame:
    """Deliveries, newest first: pending and in flight (the outbox), dead ones (ready for
    `replay`) and the recently delivered; at most ``limit`` of each kind. Columns: delivery,
    event (number; the ``webhook-id`` ends with it), type, endpoint, status, attempts,
    last_status (HTTP), error (the last attempt's, or why it was given up), next_attempt,
    delivered_at, created."""
    import pandas as pd

    config = config if config is not None else default_config()
    client, k, h = config.client(), config.keys, config.keys.hooks
    ids: list[bytes] = []
    for zset in (h.outbox, h.dead, h.delivered):
        ids += client.zrevrange(zset, 0, limit - 1)
    pipe = client.pipeline(transaction=False)
    for did in ids:
        pipe.hmget(k.webhook_delivery(_text(did)), _FIELDS)
    rows = []
    for did, values in zip(ids, pipe.execute() if ids else [], strict=True):
        d = dict(zip(_FIELDS, (None if v is None else _text(v) for v in values), strict=True))
        if d["endpoint"] is None or (endpoint_id is not None and d["endpoint"] != endpoint_id):
            continue
        rows.append({
            "delivery": _text(did), "event": int(d["event"] or 0), "type": d["type"],
            "endpoint": d["endpoint"], "status": d["status"], "attempts": int(d["attempts"] or 0),
            "last_status": int(d["last_status"]) if d["last_status"] else None,
            "error": d["error"] or d["last_error"] or None,
            "next_attempt": _when(d["next"] if d["status"] == "pending" else None),
            "delivered_at": _when(d["delivered"]), "created": _when(d["created"])})
    frame = pd.DataFrame(rows, columns=COLUMNS)
    return frame.sort_values(["created", "delivery"], ascending=False, ignore_index=True)


def _when(ms: str | None) -> Any:
    import pandas as pd

    return pd.Timestamp(int(ms), unit="ms", tz="UTC") if ms else pd.NaT
