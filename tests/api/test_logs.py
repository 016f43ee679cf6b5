"""The selection of a sandbox's log lines behind both log routes: from a cursor on or before it, by level,
by text, at most so many."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hutch.api.services.logs import at_least, select_lines
from hutch.runtime.node_client import LogLine

T0 = datetime(2026, 1, 1, tzinfo=UTC)
LINES = [
    LogLine(T0, "debug", "booting"),
    LogLine(T0 + timedelta(seconds=1), "info", "process 1 started"),
    LogLine(T0 + timedelta(seconds=2), "error", "process 1 failed"),
    LogLine(T0 + timedelta(seconds=3), "warn", "process 2 slow"),
]


def _messages(lines: list[LogLine]) -> list[str]:
    return [line.message for line in lines]


def test_levels_at_or_above() -> None:
    assert at_least("debug") == ("debug", "info", "warn", "error")
    assert at_least("warn") == ("warn", "error")


def test_forward_from_a_cursor_oldest_first() -> None:
    chosen = select_lines(LINES, cursor=T0 + timedelta(seconds=1), limit=2)
    assert _messages(chosen) == ["process 1 started", "process 1 failed"]
    assert select_lines(LINES, limit=10) == LINES


def test_backward_from_a_cursor_newest_first() -> None:
    assert _messages(select_lines(LINES, cursor=T0 + timedelta(seconds=2), backward=True, limit=10)) == [
        "process 1 started",
        "booting",
    ]
    assert _messages(select_lines(LINES, backward=True, limit=1)) == ["process 2 slow"]


def test_by_level_and_text() -> None:
    assert _messages(select_lines(LINES, level="warn", limit=10)) == ["process 1 failed", "process 2 slow"]
    assert _messages(select_lines(LINES, level="info", search="process 1", limit=10)) == [
        "process 1 started",
        "process 1 failed",
    ]
    assert select_lines(LINES, search="nothing like it", limit=10) == []
