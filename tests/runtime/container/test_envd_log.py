"""A sandbox's log as envd wrote it: one entry per ``<UTC time> <LEVEL> <message>`` line, the lines of a
traceback kept with their entry, and only the end of a long log read."""

from __future__ import annotations

from datetime import UTC, datetime

from hutch.runtime.capabilities import LogLine
from hutch.runtime.container import envd_log


def test_entries_and_their_continuations(tmp_path):
    log = tmp_path / "envd.log"
    log.write_text(
        "stray output before the first entry\n"
        "2026-01-02T03:04:05.123456Z INFO process started: pid 7\n"
        "2026-01-02T03:04:06.000000Z ERROR handler failed\n"
        "Traceback (most recent call last):\n"
        "ValueError: bad\n"
        "\n"
        "2026-01-02T03:04:07.000000Z WARNING slow\n"
        "2026-01-02T03:04:08.000000Z CRITICAL gone\n"
        "2026-01-02T03:04:09.000000Z DEBUG detail\n"
        "2026-01-02T03:04:10Z INFO a time without fractions is no entry's\n"
    )
    entries = envd_log.read(log)
    assert entries[0] == LogLine(
        datetime(2026, 1, 2, 3, 4, 5, 123456, tzinfo=UTC), "info", "process started: pid 7"
    )
    assert entries[1].message == "handler failed\nTraceback (most recent call last):\nValueError: bad"
    assert [entry.level for entry in entries] == ["info", "error", "warn", "error", "debug"]
    assert entries[-1].message == "detail\n2026-01-02T03:04:10Z INFO a time without fractions is no entry's"


def test_a_missing_log_is_empty(tmp_path):
    assert envd_log.read(tmp_path / "nowhere") == []


def test_only_the_end_of_a_long_log_is_read(tmp_path, monkeypatch):
    monkeypatch.setattr(envd_log, "TAIL_BYTES", 100)
    log = tmp_path / "envd.log"
    line = "2026-01-02T03:04:05.000000Z INFO {}\n"
    log.write_text("".join(line.format(n) for n in range(100)))
    entries = envd_log.read(log)
    assert 0 < len(entries) < 4
    assert entries[-1].message == "99"
