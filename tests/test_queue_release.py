"""`Queue.release` (release_job.lua): a stopping worker hands a claimed job back at once."""

from __future__ import annotations

import pytest

from ironforge_nb.errors import JobStateError, LeaseLost
from ironforge_nb.queue import Queue, RedisConfig
from ironforge_nb.status import EventType, JobStatus


@pytest.fixture
def q(config: RedisConfig) -> Queue:
    """A queue named 'work' in this test's namespace."""
    return Queue("work", config)


def test_release_requeues_without_counting_the_attempt(q: Queue) -> None:
    """A released job is queued again at once with its attempt given back."""
    jid = q.enqueue(b"x")
    lease = q.dequeue("w1", timeout=0)
    assert lease is not None
    q.release(lease)
    info = q.info(jid)
    assert info.status is JobStatus.QUEUED and info.attempts == 0 and info.error is None
    again = q.dequeue("w2", timeout=0)
    assert again is not None and again.job_id == jid and again.attempt == 1


def test_released_job_goes_to_the_front_of_its_priority(q: Queue) -> None:
    """A released job is claimed before jobs that were queued behind it."""
    first = q.enqueue(b"1")
    q.enqueue(b"2")
    lease = q.dequeue("w1", timeout=0)
    assert lease is not None and lease.job_id == first
    q.release(lease)
    again = q.dequeue("w2", timeout=0)
    assert again is not None and again.job_id == first


def test_release_fences_the_old_lease(q: Queue) -> None:
    """After a release, the releasing worker's lease is refused."""
    q.enqueue(b"x")
    lease = q.dequeue("w1", timeout=0)
    assert lease is not None
    q.release(lease)
    with pytest.raises(LeaseLost):
        q.complete(lease, b"late")


def test_release_refuses_a_job_that_is_not_active(q: Queue) -> None:
    """Releasing a cancelled job is a JobStateError naming its status."""
    jid = q.enqueue(b"x")
    lease = q.dequeue("w1", timeout=0)
    assert lease is not None
    q.cancel(jid)
    with pytest.raises(JobStateError, match="cancelled"):
        q.release(lease)


def test_release_appends_a_released_event(q: Queue) -> None:
    """The release is visible in the queue's event stream, naming the worker."""
    jid = q.enqueue(b"x")
    lease = q.dequeue("w1", timeout=0)
    assert lease is not None
    q.release(lease)
    last = q.events()[-1]
    assert (last.type, last.job, last.status, last.worker) == (
        EventType.RELEASED, jid, JobStatus.QUEUED, "w1")
