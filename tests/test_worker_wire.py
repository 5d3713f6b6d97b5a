"""The worker's pipe messages (`wire`) and how many leases a slot holds (`slots`)."""

from __future__ import annotations

import multiprocessing
import os
import threading

import pytest

from ironforge_nb.queue import Lease
from ironforge_nb.worker.slots import PREFETCH, Slot
from ironforge_nb.worker.wire import Frames, Readiness, decode, encode, lease_from, lease_tuple


def test_lease_survives_the_pipe_encoding() -> None:
    """A lease flattened, encoded, decoded and rebuilt equals the original, meta included."""
    lease = Lease("r.1", "42", 2, b"\x00payload", "default", 1700, {"run": "r"}, "w1", 5000)
    back = lease_from(decode(encode(lease_tuple(lease))))
    assert back == lease and back.meta == {"run": "r"} and back.worker == "w1"


def test_readiness_sees_data_and_follows_the_watched_set() -> None:
    """A pipe with data is ready; an unwatched one is not reported any more."""
    r, w = os.pipe()
    try:
        ready = Readiness([r])
        assert ready.ready(0) == set()
        os.write(w, b"x")
        assert ready.ready(0) == {r}
        ready.watch([])
        assert ready.ready(0) == set()
    finally:
        os.close(r)
        os.close(w)


def test_frames_reads_every_message_sent_in_one_read() -> None:
    """Messages framed by ``send_bytes`` are all decoded by one `Frames.read`, in order; one
    larger than the pipe's buffer is read to its end; the writer's close sets `ended`."""
    reader, writer = multiprocessing.Pipe(duplex=False)
    frames = Frames(reader.fileno())
    try:
        for i in range(5):
            writer.send_bytes(encode(("outcome", i)))
        frames.read()
        assert list(frames.messages) == [("outcome", i) for i in range(5)]
        frames.messages.clear()
        big = b"x" * 300_000  # several pipe buffers: written by a thread while we read
        sender = threading.Thread(target=writer.send_bytes, args=(encode([big, None]),))
        sender.start()
        frames.read()
        sender.join()
        assert list(frames.messages) == [[big, None]] and not frames.ended
        frames.messages.clear()
        writer.close()
        frames.read()
        assert frames.ended and not frames.messages
    finally:
        reader.close()
        if not writer.closed:
            writer.close()


@pytest.mark.parametrize(("average", "free"), [
    (None, 1),  # no task finished yet: no prefetch
    (0.0001, 33),  # sub-millisecond tasks: the whole cap
    (0.005, 5),  # 5 ms tasks: 4 ahead (20 ms of work)
    (0.02, 1),  # 20 ms or more: none ahead
    (3.0, 1),
])
def test_slot_holds_about_20_ms_of_work_ahead(average: float | None, free: int) -> None:
    """An idle slot takes the running lease plus PREFETCH_WINDOW seconds of work at its recent
    average task duration, at most its prefetch cap; prefetch 0 holds the running one only."""
    slot = Slot(None, prefetch=PREFETCH)  # type: ignore[arg-type]  # free never touches proc
    slot._average = average
    assert PREFETCH == 32 and slot.free == free
    slot.prefetch = 0
    assert slot.free == 1
