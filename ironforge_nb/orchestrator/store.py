"""Big results off Redis: a result store (a directory, or any fsspec URL) and references.

A task result whose size reaches ``RedisConfig.result_threshold`` (1 MiB by default) is written
by the worker to the run's result store, and Redis keeps only a reference: ``REF_MAGIC`` then
JSON ``{url, size, sha256, format, run, task, job, ...}``. Below it, results stay in Redis.

Formats: a pandas DataFrame or Series goes as Parquet (pyarrow) when the frame allows it (unique
string column labels, columns Arrow can type; a Series as a one-column frame, its name kept),
else as the signed pickle Redis would have held; a numpy array (not of objects) as ``.npy``
(read with ``allow_pickle=False``); a pyarrow Table as an Arrow IPC file; anything else as its
usual encoding (signed pickle, or JSON in JSON mode). The reader checks the size and the
SHA-256 (while Arrow or numpy decode; a value is returned only once they match, a signed
pickle is decoded only then); a missing file is a `ResultMissingError` naming run, task and
place.

Layout: ``<root>/<namespace>/runs/<run>/<job>-<token>.<ext>``: the lease token in the name, so a
late attempt never overwrites the one whose completion was accepted. Encoders write straight
into the file (Parquet, ``.npy`` and Arrow IPC are streamed), so a result is never held whole
in memory as bytes a second time. Local files are written to a temp file (through an Arrow
``OSFile``, hashed by a thread as the file grows), fsynced and renamed; other filesystems get
an ``open(..., "wb")`` stream, hashed on the way (s3fs: a multipart upload, visible only
once complete; a file left half-written by a failed attempt carries that attempt's token and
is never referenced). Remote
filesystems are opened lazily in each process with ``skip_instance_cache`` (async ones such as
s3fs must not cross a fork); their options come from fsspec's ``FSSPEC_<PROTOCOL>_<OPTION>``
environment variables (e.g. ``FSSPEC_S3_ENDPOINT_URL``).

Cleanup (`cleanup`): a run's directory goes with the run (`Run.delete`, run retention), except
files other runs still hold. A cache hit reads the reference of the job that computed it (no
copy, no pin); when that job's run is deleted, the reference is handed to a run that reused it
(delete_runs.lua), which pins its file in ``Keys.result_pins``; the last holder's deletion
removes it. So a file lives as long as a run or a cache entry can still reach it.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, BinaryIO

from ironforge_nb.errors import ConfigError, ResultMissingError, TaskError

__all__ = ["REF_MAGIC", "ResultRef", "ResultStore", "is_ref", "load_ref", "maybe_store",
           "sweep"]

REF_MAGIC = b"\x00IFR1"


@dataclass(frozen=True)
class ResultRef:
    """Where a big result lives and how to check and decode it."""

    url: str
    size: int
    sha256: str
    format: str  # parquet | npy | arrow | blob (the usual encoding: signed pickle or JSON)
    run: str
    task: str
    job: str
    series: bool = False  # a Series stored as a one-column frame
    name: Any = None  # the Series' name

    def encode(self) -> bytes:
        return REF_MAGIC + json.dumps(asdict(self), separators=(",", ":")).encode()


def is_ref(blob: bytes) -> bool:
    """True for a reference written by `maybe_store` (never a JSON text or a signed pickle)."""
    return blob[: len(REF_MAGIC)] == REF_MAGIC


class ResultStore:
    """A root (a local directory, ``file://`` path or fsspec URL) holding result files."""

    def __init__(self, root: str) -> None:
        self.root = root.rstrip("/")
        self._local = _local_path(self.root)
        self._fs: Any = None

    def url(self, *parts: str) -> str:
        return "/".join([self.root, *parts])

    def write(self, url: str, data: bytes | memoryview) -> tuple[int, str]:
        """Write ``data`` at ``url`` (see `write_with`); returns (size, SHA-256 hex)."""
        return self.write_with(url, lambda fh: fh.write(data))

    def write_with(self, url: str, produce: Callable[[BinaryIO], object]) -> tuple[int, str]:
        """Let ``produce`` write the file at ``url``; returns (size, SHA-256 hex) of what it
        wrote. Local: a temp file, written through an Arrow ``OSFile`` when pyarrow is there
        (Arrow then encodes and writes without holding the GIL) and hashed by a thread that
        reads it as it grows (`_TailDigest`: the digest costs no time of its own, where a
        stream hashing each write took a third of a 100 MB frame's write), then fsynced and
        renamed (the file appears whole or not at all); fsspec: ``open(path, "wb")`` through a
        stream that counts and hashes what passes."""
        local = _local_path(url)
        if local is not None:
            local.parent.mkdir(parents=True, exist_ok=True)
            tmp = local.with_name(f".{local.name}.{os.getpid()}.tmp")
            try:
                with _open_native(tmp) as fh, _TailDigest(tmp) as digest:
                    produce(fh)
                    fh.flush()
                size, hexdigest = digest.size, digest.hexdigest()
                fd = os.open(tmp, os.O_RDONLY)
                try:
                    os.fsync(fd)
                finally:
                    os.close(fd)
                os.replace(tmp, local)
            finally:
                tmp.unlink(missing_ok=True)
            return size, hexdigest
        fs, path = _fs_of(url)
        with fs.open(path, "wb") as fh:
            sink = _Hashing(fh)
            produce(sink)  # type: ignore[arg-type]
        return sink.size, sink.hexdigest()

    def remove(self, urls: list[str]) -> None:
        """Delete these files (missing ones are fine)."""
        for url in urls:
            local = _local_path(url)
            if local is not None:
                local.unlink(missing_ok=True)
                continue
            fs, path = _fs_of(url)
            if fs.exists(path):
                fs.rm(path)

    def listdir(self, url: str) -> list[str]:
        """URLs of the files directly under ``url`` (none when it does not exist)."""
        return [found for found, _ in self.listing(url)]

    def rmdir(self, url: str) -> None:
        """Remove the folder ``url`` if it is local and empty (object stores have none)."""
        local = _local_path(url)
        if local is not None:
            with contextlib.suppress(OSError):  # not empty: pinned files stay
                local.rmdir()

    def subdirs(self, url: str) -> list[tuple[str, str]]:
        """(URL, name) of the folders directly under ``url`` (none when it does not exist)."""
        local = _local_path(url)
        if local is not None:
            try:
                found = sorted(p.name for p in os.scandir(local) if p.is_dir())
            except FileNotFoundError:
                return []
            return [(f"{url}/{name}", name) for name in found]
        return [(entry_url, e["name"].rstrip("/").rsplit("/", 1)[-1])
                for entry_url, e in _remote_entries(url, "directory")]

    def listing(self, url: str) -> list[tuple[str, float]]:
        """(URL, modification time) of the files directly under ``url``, temp files of
        interrupted local writes included."""
        local = _local_path(url)
        if local is not None:
            try:
                found = sorted((p.name, p.stat().st_mtime) for p in os.scandir(local)
                               if p.is_file())
            except FileNotFoundError:
                return []
            return [(f"{url}/{name}", mtime) for name, mtime in found]
        return [(entry_url, _mtime(e)) for entry_url, e in _remote_entries(url, "file")]


def _remote_entries(url: str, kind: str) -> list[tuple[str, dict[str, Any]]]:
    """(URL, fsspec ``ls`` entry) of the ``kind`` ("file" or "directory") entries directly
    under the fsspec ``url``; none when it does not exist."""
    fs, path = _fs_of(url)
    protocol = url.split("://", 1)[0]
    try:
        listed = fs.ls(path, detail=True, refresh=True)
    except FileNotFoundError:
        return []
    return [(f"{protocol}://{e['name']}", e) for e in listed if e.get("type") == kind]


def _mtime(entry: dict[str, Any]) -> float:
    """An fsspec listing entry's modification time (seconds), whatever the backend calls it;
    0 when it has none (such a file counts as old)."""
    for name in ("mtime", "LastModified", "last_modified", "updated", "created"):
        value = entry.get(name)
        if value is None:
            continue
        if hasattr(value, "timestamp"):
            return float(value.timestamp())
        with contextlib.suppress(TypeError, ValueError):
            return float(value)
    return 0.0


def _open_native(path: Path) -> Any:
    """``path`` opened for writing: an Arrow ``OSFile`` when pyarrow is installed (Parquet and
    Arrow IPC are then written by Arrow alone, without the GIL), else a Python file."""
    try:
        import pyarrow as pa
    except ImportError:
        return open(path, "wb")
    return pa.OSFile(str(path), "wb")


class _TailDigest:
    """Size and SHA-256 of a file being written, read by a thread as it grows (from the page
    cache, in chunks of up to 1 MiB) and to its end once the context exits (the writer has
    closed it by then: ``with writer, _TailDigest(path)`` exits this one first, so exit it
    only after the writer flushed)."""

    def __init__(self, path: Path) -> None:
        import threading

        self.size = 0
        self._hash = hashlib.sha256()
        self._fh = open(path, "rb")  # noqa: SIM115 (closed by the thread)
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> _TailDigest:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._done.set()
        self._thread.join()

    def _run(self) -> None:
        with self._fh:
            while True:
                done = self._done.is_set()  # read before the chunk: no byte can be missed
                chunk = self._fh.read(1 << 20)
                if chunk:
                    self._hash.update(chunk)
                    self.size += len(chunk)
                elif done:
                    return
                else:
                    self._done.wait(0.002)

    def hexdigest(self) -> str:
        return self._hash.hexdigest()


class _Hashing(io.RawIOBase):
    """A write-only stream over ``target`` that counts and hashes every byte written."""

    def __init__(self, target: Any) -> None:
        super().__init__()
        self._target = target
        self._hash = hashlib.sha256()
        self.size = 0

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        view = memoryview(data).cast("B")
        self._hash.update(view)
        self._target.write(view)
        self.size += len(view)
        return len(view)

    def tell(self) -> int:
        return self.size

    def flush(self) -> None:
        self._target.flush()

    def hexdigest(self) -> str:
        return self._hash.hexdigest()


def _local_path(url: str) -> Path | None:
    if url.startswith("file://"):
        return Path(url[len("file://"):])
    if "://" not in url:
        return Path(url)
    return None


def _fs_of(url: str) -> tuple[Any, str]:
    """The fsspec filesystem of ``url`` (a fresh instance: async filesystems must not be shared
    across fork) and the path in it; a missing backend names the package to install."""
    try:
        import fsspec
    except ImportError:
        raise ConfigError(f"result store {url!r} needs fsspec: pip install fsspec "
                          "(or ironforge-nb[store])") from None
    protocol = url.split("://", 1)[0]
    try:
        fs, path = fsspec.core.url_to_fs(url, skip_instance_cache=True)
    except (ImportError, ValueError) as exc:
        package = {"s3": "s3fs", "gs": "gcsfs", "gcs": "gcsfs", "az": "adlfs",
                   "abfs": "adlfs"}.get(protocol, f"the fsspec backend of {protocol}://")
        raise ConfigError(f"result store {url!r}: {exc}; install {package} "
                          f"(pip install {package})") from None
    return fs, path


def check_store(url: str) -> str:
    """Validate a result store URL now (its backend importable), so that a bad setting fails
    at configuration, not at the first big result."""
    if _local_path(url) is None:
        _fs_of(url)
    return url


# ---------------------------------------------------------------------- writing


def maybe_store(config: Any, value: Any, blob_of: Any, *, run: str, task: str, job: str,
                token: str, json_mode: bool) -> bytes | None:
    """The reference of ``value`` written to ``config.result_store`` when it is big, else None.

    ``blob_of()`` returns the usual encoding (called at most once). DataFrames, Series, numpy
    arrays and Arrow tables are sized without encoding them; other values by their encoding.
    """
    root = getattr(config, "result_store", None)
    threshold = int(getattr(config, "result_threshold", 1 << 20))
    if not root or not run:
        return None
    produce, fmt, extra = _native(value, threshold)
    if produce is None:
        encoded = blob_of()
        if len(encoded) < threshold:
            return None
        fmt = "blob"

        def produce(fh: BinaryIO) -> None:
            fh.write(encoded)
    store = ResultStore(root)
    ext = {"parquet": "parquet", "npy": "npy", "arrow": "arrow"}.get(fmt, "bin")
    url = store.url(config.keys.namespace, "runs", run, f"{job}-{token}.{ext}")
    size, digest = store.write_with(url, produce)
    config.client().set(config.keys.run(run).store, store.root, nx=True)
    ref = ResultRef(url=url, size=size, sha256=digest, format=fmt, run=run, task=task, job=job,
                    **extra)
    return ref.encode()


Producer = Callable[[BinaryIO], object]


def _native(value: Any, threshold: int) -> tuple[Producer | None, str, dict[str, Any]]:
    """A writer of ``value`` in its native format (frames, arrays and tables at or above
    ``threshold``), or None: the caller uses the usual encoding."""
    module = type(value).__module__.split(".")[0]
    if module == "pandas":
        import pandas as pd

        if isinstance(value, pd.Series | pd.DataFrame) and _frame_bytes(value) >= threshold:
            series = isinstance(value, pd.Series)
            frame = pd.DataFrame({"__series__": value}) if series else value
            produce = _parquet(frame)
            if produce is not None:
                return produce, "parquet", ({"series": True, "name": _json_name(value.name)}
                                            if series else {})
    elif module == "numpy":
        import numpy as np

        if isinstance(value, np.ndarray) and value.dtype != object and value.nbytes >= threshold:
            return (lambda fh: np.save(fh, value, allow_pickle=False)), "npy", {}
    elif module == "pyarrow":
        import pyarrow as pa

        if isinstance(value, pa.Table) and value.nbytes >= threshold:
            def arrow(fh: BinaryIO) -> None:
                with pa.ipc.new_file(fh, value.schema) as writer:
                    writer.write_table(value)
            return arrow, "arrow", {}
    return None, "", {}


def _frame_bytes(value: Any) -> int:
    """Memory of a frame or series without looking into object cells (cheap)."""
    used = value.memory_usage(deep=False, index=True)
    return int(used.sum()) if hasattr(used, "sum") else int(used)


def _json_name(name: Any) -> Any:
    return name if name is None or isinstance(name, str | int | float | bool) else str(name)


def _parquet(frame: Any) -> Producer | None:
    """A writer of ``frame`` as Parquet (streamed into the file), or None when Parquet would
    not give it back (labels that are not unique strings, columns Arrow cannot type): the
    caller pickles it instead. The Arrow table is made here, before any file is opened."""
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        return None
    columns = list(frame.columns)
    if not all(isinstance(c, str) for c in columns) or len(set(columns)) != len(columns):
        return None
    try:
        table = pa.Table.from_pandas(frame, preserve_index=None)
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError, ValueError,
            TypeError):
        return None
    return lambda fh: pq.write_table(table, fh)


# ---------------------------------------------------------------------- reading


def load_ref(blob: bytes, secret: bytes | None, job_id: str | None, *,
             json_only: bool = False) -> Any:
    """The value a reference points at, after checking its size and digest.

    The SHA-256 is computed in a thread while the value is decoded (hashlib, Arrow and numpy
    release the GIL): a local Parquet or Arrow file is hashed in 1 MiB chunks as Arrow reads it
    (no copy of the file in memory), other files are read once and hashed and decoded from
    those bytes. On a 100 MB frame the check costs no pass of its own in wall time. The value
    is returned only once the digest matches; a signed pickle (``blob``) is decoded after the
    check, and a decoding error of a file that does not match its reference is reported as
    that mismatch.
    """
    ref = ResultRef(**json.loads(blob[len(REF_MAGIC):]))
    local = _local_path(ref.url)
    try:
        if local is not None and ref.format in ("parquet", "arrow"):
            source: str | bytes = str(local)
            digest = _Digest(open(local, "rb"))  # noqa: SIM115 (the thread closes it)
        else:
            source = _read(ref.url)
            digest = _Digest(source)
    except FileNotFoundError:
        raise ResultMissingError(ref.run, ref.task, ref.url) from None
    try:
        value = None if ref.format == "blob" else _decode_native(ref, source)
    except Exception:
        if digest.matches(ref):
            raise
        value = None
    if not digest.matches(ref):
        raise TaskError(job_id, f"the result file of task {ref.task!r} ({ref.url}) does not "
                                f"match its reference (size {digest.size}, expected "
                                f"{ref.size}, or its digest differs): it was changed after it "
                                "was written")
    if ref.format == "blob":
        from ironforge_nb.orchestrator import codec

        assert isinstance(source, bytes)
        return codec.decode_value(source, secret, job_id, json_only=json_only)
    return value


class _Digest:
    """Size and SHA-256 of some bytes or of an open file (read in 1 MiB chunks, then closed),
    computed in a thread from construction on, while the caller decodes the same data."""

    def __init__(self, data: bytes | BinaryIO) -> None:
        import threading

        self.size = 0
        self._hash = hashlib.sha256()
        self._thread = threading.Thread(target=self._run, args=(data,), daemon=True)
        self._thread.start()

    def _run(self, data: bytes | BinaryIO) -> None:
        if isinstance(data, bytes):
            self._hash.update(data)
            self.size = len(data)
            return
        with data:
            while chunk := data.read(1 << 20):
                self._hash.update(chunk)
                self.size += len(chunk)

    def matches(self, ref: ResultRef) -> bool:
        self._thread.join()
        return self.size == ref.size and self._hash.hexdigest() == ref.sha256


def _decode_native(ref: ResultRef, source: str | bytes) -> Any:
    """A Parquet, ``.npy`` or Arrow IPC file's value, from its path or its bytes."""
    if ref.format == "npy":
        import numpy as np

        assert isinstance(source, bytes)
        return np.load(io.BytesIO(source), allow_pickle=False)
    import pyarrow as pa

    if ref.format == "arrow":
        with (pa.OSFile(source) if isinstance(source, str)
              else pa.BufferReader(source)) as fh:
            return pa.ipc.open_file(fh).read_all()
    import pyarrow.parquet as pq

    frame = pq.read_table(source if isinstance(source, str)
                          else pa.BufferReader(source)).to_pandas()
    if ref.series:
        return frame["__series__"].rename(ref.name)
    return frame


def _read(url: str) -> bytes:
    local = _local_path(url)
    if local is not None:
        return local.read_bytes()
    fs, path = _fs_of(url)
    data: bytes = fs.cat_file(path)
    return data


# ---------------------------------------------------------------------- cleanup


def cleanup(config: Any, released: list[str], finished: list[tuple[str, str]]) -> None:
    """Delete the files of deleted runs (``finished``: run id and store root), except those
    still pinned by other runs, and the ``released`` files whose own run is gone."""
    client = config.client()
    keys = config.keys
    for run, root in finished:
        store = ResultStore(root)
        folder = store.url(keys.namespace, "runs", run)
        files = store.listdir(folder)
        pins = client.hmget(keys.result_pins, files) if files else []
        store.remove([f for f, pin in zip(files, pins, strict=True) if not pin])
        store.rmdir(folder)
    if not released:
        return
    gone = []
    for url in released:
        owner = url.rsplit("/", 2)[-2]  # .../runs/<run>/<file>
        pipe = client.pipeline(transaction=False)
        pipe.exists(keys.run(owner).meta)
        pipe.hexists(keys.runs_deleting, owner)
        if not any(pipe.execute()):
            gone.append(url)
    ResultStore("").remove(gone)


# ---------------------------------------------------------------------- orphans


def sweep(config: Any, older_than: float = 86400.0, *, dry_run: bool = False) -> list[str]:
    """Delete the files of ``config.result_store`` (this namespace's part) that nothing
    references any more and that are older than ``older_than`` seconds; returns their URLs
    (with ``dry_run``, only lists them).

    A file is kept while its run exists and one of the run's jobs' results names it, while a
    job of another run that was handed its reference pins it (``result-pins``), while its run
    is being deleted (its deleter removes it), and while it is younger than ``older_than`` (a
    worker writes the file before its completion names it). Everything else is an orphan:
    files of runs whose Redis state is gone (deleted by hand, a lost or flushed Redis, a
    deleter that died before removing them), files of results that have expired, and files of
    attempts whose completion was refused (a lease lost after the file was written).
    """
    root = getattr(config, "result_store", None)
    if not root:
        return []
    if older_than < 0:
        from ironforge_nb.errors import InvalidOptionError

        raise InvalidOptionError("older_than", older_than, "a number of seconds >= 0")
    client = config.client()
    keys = config.keys
    store = ResultStore(root)
    cutoff = time.time() - older_than
    orphans: list[str] = []
    emptied: list[str] = []
    for folder, run in store.subdirs(store.url(keys.namespace, "runs")):
        listed = store.listing(folder)
        old = [url for url, mtime in listed if mtime < cutoff]
        if not old:
            continue
        pipe = client.pipeline(transaction=False)
        pipe.exists(keys.run(run).meta)
        pipe.hexists(keys.runs_deleting, run)
        pipe.hmget(keys.result_pins, old)
        exists, deleting, pins = pipe.execute()
        if deleting:
            continue
        named = _named_files(config, run) if exists else set()
        dead = [url for url, pin in zip(old, pins, strict=True) if not pin and url not in named]
        orphans += dead
        if not exists and len(dead) == len(listed):
            emptied.append(folder)
    if not dry_run:
        store.remove(orphans)
        for folder in emptied:
            store.rmdir(folder)
    return orphans


def _named_files(config: Any, run: str) -> set[str]:
    """The file URLs the results of ``run``'s jobs reference (read in chunks)."""
    client = config.client()
    keys = config.keys
    jobs = [j.decode() for j in client.hvals(keys.run(run).tasks)]
    named: set[str] = set()
    for start in range(0, len(jobs), 1000):
        chunk = jobs[start:start + 1000]
        pipe = client.pipeline(transaction=False)
        for job in chunk:
            pipe.getrange(keys.result(job), 0, len(REF_MAGIC) - 1)
        refs = [job for job, head in zip(chunk, pipe.execute(), strict=True)
                if head == REF_MAGIC]
        pipe = client.pipeline(transaction=False)
        for job in refs:
            pipe.get(keys.result(job))
        for blob in pipe.execute():
            if blob is not None and is_ref(blob):
                named.add(json.loads(blob[len(REF_MAGIC):])["url"])
    return named
