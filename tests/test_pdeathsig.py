"""`ironforge_nb.pdeathsig`: the one copy of the prctl(PR_SET_PDEATHSIG) code that executors
(worker/executor.py) and a kernel's redis-server and local workers (local/server.py) use, and
the process names a worker's processes take (prctl(PR_SET_NAME))."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from ironforge_nb.pdeathsig import pdeathsig_setter, set_pdeathsig

# The middle process starts a grandchild that sets its parent-death signal, prints its pid and
# sleeps; the middle process then waits forever, until the test SIGKILLs it.
_GRANDCHILD = (
    "import signal, sys, time\n"
    "from ironforge_nb.pdeathsig import set_pdeathsig\n"
    "ok = set_pdeathsig(signal.SIGTERM)\n"
    "print(int(ok), flush=True)\n"
    "time.sleep(60)\n"
)
_MIDDLE = (
    "import subprocess, sys, time\n"
    f"p = subprocess.Popen([sys.executable, '-c', {_GRANDCHILD!r}], stdout=subprocess.PIPE)\n"
    "print(p.pid, p.stdout.readline().decode().strip(), flush=True)\n"
    "time.sleep(60)\n"
)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as f:  # a zombie (reaped by init soon) is dead too
        return f.read().split(")")[-1].split()[0] != "Z"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux's")
def test_a_child_dies_with_its_parent() -> None:
    """A process that set its parent-death signal is killed when its parent is SIGKILLed."""
    middle = subprocess.Popen([sys.executable, "-c", _MIDDLE], stdout=subprocess.PIPE)
    assert middle.stdout is not None
    pid_text, ok = middle.stdout.readline().decode().split()
    pid = int(pid_text)
    assert ok == "1" and _alive(pid)
    middle.kill()
    middle.wait()
    deadline = time.monotonic() + 10
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(pid), "the grandchild outlived its parent"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux's")
def test_the_setter_is_available_on_linux() -> None:
    """On Linux libc is found: the executors and servers get their parent-death signal."""
    assert pdeathsig_setter() is not None
    assert set_pdeathsig(0)  # 0 clears it: this test process keeps living


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_NAME is Linux's")
def test_a_process_name_is_what_top_shows_cut_at_15_bytes() -> None:
    """`set_process_name` sets /proc/<pid>/comm (what top and ps -o comm show), keeping the
    first 15 bytes, as the kernel does."""
    code = ("from ironforge_nb.pdeathsig import set_process_name\n"
            "assert set_process_name('ifn-a-name-too-long-for-comm')\n"
            "print(open('/proc/self/comm').read().strip())\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, check=True)
    assert out.stdout.decode().strip() == "ifn-a-name-too-"
