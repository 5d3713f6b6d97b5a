"""The docs in the repo stand on their own: every relative link of README.md and docs/ leads to
a file of the repo, and nothing refers to documents outside it (a ``shared`` directory next
to the repo, which a clone does not have)."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_relative_links_lead_to_files(page: Path) -> None:
    """Each ``[text](path)`` that is not a URL or an anchor names an existing file."""
    links = re.findall(r"\]\(([^)\s]+)\)", page.read_text())
    local = [link.split("#")[0] for link in links
             if not re.match(r"[a-z]+:", link) and not link.startswith("#")]
    missing = [link for link in local if not (page.parent / link).exists()]
    assert not missing, f"{page.name}: links to missing files: {missing}"


def test_the_architecture_docs_are_linked_from_the_readme() -> None:
    """The README's architecture block points at docs/ (the index and each page)."""
    text = (ROOT / "README.md").read_text()
    for page in ("docs/README.md", "docs/architecture.md", "docs/redis-keys.md",
                 "docs/lifecycle.md", "docs/security.md", "docs/adding-a-transition.md"):
        assert f"({page})" in text, page


def test_nothing_refers_to_docs_outside_the_repo() -> None:
    """No tracked file mentions the shared directory outside the repo."""
    needle = "/".join(["..", "shared"])  # not written whole here, or this file would match
    out = subprocess.run(["git", "grep", "-l", "-F", needle], cwd=ROOT,
                         capture_output=True, text=True)
    assert out.returncode in (0, 1), out.stderr
    assert out.stdout.split() == [], out.stdout
