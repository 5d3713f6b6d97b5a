"""Workers: claim jobs, run them in executor processes, heartbeat, time out, stop gracefully.

``ironforge worker --url redis://... --queues default`` (or ``python -m ironforge_nb.worker``)
runs a `Worker`; `ifn.connect()` starts local workers with the same code. `list_workers` reads
the registry of a namespace's live workers.
"""

from __future__ import annotations

from ironforge_nb.worker.executor import Executor, Outcome
from ironforge_nb.worker.registry import WorkerInfo, list_workers
from ironforge_nb.worker.worker import Worker

__all__ = ["Executor", "Outcome", "Worker", "WorkerInfo", "list_workers"]
