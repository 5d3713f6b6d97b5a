"""The worker's pipe messages (`wire`) and how many leases a slot holds (`slots`)."""

from __future__ import annotations

import os

import pytest

from ironforge_nb.queue import Lease
from ironforge_nb.worker.slots import PREFETCH, Slot
from ironforge_nb.worker.wire import Readiness, decode, encode, lease_from, lease_tuple


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
