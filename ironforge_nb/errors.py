"""Every error IronForge NB raises, under one root.

Errors carry their evidence as attributes (the cycle, the job id, the limit and the size), so
callers and notebooks can act on them without parsing messages::

    IronForgeError
    ├── ValidationError (ValueError)         bad input, rejected before anything is written
    │   ├── InvalidNameError                 .kind .name
    │   ├── InvalidOptionError               .option .value
    │   ├── SizeLimitError                   .what .size .limit
    │   ├── CycleError (graphlib.CycleError) .cycle
    │   ├── DuplicateTaskError               .task
    │   ├── UnknownTaskError                 .task .missing .suggestions
    │   ├── SelfDependencyError              .task
    │   └── WebhookRejectedError             .url .reason: refused by the SSRF policy, bad URL
    ├── ConfigError                          missing secret, bad URL, unusable setting
    ├── ServerError                          the embedded redis-server could not start
    ├── RenderError
    │   ├── GraphvizNotFoundError            .source (the DOT text, still usable)
    │   └── LayoutTimeoutError               .seconds .source
    ├── QueueError
    │   ├── JobNotFoundError (KeyError)      .job_id .script
    │   ├── JobStateError                    .job_id .status .script (not allowed now)
    │   ├── LeaseLost                        .job_id .script (stale token: the job moved on)
    │   └── ScriptError                      .script .code .job_id (unexpected script reply)
    ├── LockError                            Redis failed while locking (chains the cause)
    ├── LockTimeoutError (TimeoutError)      .name .timeout: `with Lock(...)` waited in vain
    ├── SignatureError                       .job_id: unsigned or tampered pickled payload
    ├── TaskError                            .job_id: a task's inputs or result are unusable
    ├── RunError                             .run_id
    │   ├── RunNotFoundError                 .namespace: no such run (deleted, wrong id)
    │   ├── ResultMissingError               .task .location: a result file is gone
    │   ├── TaskFailedError                  .task .error
    │   ├── RunFailedError                   .status .failed .error (wait(raise_on_failure=True))
    │   ├── RunStateError                    .status .action (not allowed in this state)
    │   └── RunTimeoutError (TimeoutError)   .timeout
    └── WebhookError
        ├── WebhookNotFoundError (KeyError)  .kind .id: no such endpoint or delivery
        ├── DeliveryStateError               .delivery_id .status (replay while in flight)
        └── WebhookVerificationError         .check: which check of `verify` failed

Redis failures (``redis.exceptions.ConnectionError``, ``TimeoutError``...) are never swallowed:
they propagate as they are, or chained under ``LockError`` where the API promises a bool.
"""

from __future__ import annotations

import graphlib
from collections.abc import Sequence

__all__ = [
    "ConfigError",
    "CycleError",
    "DeliveryStateError",
    "DuplicateTaskError",
    "GraphvizNotFoundError",
    "InvalidNameError",
    "InvalidOptionError",
    "IronForgeError",
    "JobNotFoundError",
    "JobStateError",
    "LayoutTimeoutError",
    "LeaseLost",
    "LockError",
    "LockTimeoutError",
    "QueueError",
    "RenderError",
    "ResultMissingError",
    "RunError",
    "RunFailedError",
    "RunNotFoundError",
    "RunStateError",
    "RunTimeoutError",
    "ScriptError",
    "SelfDependencyError",
    "ServerError",
    "SignatureError",
    "SizeLimitError",
    "TaskError",
    "TaskFailedError",
    "UnknownTaskError",
    "ValidationError",
    "WebhookError",
    "WebhookNotFoundError",
    "WebhookRejectedError",
    "WebhookVerificationError",
]


class IronForgeError(Exception):
    """Root of every error raised by IronForge NB."""


class ValidationError(IronForgeError, ValueError):
    """Bad input, rejected before anything was written anywhere."""


class InvalidNameError(ValidationError):
    """A queue, task, pipeline or namespace name that would break the Redis key layout."""

    def __init__(self, kind: str, name: object, reason: str) -> None:
        self.kind = kind
        self.name = name
        super().__init__(f"invalid {kind} name {name!r}: {reason}")


class InvalidOptionError(ValidationError):
    """An option outside its allowed range, e.g. ``max_attempts=0``."""

    def __init__(self, option: str, value: object, expected: str) -> None:
        self.option = option
        self.value = value
        super().__init__(f"invalid {option}={value!r}: expected {expected}")


class SizeLimitError(ValidationError):
    """A payload or result larger than the configured limit."""

    def __init__(self, what: str, size: int, limit: int, hint: str = "") -> None:
        self.what = what
        self.size = size
        self.limit = limit
        msg = f"{what} is {size:,} bytes, over the limit of {limit:,} bytes"
        super().__init__(f"{msg}; {hint}" if hint else msg)


class CycleError(ValidationError, graphlib.CycleError):
    """The graph has a cycle; ``.cycle`` lists it with the first node repeated at the end."""

    def __init__(self, cycle: Sequence[object]) -> None:
        self.cycle = list(cycle)
        shown = " -> ".join(map(str, self.cycle))
        super().__init__(f"the graph has a cycle: {shown}")


class DuplicateTaskError(ValidationError):
    """Two tasks with the same id in one pipeline."""

    def __init__(self, task: str) -> None:
        self.task = task
        super().__init__(
            f"task {task!r} is defined twice; give the second one another name"
        )


class UnknownTaskError(ValidationError):
    """A dependency on (or a lookup of) a task that does not exist."""

    def __init__(self, task: str | None, missing: str, suggestions: Sequence[str] = ()) -> None:
        self.task = task
        self.missing = missing
        self.suggestions = list(suggestions)
        where = f"task {task!r} depends on" if task is not None else "no such task:"
        hint = f"; did you mean {', '.join(map(repr, self.suggestions))}?" if suggestions else ""
        super().__init__(f"{where} unknown task {missing!r}{hint}")


class SelfDependencyError(ValidationError):
    """A task listed as its own parent."""

    def __init__(self, task: str) -> None:
        self.task = task
        super().__init__(f"task {task!r} depends on itself; remove it from its own 'after'")


class ConfigError(IronForgeError):
    """A missing or unusable setting (secret, URL, namespace...)."""


class ServerError(IronForgeError):
    """The embedded redis-server could not be found or started."""


class RenderError(IronForgeError):
    """Turning a graph into an image failed."""


class GraphvizNotFoundError(RenderError):
    """The Graphviz ``dot`` binary is missing; ``.source`` still holds the DOT text."""

    INSTALL = (
        "install Graphviz: `sudo apt-get install graphviz` (Debian/Ubuntu), "
        "`brew install graphviz` (macOS) or `conda install -c conda-forge graphviz`"
    )

    def __init__(self, source: str) -> None:
        self.source = source
        super().__init__(f"the Graphviz 'dot' program was not found; {self.INSTALL}")


class LayoutTimeoutError(RenderError):
    """``dot`` ran longer than allowed; ``.source`` holds the DOT text."""

    def __init__(self, seconds: float, source: str) -> None:
        self.seconds = seconds
        self.source = source
        super().__init__(
            f"Graphviz layout did not finish within {seconds:g} s; render a smaller view with "
            "collapse='group' or collapse='level', or focus=<task> with depth=<k>"
        )


class QueueError(IronForgeError):
    """A queue operation was refused."""


class JobNotFoundError(QueueError, KeyError):
    """No job with this id in this namespace."""

    def __init__(self, job_id: str, script: str | None = None) -> None:
        self.job_id = job_id
        self.script = script
        where = f" ({script})" if script else ""
        super().__init__(f"no job {job_id!r}{where}")

    def __str__(self) -> str:
        return str(self.args[0])


class JobStateError(QueueError):
    """The job is not in a status that allows this operation."""

    def __init__(self, job_id: str, status: str, action: str, script: str | None = None) -> None:
        self.job_id = job_id
        self.status = status
        self.script = script
        super().__init__(f"cannot {action} job {job_id!r}: it is {status}")


class LeaseLost(QueueError):
    """The lease token is stale: the job expired and moved on; this worker's write is refused."""

    def __init__(self, job_id: str, script: str | None = None) -> None:
        self.job_id = job_id
        self.script = script
        where = f" in {script}" if script else ""
        super().__init__(
            f"lease on job {job_id!r} was lost{where}: it expired and the job was handed to "
            "another attempt; this result is discarded"
        )


class ScriptError(QueueError):
    """A Lua script replied with an error code the caller did not expect."""

    def __init__(self, script: str, code: int, job_id: str | None = None) -> None:
        self.script = script
        self.code = code
        self.job_id = job_id
        super().__init__(f"script {script} returned error code {code} for job {job_id!r}")


class LockError(IronForgeError):
    """Redis failed during a lock operation (never means 'held by someone else')."""


class LockTimeoutError(IronForgeError, TimeoutError):
    """Another owner held the lock for the whole wait (Redis itself worked fine)."""

    def __init__(self, name: str, timeout: float) -> None:
        self.name = name
        self.timeout = timeout
        super().__init__(
            f"lock {name!r} is held by another owner and was not acquired within "
            f"{timeout:g} s; wait longer (timeout=...) or find the holder"
        )


class SignatureError(IronForgeError):
    """A pickled payload is unsigned or its HMAC does not match: it is never unpickled."""

    def __init__(self, job_id: str | None, reason: str) -> None:
        self.job_id = job_id
        super().__init__(f"refusing to unpickle payload of job {job_id!r}: {reason}")


class TaskError(IronForgeError):
    """A task could not be prepared or finished: bad payload, a parent's result gone, a result
    that cannot be encoded. The attempt fails like any error raised by the task itself."""

    def __init__(self, job_id: str | None, message: str) -> None:
        self.job_id = job_id
        super().__init__(f"job {job_id!r}: {message}")


class RunError(IronForgeError):
    """A run did not produce what was asked."""

    def __init__(self, run_id: str, message: str) -> None:
        self.run_id = run_id
        super().__init__(message)


class ResultMissingError(RunError):
    """A big result's file is gone from the result store (deleted by hand, or a store that
    does not keep files); ``.task`` and ``.location`` name it. Running the task again (a new
    submit, or ``retry_failed``) writes it again."""

    def __init__(self, run_id: str, task: str, location: str) -> None:
        self.task = task
        self.location = location
        super().__init__(run_id, f"the result of task {task!r} of run {run_id!r} is missing "
                                 f"from the result store: {location} does not exist (deleted "
                                 "outside IronForge?); submit the pipeline again to recompute it")


class TaskFailedError(RunError):
    """A task failed for good; ``.error`` is its last error text."""

    def __init__(self, run_id: str, task: str, error: str) -> None:
        self.task = task
        self.error = error
        super().__init__(run_id, f"task {task!r} of run {run_id!r} failed: {error}")


class RunFailedError(RunError):
    """``run.wait(raise_on_failure=True)``: the run ended without succeeding. ``.status`` is its
    final status, ``.failed`` the names of its failed tasks, ``.error`` the first one's error
    (last line; None when the run was cancelled with no failure)."""

    def __init__(self, run_id: str, status: str, failed: Sequence[str],
                 error: str | None) -> None:
        self.status = status
        self.failed = list(failed)
        self.error = error
        if self.failed:
            more = f" (and {len(self.failed) - 1} more)" if len(self.failed) > 1 else ""
            why = f": task {self.failed[0]!r} failed{more}: {error}"
        else:
            why = ""
        super().__init__(run_id, f"run {run_id!r} {status}{why}; run.to_dataframe() shows "
                                 "every task, run.task(name).traceback the full error")


class RunNotFoundError(RunError):
    """No run with this id in the namespace: never submitted there, or deleted."""

    def __init__(self, run_id: str, namespace: str) -> None:
        self.namespace = namespace
        super().__init__(run_id, f"no run {run_id!r} in namespace {namespace!r}; check the id "
                                 "and the namespace (ifn.runs() lists recent runs)")


class RunStateError(RunError):
    """A run operation is not allowed in the run's current status (e.g. deleting a running
    run); ``.status`` is that status, ``.action`` the refused operation."""

    def __init__(self, run_id: str, status: str, action: str, hint: str = "") -> None:
        self.status = status
        self.action = action
        super().__init__(run_id, f"cannot {action} run {run_id!r}: it is {status}"
                                 + (f"; {hint}" if hint else ""))


class RunTimeoutError(RunError, TimeoutError):
    """``run.wait(timeout)`` gave up before the run ended (the run goes on)."""

    def __init__(self, run_id: str, timeout: float) -> None:
        self.timeout = timeout
        super().__init__(run_id, f"run {run_id!r} did not finish within {timeout:g} s")


class WebhookRejectedError(ValidationError):
    """A webhook URL refused at registration or delivery: not http(s), malformed, or its host
    resolves to an address the SSRF policy forbids (``.reason`` says which)."""

    def __init__(self, url: str, reason: str) -> None:
        self.url = url
        self.reason = reason
        super().__init__(f"webhook URL {url!r} refused: {reason}")


class WebhookError(IronForgeError):
    """A webhook operation failed."""


class WebhookNotFoundError(WebhookError, KeyError):
    """No webhook endpoint (``kind='endpoint'``) or delivery (``kind='delivery'``) with this id."""

    def __init__(self, kind: str, id: str, namespace: str) -> None:
        self.kind = kind
        self.id = id
        lister = "endpoints()" if kind == "endpoint" else "deliveries()"
        super().__init__(f"no webhook {kind} {id!r} in namespace {namespace!r} "
                         f"(ifn.webhooks.{lister} lists them)")

    def __str__(self) -> str:
        return str(self.args[0])


class DeliveryStateError(WebhookError):
    """The delivery's status does not allow this operation (replaying one still on its way)."""

    def __init__(self, delivery_id: str, status: str, action: str) -> None:
        self.delivery_id = delivery_id
        self.status = status
        super().__init__(f"cannot {action} webhook delivery {delivery_id!r}: it is {status}")


class WebhookVerificationError(WebhookError):
    """A received webhook failed `ifn.webhooks.verify`; ``.check`` is the check that failed:
    ``'headers'`` (missing or malformed), ``'timestamp'`` (more than 5 minutes away) or
    ``'signature'`` (no signature matches any of the secrets: tampered body or wrong secret)."""

    def __init__(self, check: str, message: str) -> None:
        self.check = check
        super().__init__(f"webhook refused ({check}): {message}")
