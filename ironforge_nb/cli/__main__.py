"""``python -m ironforge_nb.cli``: the ``ironforge`` command."""

import sys

from ironforge_nb.cli import main

sys.exit(main())
