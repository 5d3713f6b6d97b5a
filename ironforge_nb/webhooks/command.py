"""What ``ironforge webhooks`` does: run a dispatcher in the foreground until SIGTERM/Ctrl-C,
or (``list``) print the endpoints and the recent deliveries. The argument parsing is in
``ironforge_nb/cli/webhooks.py``."""

from __future__ import annotations

import logging
import signal
import sys

from ironforge_nb.queue.config import RedisConfig
from ironforge_nb.webhooks.dispatcher import Dispatcher
from ironforge_nb.webhooks.endpoints import endpoints
from ironforge_nb.webhooks.outbox import deliveries

__all__ = ["run_command"]


def run_command(config: RedisConfig, action: str, *, concurrency: int = 4,
                timeout: float = 15.0, lease: float | None = None, limit: int = 20,
                log_level: str = "INFO") -> int:
    """``action`` 'run' (deliver until a signal) or 'list'; returns the exit code."""
    if action == "list":
        import pandas as pd

        with pd.option_context("display.width", 200, "display.max_columns", None,
                               "display.max_colwidth", 60):
            print(f"endpoints ({config.namespace}):")
            print(endpoints(config).to_string(index=False))
            print("\ndeliveries (newest first):")
            print(deliveries(config=config).head(limit).to_string(index=False))
        return 0
    logging.basicConfig(level=log_level.upper(), stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(message)s")
    dispatcher = Dispatcher(config, concurrency=concurrency, timeout=timeout,
                            lease=lease or max(120.0, 3 * timeout))
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda signum, frame: dispatcher.stop())
    dispatcher.run()
    return 0
