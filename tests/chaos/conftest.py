"""The chaos suite's summary: every scenario's row, printed at the end of the pytest session.

``CHAOS_RESULTS=benchmarks/results/chaos.json`` also writes the rows there (JSON), as the
README's reliability table was made; without it nothing is written, so a test run leaves the
repository as it was.
"""

from __future__ import annotations

import json
import os
import platform
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tests.chaos.harness import ROWS, rows_json, table


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """Print the chaos table (if any scenario ran) and write it to ``$CHAOS_RESULTS``."""
    if not ROWS:
        return
    terminalreporter.section("chaos suite")
    terminalreporter.write_line(table(ROWS))
    target = os.environ.get("CHAOS_RESULTS")
    if target:
        doc = {"when": datetime.now(UTC).isoformat(timespec="seconds"),
               "machine": f"{platform.machine()}, {os.cpu_count()} cores",
               "load": list(os.getloadavg()), "rows": rows_json(ROWS)}
        Path(target).write_text(json.dumps(doc, indent=2) + "\n")
        terminalreporter.write_line(f"written to {target}")
