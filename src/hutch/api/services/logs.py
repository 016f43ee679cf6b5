"""Log levels and the selection of a sandbox's log lines: from a moment on (or before it), at a level or
above, containing a text, at most so many."""

from __future__ import annotations

from datetime import datetime
from typing import Literal, get_args

from ...runtime.node_client import LogLine

# The levels of E2B's log entries (builds' and sandboxes'), lowest first.
LogLevel = Literal["debug", "info", "warn", "error"]
LEVELS: tuple[str, ...] = get_args(LogLevel)


def at_least(level: str) -> tuple[str, ...]:
    """The levels at ``level`` or above."""
    return LEVELS[LEVELS.index(level) :]


def select_lines(
    lines: list[LogLine],
    *,
    cursor: datetime | None = None,
    backward: bool = False,
    level: str | None = None,
    search: str | None = None,
    limit: int,
) -> list[LogLine]:
    """The first ``limit`` of ``lines`` (oldest first) from ``cursor`` on; ``backward``, those before it,
    newest first. Only lines at ``level`` or above, and with ``search`` in their message."""
    if cursor is not None:
        lines = [line for line in lines if (line.timestamp >= cursor) != backward]
    if backward:
        lines = lines[::-1]
    if level is not None:
        lines = [line for line in lines if line.level in at_least(level)]
    if search:
        lines = [line for line in lines if search in line.message]
    return lines[:limit]
