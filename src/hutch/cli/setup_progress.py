"""What ``hutch up`` shows while it prepares the built-in templates: on a terminal, a progress bar per image
(mmdebstrap's phases for a Debian root filesystem, pip's packages for the interpreter's layer) with only
warnings and errors printed above it; elsewhere (a log file), every line as it comes."""

from __future__ import annotations

import re
from types import TracebackType

from rich.console import Console
from rich.progress import BarColumn, Progress, SpinnerColumn, TaskID, TextColumn, TimeElapsedColumn

# mmdebstrap's steps, in order ("I: <step>…"): the bar advances through them.
DEBIAN_PHASES = (
    "running apt-get update",
    "downloading packages",
    "extracting archives",
    "installing essential packages",
    "installing remaining packages",
    "running --customize-hook",
    "cleaning package lists",
    "success",
)
_PIP_COLLECT = re.compile(r"Collecting (\S+)")
_PROBLEM = re.compile(r"^(E:|W:|ERROR|WARNING|error:)")


class SetupProgress:
    """A ``say`` for the stack: call it with each line; use it as a context manager around the setup."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.progress: Progress | None = None
        self.task: TaskID | None = None
        self.collected = 0

    def __enter__(self) -> SetupProgress:
        if self.console.is_terminal:
            columns = (SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), TimeElapsedColumn())
            self.progress = Progress(*columns, console=self.console, transient=True)
            self.progress.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.finish()

    def finish(self) -> None:
        """Stop drawing (before the stack's final message, which must stay on the screen)."""
        if self.progress is not None:
            self.progress.stop()
            self.progress = None

    def __call__(self, line: str) -> None:
        if self.progress is None:
            self.console.print(line, highlight=False, markup=False)
            return
        if line.startswith("building "):
            self._begin(line)
        elif line.startswith("Hutch is up"):
            self.finish()
            self.console.print(line, highlight=False, markup=False)
        elif _PROBLEM.match(line):
            self.progress.console.print(line, highlight=False, markup=False, style="yellow")
        elif self.task is not None:
            self._advance(line)

    def _begin(self, line: str) -> None:
        assert self.progress is not None
        if self.task is not None:
            self.progress.update(self.task, completed=self.progress.tasks[-1].total)
        self.progress.console.print(line, highlight=False, markup=False)
        self.collected = 0
        self.task = self.progress.add_task(line.split(" into ")[0], total=len(DEBIAN_PHASES))

    def _advance(self, line: str) -> None:
        assert self.progress is not None and self.task is not None
        if line.startswith("I: "):
            for index, phase in enumerate(DEBIAN_PHASES):
                if line[3:].startswith(phase):
                    self.progress.update(self.task, completed=index + 1, description=f"debian: {phase}")
            return
        collecting = _PIP_COLLECT.match(line)
        if collecting:
            # pip does not say how many it will collect: the bar creeps towards the end meanwhile.
            self.collected += 1
            done = len(DEBIAN_PHASES) * (1 - 0.9**self.collected) * 0.8
            self.progress.update(self.task, completed=done, description=f"pip: {collecting.group(1)}")
        elif line.startswith("Installing collected packages"):
            self.progress.update(self.task, completed=len(DEBIAN_PHASES) * 0.9, description="pip: installing")
