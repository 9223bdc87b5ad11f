"""Where the ``zart_django`` logger writes when the project's ``LOGGING`` says nothing about it."""

from __future__ import annotations

import logging
from collections.abc import Iterable

LOGGER = "zart_django"


def ensure_output(handlers: Iterable[logging.Handler], level: int = logging.INFO) -> None:
    """Give the ``zart_django`` logger ``handlers`` and ``level`` if neither it nor any logger
    above it has a handler, so a worker's lines are seen; a project's own configuration wins."""
    logger = logging.getLogger(LOGGER)
    if logger.hasHandlers():
        return
    for handler in handlers:
        logger.addHandler(handler)
    logger.setLevel(level)
