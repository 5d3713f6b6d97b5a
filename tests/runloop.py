"""An in-process worker loop for run tests that do not need the worker package.

`work` claims ready jobs, runs each with `execute_task` and completes or fails it exactly as
the worker contract says (a `SignatureError` fails the job for good), until no queue has work.
"""

from __future__ import annotations

import traceback
from collections.abc import Iterable

from ironforge_nb.errors import SignatureError
from ironforge_nb.orchestrator import codec
from ironforge_nb.orchestrator.execute import execute_task
from ironforge_nb.queue import Lease, Queue, RedisConfig

SECRET = b"runs-test-secret"


def run_one(queue: Queue, lease: Lease, *, secret: bytes | None = SECRET,
            json_only: bool = False) -> None:
    """Execute one claimed job and record its outcome."""
    try:
        result = execute_task(queue.config, lease, secret, json_only=json_only)
    except SignatureError as exc:
        queue.fail(lease, f"SignatureError: {exc}", retry=False)
    except Exception:
        queue.fail(lease, traceback.format_exc())
    else:
        queue.complete(lease, result)


def work(config: RedisConfig, queues: Iterable[str] = ("default",), *,
         secret: bytes | None = SECRET, json_only: bool = False, max_jobs: int = 100_000) -> int:
    """Run jobs until every queue is empty twice in a row; returns how many were run."""
    qs = [Queue(name, config) for name in queues]
    done = idle = 0
    while idle < 2 and done < max_jobs:
        leases = [(q, lease) for q in qs
                  for lease in q.dequeue_many("test-worker", 100, lease=30, timeout=0)]
        idle = 0 if leases else idle + 1
        for q, lease in leases:
            run_one(q, lease, secret=secret, json_only=json_only)
            done += 1
    return done


def use_test_secret() -> None:
    """Sign with `SECRET` in this process (what ``ifn.connect()`` does with its own)."""
    codec.set_default_secret(SECRET)
