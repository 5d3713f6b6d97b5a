"""`ResultCache`: an executor's own recent results, so that a child it runs next skips reading
its parents' results back from Redis.

In a chain, the job a completion claims (complete-and-fetch) is often the child of the job just
completed, sent to the same executor; without this cache its first step would be a round trip
to read the result the executor itself produced a moment earlier. An entry is usable only once
the worker has confirmed that its completion was accepted (`confirm`): a refused completion
(lease lost, job cancelled) never feeds a child. Confirmations travel with the next lease sent
to the executor, so a lease sent before the confirmation simply reads Redis as before.

Entries are small (results up to `MAX_BLOB` bytes), few (`MAX_ENTRIES`) and short-lived
(`TTL` seconds): a completed job's result never changes, but a run deleted and submitted again
under the same id reuses job ids, and the TTL bounds that window to a couple of seconds.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Iterable, Iterator, Mapping

__all__ = ["CACHE", "MAX_BLOB", "MAX_ENTRIES", "TTL", "ResultCache"]

MAX_ENTRIES = 256  # confirmed results kept (and as many unconfirmed ones)
MAX_BLOB = 64 * 1024  # bytes: bigger results are always read from Redis
TTL = 2.0  # seconds a confirmed result stays usable


class ResultCache(Mapping[str, bytes]):
    """Job id -> encoded result, for results whose completion was confirmed and is recent."""

    def __init__(self) -> None:
        self._pending: OrderedDict[str, bytes] = OrderedDict()
        self._confirmed: OrderedDict[str, tuple[float, bytes]] = OrderedDict()

    def add(self, job_id: str, blob: bytes | None) -> None:
        """Remember the result this process produced for ``job_id`` (not usable yet)."""
        if blob is None or len(blob) > MAX_BLOB:
            return
        self._pending[job_id] = blob
        if len(self._pending) > MAX_ENTRIES:
            self._pending.popitem(last=False)

    def confirm(self, job_ids: Iterable[str]) -> None:
        """The completions of ``job_ids`` were accepted: their results become usable."""
        now = time.monotonic()
        for job_id in job_ids:
            blob = self._pending.pop(job_id, None)
            if blob is not None:
                self._confirmed[job_id] = (now, blob)
                self._confirmed.move_to_end(job_id)
        while len(self._confirmed) > MAX_ENTRIES:
            self._confirmed.popitem(last=False)

    def __getitem__(self, job_id: str) -> bytes:
        at, blob = self._confirmed[job_id]
        if time.monotonic() - at > TTL:
            del self._confirmed[job_id]
            raise KeyError(job_id)
        return blob

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._confirmed))

    def __len__(self) -> int:
        return len(self._confirmed)


CACHE = ResultCache()  # one per executor process (each forks with an empty one)
