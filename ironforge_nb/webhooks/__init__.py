"""Webhooks: signed HTTP notifications when jobs and runs finish (``ifn.webhooks``).

>>> import ironforge_nb as ifn
>>> ep = ifn.webhooks.register("https://example.com/hooks", events=["run.failed"])
>>> ifn.webhooks.verify(request.headers, request.body, ep.secret)   # on the receiver

The transition that completes a job, dead-letters it or ends a run adds the event to an outbox
in Redis in the same Lua script, for every endpoint whose filter matches, so no crash can lose
one. Dispatchers (inside every ``ironforge worker``, or ``ironforge webhooks``) claim due
deliveries under a lease and POST them signed the Standard Webhooks way, retrying on a
schedule of about a day. URLs pass an SSRF policy at registration and at every delivery.
Event types are `ironforge_nb.status.WebhookEvent`; payloads are thin: ids, names, status,
attempts, times and an error summary, never task results.
"""

from __future__ import annotations

from ironforge_nb.webhooks.dispatcher import SCHEDULE, Dispatcher
from ironforge_nb.webhooks.endpoints import (
    Endpoint,
    endpoints,
    get_endpoint,
    register,
    remove,
    rotate_secret,
)
from ironforge_nb.webhooks.outbox import deliveries, replay
from ironforge_nb.webhooks.policy import check_url
from ironforge_nb.webhooks.signing import new_secret, verify

__all__ = [
    "SCHEDULE",
    "Dispatcher",
    "Endpoint",
    "check_url",
    "deliveries",
    "endpoints",
    "get_endpoint",
    "new_secret",
    "register",
    "remove",
    "replay",
    "rotate_secret",
    "verify",
]
