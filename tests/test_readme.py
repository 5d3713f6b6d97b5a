"""The README's quickstart is real: its notebook block runs and gives what its comments say."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

README = Path(__file__).resolve().parent.parent / "README.md"


def quickstart() -> str:
    """The first python block of the README that calls ``ifn.connect()``."""
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    return next(b for b in blocks if "ifn.connect()" in b)


def test_quickstart_runs_end_to_end(tmp_path: Path) -> None:
    """The quickstart submits its pipeline to local workers and gets the report it promises."""
    checks = (
        "assert run.status.value == 'succeeded', run.status\n"
        "assert run.result('report') == 'totals [120.0, 80.0] from 2 rows'\n"
        "assert run.result('audit') == '2026-11-28: totals [120.0, 80.0] from 2 rows'\n"
        "assert len(run.to_dataframe()) == 6\n"
    )
    code = quickstart().replace("conn.close()", checks + "conn.close()")
    assert checks in code
    script = tmp_path / "quickstart.py"
    script.write_text(code)
    subprocess.run([sys.executable, str(script)], check=True, cwd=tmp_path, timeout=120)
