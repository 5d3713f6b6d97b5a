"""The example notebooks run (nbval) against a home of this session's own.

Some notebooks submit with fixed run ids: in the user's home a second run would find the first
one's runs, so each session gets an empty temporary home ($IRONFORGE_HOME, inherited by the
kernels nbval starts), stopped and removed at the end. Hooks rather than a fixture: nbval's
cell items take no fixtures.
"""

from __future__ import annotations

import contextlib

import pytest

_HOME = contextlib.ExitStack()


def pytest_sessionstart(session: pytest.Session) -> None:
    """Make an empty temporary home the session's ``$IRONFORGE_HOME``."""
    from ironforge_nb.local.home import temporary_home

    _HOME.enter_context(temporary_home())


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Stop the home's server and remove it."""
    _HOME.close()
