"""Running the tools that build images (mmdebstrap, pip in a chroot…) with their output streamed to a log."""

from __future__ import annotations

import subprocess
from collections.abc import Callable

from ..errors import BackendUnavailable


def run_logged(command: list[str], log: Callable[[str], None]) -> None:
    """Run ``command``, each line of its output to ``log``; a failure is ``BackendUnavailable`` naming the
    command and its last lines."""
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert process.stdout is not None
    tail: list[str] = []
    for line in process.stdout:
        log(line.rstrip())
        tail = [*tail[-4:], line.rstrip()]
    if process.wait() != 0:
        raise BackendUnavailable(
            f"{' '.join(command[:2])} failed with exit code {process.returncode}: {' | '.join(tail)}"
        )
