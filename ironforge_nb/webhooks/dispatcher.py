"""`Dispatcher`: sends the outbox's due deliveries, signed, with retries; and the dispatcher
process every worker runs beside its executors.

A dispatcher claims due deliveries under a lease (like jobs: two dispatchers never send the
same attempt, and one killed mid-delivery leaves its deliveries to another once the lease
ends), sends each from a small thread pool (a receiver that hangs, or trickles bytes, holds
one thread for at most ``timeout``, the deadline of the whole attempt), and records the
outcome: any 2xx delivers; 410 Gone disables the endpoint; 429 and 503 retry after their
``Retry-After``; anything else (another status, a redirect, a timeout, a refused connection,
a URL the SSRF policy now refuses) retries on `SCHEDULE`, with up to 20% jitter, and once the
schedule is used up the delivery is dead (listed by `deliveries()`, ready for `replay()`).

Every ``ironforge worker`` (and so every local worker of ``ifn.connect()``) runs one in a
process of its own (`worker.webhooks.DispatcherProcess`); ``ironforge webhooks`` runs one apart.

The retry schedule (the Standard Webhooks example): attempt 1 at once, then after 5 s, 5 min,
30 min, 2 h, 5 h, 10 h and 10 h: 8 attempts over about 28 hours.
"""

from __future__ import annotations

import logging
import os
import random
import socket
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

import redis.exceptions

from ironforge_nb.errors import InvalidOptionError, WebhookRejectedError
from ironforge_nb.queue.config import RedisConfig, default_config
from ironforge_nb.webhooks.endpoints import live_secrets
from ironforge_nb.webhooks.outbox import Claimed, DeliveryScripts
from ironforge_nb.webhooks.policy import Resolver, check_url
from ironforge_nb.webhooks.sender import Answer, send
from ironforge_nb.webhooks.signing import headers_for

__all__ = ["SCHEDULE", "Dispatcher"]

log = logging.getLogger("ironforge_nb.webhooks")

SCHEDULE: tuple[float, ...] = (5, 300, 1800, 7200, 18000, 36000, 36000)  # s between attempts
MAX_RETRY_AFTER = 24 * 3600.0  # a longer Retry-After is capped
_REDIS_DOWN = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError)


class Dispatcher:
    """Delivers the webhooks of ``config``'s namespace until `stop` (or ``run``'s event).

    ``concurrency`` deliveries at once; ``timeout`` seconds for one whole attempt (connect,
    TLS, request and answer: a receiver that trickles bytes is cut there too); ``lease``
    seconds a claimed delivery stays ours (longer than an attempt can take); ``schedule`` the
    delays between attempts (its length + 1 attempts in all); ``poll`` the longest sleep when
    nothing is due; ``resolver`` for tests and custom DNS.
    """

    def __init__(self, config: RedisConfig | None = None, *, name: str | None = None,
                 concurrency: int = 4, timeout: float = 15.0, lease: float = 120.0,
                 schedule: Sequence[float] = SCHEDULE, poll: float = 1.0,
                 resolver: Resolver | None = None) -> None:
        self.config = config if config is not None else default_config()
        self.name = name or f"{socket.gethostname()}-{os.getpid()}"
        if isinstance(concurrency, bool) or not isinstance(concurrency, int) or concurrency < 1:
            raise InvalidOptionError("concurrency", concurrency, "an int >= 1")
        for option, value in (("timeout", timeout), ("lease", lease), ("poll", poll)):
            if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
                raise InvalidOptionError(option, value, "a number of seconds > 0")
        if lease < 3 * timeout:
            raise InvalidOptionError("lease", lease, f"at least 3 x timeout ({3 * timeout:g} s)"
                                     ": an attempt must end before its lease does")
        if any(isinstance(d, bool) or not isinstance(d, int | float) or d < 0 for d in schedule):
            raise InvalidOptionError("schedule", schedule, "delays in seconds >= 0")
        self.concurrency, self.timeout, self.lease, self.poll = concurrency, timeout, lease, poll
        self.schedule = tuple(float(d) for d in schedule)
        self.resolver = resolver
        self.delivered = self.failed = 0  # attempts, since start
        self._scripts = DeliveryScripts(self.config)
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._lock = threading.Lock()
        self._busy = 0

    def __repr__(self) -> str:
        return (f"Dispatcher({self.name!r}, namespace={self.config.namespace!r}, "
                f"concurrency={self.concurrency})")

    def stop(self) -> None:
        """Claim nothing more; `run` returns once the attempts in flight have ended."""
        self._stop.set()
        self._wake.set()

    def run(self) -> None:
        """Deliver until `stop` is called (from a signal handler or another thread)."""
        with ThreadPoolExecutor(self.concurrency, thread_name_prefix="ifn-webhook") as pool:
            while not self._stop.is_set():
                wait = self._turn(pool)
                self._wake.wait(wait)
                self._wake.clear()

    def deliver_due(self) -> int:
        """Claim what is due now and deliver it before returning (one turn, for scripts and
        tests); returns how many attempts were made."""
        _, _, claimed = self._scripts.claim(self.name, int(self.lease * 1000), self.concurrency)
        for delivery in claimed:
            self._attempt(delivery)
        return len(claimed)

    def _turn(self, pool: ThreadPoolExecutor) -> float:
        """Claim for the idle threads; returns how long to sleep before the next turn."""
        with self._lock:
            free = self.concurrency - self._busy
        if free <= 0:
            return self.poll  # a finished attempt wakes us sooner
        try:
            next_ms, now_ms, claimed = self._scripts.claim(self.name, int(self.lease * 1000),
                                                           free)
        except _REDIS_DOWN as exc:
            log.warning("webhooks %s: Redis unavailable (%s); retrying in 1 s", self.name, exc)
            return 1.0
        for delivery in claimed:
            with self._lock:
                self._busy += 1
            pool.submit(self._attempt_in_pool, delivery)
        if len(claimed) == free:
            return self.poll  # every thread is busy: a finished attempt wakes us sooner
        return self.poll if next_ms < 0 else min(self.poll, max(0.0, (next_ms - now_ms) / 1000))

    def _attempt_in_pool(self, delivery: Claimed) -> None:
        try:
            self._attempt(delivery)
        except Exception:  # a bug or Redis down: the lease expires and another attempt follows
            log.exception("webhooks %s: delivery %s failed", self.name, delivery.id)
        finally:
            with self._lock:
                self._busy -= 1
            self._wake.set()

    def _attempt(self, delivery: Claimed) -> None:
        """Send one attempt and record its outcome."""
        answer = self._send(delivery)
        outcome, delay = self._outcome(delivery, answer)
        if answer.ok:
            self.delivered += 1
        else:
            self.failed += 1
        status = self._scripts.settle(delivery, outcome, delay_ms=int(delay * 1000),
                                      http_status=answer.status, error=answer.error)
        log.info("webhooks %s: %s %s attempt %d -> %s (%s)", self.name, delivery.type,
                 delivery.id, delivery.attempt, status or "lease lost",
                 answer.status if answer.ok else answer.error)

    def _send(self, delivery: Claimed) -> Answer:
        settings = delivery.settings
        try:
            target = check_url(settings["url"], allow_private=bool(settings.get("allow_private")),
                               resolver=self.resolver)
        except WebhookRejectedError as exc:
            return Answer(None, f"refused: {exc.reason}")
        ns = self.config.namespace
        body = delivery.body(ns)
        headers = headers_for(delivery.msg_id(ns), int(time.time()), body,
                              live_secrets(settings))
        return send(target, headers, body, self.timeout)

    def _outcome(self, delivery: Claimed, answer: Answer) -> tuple[str, float]:
        """(outcome for settle_delivery, delay before the next attempt in seconds)."""
        if answer.ok:
            return "delivered", 0.0
        if answer.status == 410:
            return "disable", 0.0
        if delivery.attempt > len(self.schedule):
            return "dead", 0.0
        if answer.status in (429, 503) and answer.retry_after is not None:
            return "retry", min(answer.retry_after, MAX_RETRY_AFTER)
        base = self.schedule[delivery.attempt - 1]
        return "retry", base * (1 + 0.2 * random.random())
