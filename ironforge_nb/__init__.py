"""IronForge NB: build data workflows as DAGs in Jupyter and run them on a Redis queue engine.

>>> import ironforge_nb as ifn
>>> p = ifn.Pipeline("sales")

Names are imported on first use, so ``import ironforge_nb`` (or ``ironforge_nb.dag``) stays
light: Redis, pandas, Graphviz and ipywidgets load only when a feature needs them.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# public name -> module that defines it
_EXPORTS: dict[str, str] = {
    # errors and statuses
    "IronForgeError": "ironforge_nb.errors",
    "ValidationError": "ironforge_nb.errors",
    "CycleError": "ironforge_nb.errors",
    "LeaseLost": "ironforge_nb.errors",
    "LockError": "ironforge_nb.errors",
    "ConfigError": "ironforge_nb.errors",
    "GraphvizNotFoundError": "ironforge_nb.errors",
    "InvalidNameError": "ironforge_nb.errors",
    "InvalidOptionError": "ironforge_nb.errors",
    "LockTimeoutError": "ironforge_nb.errors",
    "RunError": "ironforge_nb.errors",
    "RunFailedError": "ironforge_nb.errors",
    "RunNotFoundError": "ironforge_nb.errors",
    "RunStateError": "ironforge_nb.errors",
    "RunTimeoutError": "ironforge_nb.errors",
    "SignatureError": "ironforge_nb.errors",
    "TaskFailedError": "ironforge_nb.errors",
    "UnknownTaskError": "ironforge_nb.errors",
    "JobStatus": "ironforge_nb.status",
    "RunStatus": "ironforge_nb.status",
    "Event": "ironforge_nb.status",
    "json_schema": "ironforge_nb.status",
    # building and drawing
    "DAG": "ironforge_nb.dag",
    "Pipeline": "ironforge_nb.dag",
    "render": "ironforge_nb.render",
    # the queue engine
    "RedisConfig": "ironforge_nb.queue",
    "Queue": "ironforge_nb.queue",
    "Lease": "ironforge_nb.queue",
    "Lock": "ironforge_nb.queue",
    "RedisServer": "ironforge_nb.local",
    # runs: submit a pipeline, follow it, list recent runs
    "submit": "ironforge_nb.orchestrator",
    "Run": "ironforge_nb.orchestrator",
    "runs": "ironforge_nb.orchestrator",
    "TaskState": "ironforge_nb.orchestrator.tasks",
    "RunMonitor": "ironforge_nb.widgets",
    "cache": "ironforge_nb.cache",
    # the namespace at a glance: queues, workers, recent runs, dead letters
    "dashboard": "ironforge_nb.widgets.dashboard",
    "Dashboard": "ironforge_nb.widgets",
    # running: connect, workers, progress from inside a task
    "connect": "ironforge_nb.local",
    "progress": "ironforge_nb.worker.context",
    "track": "ironforge_nb.worker.context",
    # webhooks: signed notifications when jobs and runs finish
    "webhooks": "ironforge_nb.webhooks",
    "WebhookEvent": "ironforge_nb.status",
}

__all__ = [
    "DAG",
    "ConfigError",
    "CycleError",
    "Dashboard",
    "Event",
    "GraphvizNotFoundError",
    "InvalidNameError",
    "InvalidOptionError",
    "IronForgeError",
    "JobStatus",
    "Lease",
    "LeaseLost",
    "Lock",
    "LockError",
    "LockTimeoutError",
    "Pipeline",
    "Queue",
    "RedisConfig",
    "RedisServer",
    "Run",
    "RunError",
    "RunFailedError",
    "RunMonitor",
    "RunNotFoundError",
    "RunStateError",
    "RunStatus",
    "RunTimeoutError",
    "SignatureError",
    "TaskFailedError",
    "TaskState",
    "UnknownTaskError",
    "ValidationError",
    "WebhookEvent",
    "__version__",
    "cache",
    "connect",
    "dashboard",
    "json_schema",
    "progress",
    "render",
    "runs",
    "submit",
    "track",
    "webhooks",
]

if TYPE_CHECKING:  # pragma: no cover - for type checkers and IDEs only
    from ironforge_nb import cache, render, webhooks
    from ironforge_nb.dag import DAG, Pipeline
    from ironforge_nb.errors import (
        ConfigError,
        CycleError,
        GraphvizNotFoundError,
        InvalidNameError,
        InvalidOptionError,
        IronForgeError,
        LeaseLost,
        LockError,
        LockTimeoutError,
        RunError,
        RunFailedError,
        RunNotFoundError,
        RunStateError,
        RunTimeoutError,
        SignatureError,
        TaskFailedError,
        UnknownTaskError,
        ValidationError,
    )
    from ironforge_nb.local import RedisServer, connect
    from ironforge_nb.orchestrator import Run, runs, submit
    from ironforge_nb.orchestrator.tasks import TaskState
    from ironforge_nb.queue import Lease, Lock, Queue, RedisConfig
    from ironforge_nb.status import Event, JobStatus, RunStatus, WebhookEvent, json_schema
    from ironforge_nb.widgets import Dashboard, RunMonitor
    from ironforge_nb.widgets.dashboard import dashboard
    from ironforge_nb.worker.context import progress, track


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'ironforge_nb' has no attribute {name!r}")
    imported = importlib.import_module(module)
    # A subpackage exported under its own name (``render``) is the subpackage itself.
    itself = module == f"{__name__}.{name}" and not hasattr(imported, name)
    value = imported if itself else getattr(imported, name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
