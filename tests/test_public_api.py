"""The public door: every name in ``ironforge_nb.__all__`` resolves, and nothing else is public."""

from __future__ import annotations

import importlib
import subprocess
import sys

import ironforge_nb as ifn


def test_all_lists_exactly_the_exported_names() -> None:
    """``__all__`` and the lazy export map name the same things."""
    assert set(ifn.__all__) - {"__version__"} == set(ifn._EXPORTS)


def test_every_public_name_resolves() -> None:
    """Each exported name imports and is the object its defining module holds."""
    for name, module in ifn._EXPORTS.items():
        value = getattr(ifn, name)
        assert value is not None, name
        if module != f"ironforge_nb.{name}":
            assert value is getattr(importlib.import_module(module), name)


def test_function_exports_are_not_shadowed_by_subpackages() -> None:
    """``ifn.runs`` / ``ifn.progress`` stay callables even after every subpackage is imported."""
    code = (
        "import ironforge_nb as ifn, ironforge_nb.local, ironforge_nb.worker, ironforge_nb.render;"
        "import pkgutil, importlib;"
        "mods = pkgutil.walk_packages(ifn.__path__, 'ironforge_nb.');"
        "[importlib.import_module(m.name) for m in mods if not m.name.endswith('__main__')];"
        "assert callable(ifn.submit) and callable(ifn.progress) and callable(ifn.track);"
        "assert callable(ifn.connect) and callable(ifn.runs);"
        "assert type(ifn.runs).__name__ == 'function', type(ifn.runs)"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_unknown_name_raises_attribute_error() -> None:
    """A typo gives AttributeError naming the attribute."""
    try:
        ifn.Pipelin  # type: ignore[attr-defined]  # noqa: B018
    except AttributeError as exc:
        assert "Pipelin" in str(exc)
    else:
        raise AssertionError("expected AttributeError")
