"""What ``hutch up`` prints while it builds the built-in templates: a bar on a terminal with only problems
and milestones printed, every line in a log file."""

from __future__ import annotations

import io

from rich.console import Console

from hutch.cli.setup_progress import DEBIAN_PHASES, SetupProgress

LINES = [
    "building the base template into /cache (mmdebstrap, about a minute)",
    *[f"I: {phase}..." for phase in DEBIAN_PHASES],
    "Get:1 http://deb.debian.org/debian bookworm InRelease",
    "W: a warning from apt",
    "building the code-interpreter-v1 template into /cache2 (pip, about a minute)",
    "Collecting numpy==2.4.6",
    "Installing collected packages: numpy",
    "Hutch is up. Client settings:",
    "stopping",
]


def test_a_log_file_gets_every_line() -> None:
    out = io.StringIO()
    with SetupProgress(Console(file=out, force_terminal=False, width=200)) as say:
        for line in LINES:
            say(line)
    assert out.getvalue().splitlines() == LINES


def test_a_terminal_gets_a_bar_and_only_milestones_and_problems() -> None:
    out = io.StringIO()
    console = Console(file=out, force_terminal=True, width=200, color_system=None)
    with SetupProgress(console) as say:
        for line in LINES[:-2]:
            say(line)
        assert say.progress is not None and say.progress.tasks[0].completed == len(DEBIAN_PHASES)
        assert say.progress.tasks[1].description == "pip: installing"
        for line in LINES[-2:]:
            say(line)
        assert say.progress is None
    text = out.getvalue()
    assert "W: a warning from apt" in text and "Hutch is up" in text and "stopping" in text
    assert "Get:1" not in text and "Collecting numpy" not in text
