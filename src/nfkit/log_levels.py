"""The log levels nfkit understands, declared once.

The config validates ``log_level`` against :data:`LogLevel`, and ``nfkit run --log-level``
offers :data:`LOG_LEVELS`.  This module is separate from :mod:`nfkit.config` because the CLI
needs the names when its options are declared, and importing the config there would pull
pydantic into every ``nfkit`` start (about 0.1 s measured).
"""

from __future__ import annotations

from typing import Literal, get_args

__all__ = ["LogLevel", "LOG_LEVELS"]

#: The log levels, from the most to the least verbose.
LogLevel = Literal["trace", "debug", "info", "warning", "error"]
LOG_LEVELS: tuple[str, ...] = get_args(LogLevel)
