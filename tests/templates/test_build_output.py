"""What a build's steps print is bounded: lines are cut at a length with a marker, the pending text never
holds more than one line, and a build keeps a bounded number of lines, in all and per second, saying once
how many it dropped."""

from __future__ import annotations

from hutch.templates.builder import BuildOutput, _Budget, _Lines


class _Log:
    def __init__(self) -> None:
        self.entries: list[tuple[str, str, str | None]] = []

    def __call__(self, message: str, level: str, step: str | None) -> None:
        self.entries.append((message, level, step))


def test_megabytes_without_a_newline_stay_one_bounded_line() -> None:
    log = _Log()
    budget = _Budget(log, BuildOutput(line_chars=100, entries=1000, entries_per_s=1000))
    lines = _Lines(budget, "3", 100)
    for _ in range(8 * 1024):
        lines.feed("x" * 1024)
        assert lines.size <= 100
    lines.feed("\ntail")
    lines.close()
    budget.close()
    assert log.entries == [
        ("x" * 100 + f" [... {8 * 1024 * 1024 - 100} more characters cut]", "info", "3"),
        ("tail", "info", "3"),
    ]


def test_lines_split_across_chunks_are_joined() -> None:
    log = _Log()
    budget = _Budget(log, BuildOutput())
    lines = _Lines(budget, "0", 4096)
    for chunk in ("hel", "lo\r\nwor", "ld\n", "", "last"):
        lines.feed(chunk)
    lines.close()
    assert [message for message, _, _ in log.entries] == ["hello", "world", "last"]


def test_a_million_short_lines_keep_at_most_the_builds_entries_and_one_note() -> None:
    log = _Log()
    budget = _Budget(log, BuildOutput(line_chars=100, entries=500, entries_per_s=10**9))
    lines = _Lines(budget, "1", 100)
    chunk = "line\n" * 10_000
    for _ in range(100):
        lines.feed(chunk)
    lines.close()
    budget.close()
    assert len(log.entries) == 501
    assert log.entries[-1] == (
        "999500 lines of output were dropped (a build keeps 500 lines, at most 1000000000 a second)",
        "warn",
        None,
    )


def test_lines_beyond_the_rate_are_dropped_within_the_second() -> None:
    log = _Log()
    budget = _Budget(log, BuildOutput(entries=10_000, entries_per_s=5))
    for index in range(50):
        budget.emit(f"line {index}", "info", "0")
    kept = [message for message, _, _ in log.entries]
    # All 50 come within one or two seconds of the clock: at most 5 per second are kept.
    assert 5 <= len(kept) <= 10 and kept[:5] == [f"line {index}" for index in range(5)]
    budget.close()
    assert log.entries[-1][0].startswith(f"{50 - len(kept)} lines of output were dropped")
