"""The live monitor in a real browser: JupyterLab in headless Chromium, driven by Playwright.

A JupyterLab server starts on a free loopback port with a token; Chromium (Debian's package,
never a browser downloaded by Playwright) opens a notebook that connects, submits a 20-task
pipeline and calls ``run.monitor()``. The pipeline's first task waits for a file the test
writes only once the page shows the run under way, so the page is seen moving without any
timing assumption. The test then checks that the graph and the progress bars reach the
completed state, that the counts shown are the run's, and that no cell shows an error. It saves
screenshots under its temporary directory and prints their paths.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ironforge_nb.render.palette import STATUS_COLORS

ROOT = Path(__file__).resolve().parents[1]
ENSURE = ROOT / "scripts" / "ensure-chromium.sh"
CHROMIUM_FLAGS = [  # what works on a machine with a closed network, as root, without a GPU
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
TIMEOUT_MS = 90_000  # a loaded 2-core machine takes 20-30 s to load JupyterLab
GREEN = STATUS_COLORS["completed"]
UNFINISHED = "/" + "|".join(STATUS_COLORS[s] for s in (
    "waiting", "scheduled", "queued", "active", "failed")) + "/i"  # a JavaScript regex
SERVER_START = 60.0


def _chromium() -> str:
    """Chromium's path, installed by scripts/ensure-chromium.sh if missing; skip (with the
    script's reason) when it cannot be."""
    path = os.environ.get("IRONFORGE_CHROMIUM", "/usr/bin/chromium")
    if not os.access(path, os.X_OK):
        done = subprocess.run([str(ENSURE)], capture_output=True, text=True, check=False)
        if not os.access(path, os.X_OK):
            pytest.skip(f"no Chromium for the browser test: {done.stderr.strip()}")
    return path


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _notebook(gate: Path) -> Any:
    """The notebook the browser runs: connect, submit 20 tasks, monitor; then a check cell."""
    sources = [
        "import ironforge_nb as ifn\n\nconn = ifn.connect()",
        f"""import time
from pathlib import Path

GATE = Path({str(gate)!r})


def gate():
    deadline = time.monotonic() + 60
    while not GATE.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    return GATE.exists()


def work(item, gate):
    for _ in ifn.track(range(4), message="steps"):
        time.sleep(0.02)
    return item * 2


p = ifn.Pipeline("browser").task("gate", gate)
p.map("work", work, over=range(18), after="gate").then("total", sum)
run = p.submit()""",
        "run.monitor()",
        """import json

run.wait(timeout=60, progress=False)
print("RUN-COUNTS", json.dumps(run.counts()))
display(run)
conn.close()""",
    ]
    from nbformat.v4 import new_code_cell, new_notebook

    return new_notebook(cells=[new_code_cell(source) for source in sources], metadata={
        "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"}})


class Lab:
    """A JupyterLab server of this test's own: root dir, config and settings in tmp."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.port = _free_port()
        self.token = secrets.token_hex(16)
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = root / "jupyterlab.log"
        self.home = root / "ironforge-home"  # the kernel's ifn.connect() server, stopped after
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Lab:
        jupyter = self.root / ".jupyter"
        (jupyter / "config" / "labconfig").mkdir(parents=True)
        # No "get notified about Jupyter news?" toast over the screenshot.
        (jupyter / "config" / "labconfig" / "page_config.json").write_text(json.dumps(
            {"disabledExtensions": {"@jupyterlab/apputils-extension:announcements": True}}))
        env = {**os.environ, "IRONFORGE_HOME": str(self.home),
               "JUPYTER_CONFIG_DIR": str(jupyter / "config"),
               "JUPYTER_RUNTIME_DIR": str(jupyter / "runtime"),
               "IPYTHONDIR": str(jupyter / "ipython"), "JUPYTER_PLATFORM_DIRS": "1"}
        args = [sys.executable, "-m", "jupyterlab", "--no-browser", "--ip=127.0.0.1",
                f"--port={self.port}", "--ServerApp.port_retries=0",
                f"--IdentityProvider.token={self.token}", f"--ServerApp.root_dir={self.root}",
                "--allow-root", "--LabApp.expose_app_in_browser=True",
                f"--LabApp.workspaces_dir={jupyter / 'workspaces'}",
                f"--LabApp.user_settings_dir={jupyter / 'settings'}"]
        with self.log.open("wb") as log:
            self.proc = subprocess.Popen(args, cwd=self.root, env=env, stdout=log,
                                         stderr=subprocess.STDOUT, start_new_session=True)
        self._wait_ready()
        return self

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + SERVER_START
        while time.monotonic() < deadline:
            assert self.proc is not None
            if self.proc.poll() is not None:
                pytest.fail(f"JupyterLab exited: {self.log.read_text()[-3000:]}")
            try:
                self.api("GET", "/api/status")
                return
            except OSError:
                time.sleep(0.2)
        pytest.fail(f"JupyterLab did not answer in {SERVER_START} s: {self.log.read_text()}")

    def api(self, method: str, path: str) -> Any:
        request = urllib.request.Request(self.url + path, method=method,
                                         headers={"Authorization": f"token {self.token}"})
        with urllib.request.urlopen(request, timeout=10) as reply:
            body = reply.read()
        return json.loads(body) if body else None

    def stop(self) -> None:
        """Shut the server down through its API (it stops its kernels), stop the IronForge
        home's redis-server the kernel started, then make sure that no process is left: the
        kernel, and the workers a failed test left open."""
        import psutil

        from ironforge_nb.local.home import Home

        if self.proc is None:
            return
        try:
            tree = psutil.Process(self.proc.pid).children(recursive=True)
        except psutil.NoSuchProcess:  # it exited by itself (start failed)
            return
        try:
            self.api("POST", "/api/shutdown")
            self.proc.wait(timeout=20)
        except (OSError, subprocess.TimeoutExpired):
            self.proc.kill()
            self.proc.wait(timeout=10)
        Home(self.home).stop()
        _, alive = psutil.wait_procs(tree, timeout=10)
        for proc in alive:
            proc.kill()


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[Lab]:
    """A running JupyterLab serving ``tmp_path``; stopped with everything it started."""
    server = Lab(tmp_path)
    try:
        yield server.start()
    finally:
        server.stop()


@pytest.fixture
def page(tmp_path: Path) -> Iterator[Any]:
    """A Playwright page in headless Chromium (the system's binary, never a download)."""
    chromium = _chromium()
    sync_api = pytest.importorskip(
        "playwright.sync_api", reason="Playwright is missing: pip install -e '.[browser]'")
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium, args=CHROMIUM_FLAGS,
                                     headless=True)
        try:
            tab = browser.new_page(viewport={"width": 1280, "height": 1800})
            tab.set_default_timeout(TIMEOUT_MS)
            yield tab
            tab.screenshot(path=str(tmp_path / "last.png"))  # what the page showed at the end
        finally:
            browser.close()


def _run_cells(page: Any, first: int, last: int) -> None:
    """Run cells ``first..last`` of the open notebook, as Shift+Enter would."""
    page.evaluate("""([first, last]) => {
        const panel = window.jupyterapp.shell.currentWidget;
        panel.content.activeCellIndex = first;
        for (let i = first; i <= last; i++) {
            window.jupyterapp.commands.execute('notebook:run-cell-and-select-next');
        }
    }""", [first, last])


def _open_notebook(page: Any, lab: Lab, name: str) -> None:
    """Open the notebook in JupyterLab and wait until its kernel is ready."""
    page.goto(f"{lab.url}/lab/tree/{name}?token={lab.token}&reset")
    page.wait_for_function("""() => {
        const app = window.jupyterapp;
        const panel = app && app.shell.currentWidget;
        const session = panel && panel.sessionContext;
        return !!(session && session.session && session.session.kernel &&
                  session.session.kernel.status === 'idle');
    }""")
    page.evaluate("window.jupyterapp.shell.collapseLeft()")  # room for the outputs


def _error_outputs(page: Any) -> list[str]:
    """The text of every error or stderr output on the page, and of widgets that failed."""
    texts: list[str] = page.eval_on_selector_all(
        "[data-mime-type='application/vnd.jupyter.stderr'], "
        "[data-mime-type='application/vnd.jupyter.error'], .jp-OutputArea-output.jp-mod-error",
        "nodes => nodes.map(n => n.innerText)")
    body = page.inner_text("body")
    return texts + [line for line in body.splitlines() if "Error displaying widget" in line]


def _say(request: pytest.FixtureRequest, line: str) -> None:
    """Print a line in pytest's own output, captured or not."""
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        reporter.write_line(line)
    print(line)


def test_monitor_follows_a_run_live_in_jupyterlab(lab: Lab, page: Any, tmp_path: Path,
                                                  request: pytest.FixtureRequest) -> None:
    """In JupyterLab, ``run.monitor()`` shows the run under way while the kernel is idle, then
    its graph and bars reach the completed state with the run's own counts; no output is an
    error."""
    gate = tmp_path / "gate"
    (tmp_path / "monitor.ipynb").write_text(json.dumps(_notebook(gate)))
    _open_notebook(page, lab, "monitor.ipynb")
    _run_cells(page, 0, 2)
    monitor = page.locator(".ironforge-monitor")
    monitor.locator(".ironforge-monitor-status").wait_for()
    # The gate task holds the run: the page shows it under way before it can end.
    _wait_for_status(page, "running")
    under_way = _counts_shown(monitor.locator(".ironforge-monitor-counts").inner_text())
    gate.touch()
    _wait_for_status(page, "succeeded")
    page.wait_for_function(f"""() => {{  // the graph is redrawn at most about once a second
        const svg = document.querySelector('.ironforge-monitor-graph svg');
        return svg && svg.innerHTML.includes('{GREEN}') && !{UNFINISHED}.test(svg.innerHTML);
    }}""")
    # The browser applies the widgets' updates in order, but a last burst can take it a second
    # or two on a loaded machine (the header may read "succeeded" before the last rows do).
    page.wait_for_function("""() => {
        const bars = [...document.querySelectorAll(
            '.ironforge-monitor-overall .progress-bar, .ironforge-monitor-bar-fill')];
        const rows = [...document.querySelectorAll('.ironforge-monitor-task')];
        return bars.length > 0 && bars.every(bar => bar.style.width === '100%') &&
               rows.length > 0 && rows.every(row => row.innerText.includes('completed'));
    }""")
    shown = _counts_shown(monitor.locator(".ironforge-monitor-counts").inner_text())
    bars = page.eval_on_selector_all(  # the rows' bars, drawn in each row's HTML
        ".ironforge-monitor-task .ironforge-monitor-bar-fill", "bars => bars.map(b => "
        "b.style.width)")
    statuses = page.eval_on_selector_all(".ironforge-monitor-task", "rows => rows.map("
                                         "row => row.innerText)")
    _screenshots(request, page, monitor, tmp_path)

    _run_cells(page, 3, 3)
    printed = page.locator(".jp-OutputArea-output", has_text="RUN-COUNTS")
    printed.wait_for()
    counts = json.loads(printed.inner_text().split("RUN-COUNTS", 1)[1])
    table = page.locator(".jp-OutputArea-output table").last.inner_text()  # display(run)
    assert re.search(r"completed\s+20", table), table
    assert under_way.get("completed", 0) == 0 and sum(under_way.values()) == 20, under_way
    assert {k: v for k, v in counts.items() if v} == shown == {"completed": 20}
    assert _bar_percent(page, ".ironforge-monitor-overall") == 100.0
    assert len(bars) == 20 and set(bars) == {"100%"}, bars  # one per row
    assert len(statuses) == 20 and all("completed" in row for row in statuses), statuses
    assert page.locator(".ironforge-monitor-graph svg").count() == 1
    assert _error_outputs(page) == []


def _wait_for_status(page: Any, status: str) -> None:
    """Wait until the monitor's status text reads ``status``."""
    page.wait_for_function("""status => {
        const shown = document.querySelector('.ironforge-monitor-status');
        return !!shown && shown.innerText.includes(status);
    }""", arg=status)


def _counts_shown(text: str) -> dict[str, int]:
    """``{status: n}`` from the monitor's counts ("19 completed, 1 active")."""
    return {status: int(n.replace(",", ""))
            for n, status in re.findall(r"([\d,]+)\s+([a-z]+)", text)}


def _bar_percent(page: Any, selector: str) -> float:
    """How full the ipywidgets progress bar in ``selector`` is drawn, in percent."""
    width = page.eval_on_selector(f"{selector} .progress-bar", "bar => bar.style.width")
    return float(str(width).rstrip("%"))


def _screenshots(request: pytest.FixtureRequest, page: Any, monitor: Any,
                 tmp_path: Path) -> None:
    """The monitor alone and the whole JupyterLab window, saved and their paths printed."""
    monitor.screenshot(path=str(tmp_path / "monitor.png"))
    page.screenshot(path=str(tmp_path / "lab.png"))
    _say(request, f"browser test screenshots: {tmp_path / 'monitor.png'} "
                  f"{tmp_path / 'lab.png'}")


def test_chromium_install_script_says_why_it_failed(tmp_path: Path) -> None:
    """scripts/ensure-chromium.sh exits 1 with the reason and the install command when the
    Chromium it is pointed at does not exist (the browser test skips with that text)."""
    if shutil.which("bash") is None:
        pytest.skip("bash is not installed")
    done = subprocess.run([str(ENSURE)], capture_output=True, text=True, check=False,
                          env={**os.environ, "IRONFORGE_CHROMIUM": str(tmp_path / "none")})
    assert done.returncode == 1
    assert "IRONFORGE_CHROMIUM is set but is not an executable file" in done.stderr
    assert "apt-get install chromium" in done.stderr
