"""Bad input to the queue raises a specific error and writes nothing (DBSIZE unchanged)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from ironforge_nb.errors import (
    InvalidNameError,
    InvalidOptionError,
    SizeLimitError,
    ValidationError,
)
from ironforge_nb.queue import Queue, RedisConfig


@pytest.fixture
def small(quiet_config: RedisConfig) -> Any:
    """A queue whose payloads are limited to 16 bytes, with a primed connection, on a database
    of its own (`quiet_config`: its DBSIZE counts this test's writes only)."""
    cfg = RedisConfig(url=quiet_config.url, namespace=quiet_config.namespace,
                      max_payload_bytes=16)
    q = Queue("work", cfg)
    yield q
    cfg.close()


BAD_CALLS: dict[str, tuple[Callable[[Queue], Any], type[ValidationError]]] = {
    "queue name with colon": (lambda q: Queue("a:b", q.config), InvalidNameError),
    "queue name with brace": (lambda q: Queue("{x}", q.config), InvalidNameError),
    "empty queue name": (lambda q: Queue("", q.config), InvalidNameError),
    "job id with space": (lambda q: q.enqueue(b"", job_id="a b"), InvalidNameError),
    "job id too long": (lambda q: q.enqueue(b"", job_id="x" * 129), InvalidNameError),
    "str payload": (lambda q: q.enqueue("text"), InvalidOptionError),  # type: ignore[arg-type]
    "oversize payload": (lambda q: q.enqueue(b"x" * 17), SizeLimitError),
    "max_attempts 0": (lambda q: q.enqueue(b"", max_attempts=0), InvalidOptionError),
    "priority too high": (lambda q: q.enqueue(b"", priority=1001), InvalidOptionError),
    "priority float": (lambda q: q.enqueue(b"", priority=1.5), InvalidOptionError),  # type: ignore[arg-type]
    "negative delay": (lambda q: q.enqueue(b"", delay=-1), InvalidOptionError),
    "nan delay": (lambda q: q.enqueue(b"", delay=float("nan")), InvalidOptionError),
    "negative backoff": (lambda q: q.enqueue(b"", backoff=-0.5), InvalidOptionError),
    "reserved meta field": (lambda q: q.enqueue(b"", meta={"status": "x"}), InvalidNameError),
    "reserved meta inputs": (lambda q: q.enqueue(b"", meta={"inputs": "1"}), InvalidNameError),
    "meta value not str": (lambda q: q.enqueue(b"", meta={"n": 1}), InvalidOptionError),  # type: ignore[dict-item]
    "batch: last payload oversize": (
        lambda q: q.enqueue_batch([b"ok"] * 2500 + [b"x" * 17]), SizeLimitError),
    "batch: last payload str": (
        lambda q: q.enqueue_batch([b"ok"] * 10 + ["s"]), InvalidOptionError),  # type: ignore[list-item]
    "batch: chunk_size 0": (lambda q: q.enqueue_batch([b""], chunk_size=0), InvalidOptionError),
    "batch: ids count differs": (
        lambda q: q.enqueue_batch([b"", b""], job_ids=["a"]), InvalidOptionError),
    "batch: bad id": (lambda q: q.enqueue_batch([b""], job_ids=["a:b"]), InvalidNameError),
    "lease 0": (lambda q: q.dequeue("w", lease=0), InvalidOptionError),
    "negative timeout": (lambda q: q.dequeue("w", timeout=-1), InvalidOptionError),
    "empty worker": (lambda q: q.dequeue("", timeout=0), InvalidOptionError),
    "n 0": (lambda q: q.dequeue_many("w", 0, timeout=0), InvalidOptionError),
    "bad status": (lambda q: q.jobs("running"), InvalidOptionError),  # type: ignore[arg-type]
    "reap limit 0": (lambda q: q.reap(0), InvalidOptionError),
}


@pytest.mark.parametrize("case", sorted(BAD_CALLS))
def test_bad_input_raises_and_writes_nothing(small: Queue, case: str) -> None:
    """Each bad input raises its specific error before any write to Redis."""
    call, exc = BAD_CALLS[case]
    client = small.config.client()
    client.ping()
    before = client.dbsize()
    with pytest.raises(exc):
        call(small)
    assert client.dbsize() == before


@pytest.mark.parametrize(("value", "message"), [(1.5, 0.5), (-0.1, None), (0.5, 3)])
def test_bad_progress_writes_nothing(small: Queue, value: float, message: Any) -> None:
    """progress() refuses values outside [0, 1] and non-str messages, writing nothing."""
    small.enqueue(b"")
    lease = small.dequeue("w", timeout=0)
    assert lease is not None
    client = small.config.client()
    before = client.xlen(small.config.keys.queue("work").events)
    with pytest.raises(InvalidOptionError):
        small.progress(lease, value, message)
    assert client.xlen(small.config.keys.queue("work").events) == before
    assert small.info(lease.job_id).progress == 0.0


def test_size_error_names_size_and_limit(small: Queue) -> None:
    """SizeLimitError carries what, size and limit."""
    with pytest.raises(SizeLimitError) as err:
        small.enqueue(b"x" * 20)
    assert (err.value.what, err.value.size, err.value.limit) == ("payload", 20, 16)


def test_batch_with_a_repeated_job_id_is_refused(quiet_config: RedisConfig) -> None:
    """Two payloads under one client-chosen id are refused before any write."""
    q = Queue("dups", quiet_config)
    before = quiet_config.client().dbsize()
    with pytest.raises(InvalidOptionError, match="repeated"):
        q.enqueue_batch([b"first", b"second"], job_ids=["x", "x"])
    assert quiet_config.client().dbsize() == before


def test_events_with_a_malformed_since_is_refused(config: RedisConfig) -> None:
    """A malformed stream id gives a ValidationError, not a raw Redis error."""
    with pytest.raises(InvalidOptionError, match="since"):
        Queue("ev", config).events(since="garbage")
