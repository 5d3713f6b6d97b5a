"""``python -m ironforge_nb.worker ARGS``: the same as ``ironforge worker ARGS``."""

from __future__ import annotations

import sys

from ironforge_nb.cli import main

if __name__ == "__main__":
    sys.exit(main(["worker", *sys.argv[1:]]))
