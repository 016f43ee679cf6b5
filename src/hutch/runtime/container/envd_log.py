"""A sandbox's log: envd's own log file, one ``<UTC time> <LEVEL> <message>`` line per event. Lines that
do not start that way (a traceback's) belong to the entry before them."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from ..capabilities import LogLine

# The most of a log that is read: its end.
TAIL_BYTES = 1 << 20
_LEVELS = {"DEBUG": "debug", "INFO": "info", "WARNING": "warn", "ERROR": "error", "CRITICAL": "error"}


def read(path: Path) -> list[LogLine]:
    """The entries of the log at ``path`` (its last ``TAIL_BYTES``), oldest first; none if it is missing."""
    try:
        with open(path, "rb") as log:
            log.seek(max(0, log.seek(0, 2) - TAIL_BYTES))
            text = log.read().decode(errors="replace")
    except FileNotFoundError:
        return []
    entries: list[LogLine] = []
    for line in text.splitlines():
        entry = _parse(line)
        if entry is not None:
            entries.append(entry)
        elif entries and line:
            last = entries[-1]
            entries[-1] = LogLine(last.timestamp, last.level, f"{last.message}\n{line}")
    return entries


def _parse(line: str) -> LogLine | None:
    stamp, _, rest = line.partition(" ")
    level, _, message = rest.partition(" ")
    if level not in _LEVELS or not stamp.endswith("Z"):
        return None
    try:
        timestamp = datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
    except ValueError:
        return None
    return LogLine(timestamp, _LEVELS[level], message)
