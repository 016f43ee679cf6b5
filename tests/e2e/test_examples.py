"""The examples in ``examples/`` run against the real stack, configured only by the ``.env.local`` it wrote.

Each example runs as a subprocess from a temporary directory holding the stack's ``.env.local``, with no
``E2B_*`` variable in its environment. The sandbox ids an example prints are recorded, and must be gone
once it exits.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import e2b
import pytest

from tests.stack import Stack

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
SANDBOX_ID = re.compile(r"sandbox: ([a-z0-9]{20})\b")
RUN_TIMEOUT_S = 120

EXPECTED = {
    "example_sync.py": [
        "command: user on Linux",
        "file: Hello from Hutch!",
        "hello.txt",
        "legacy: Python 3.",
        "(exit code 0)",
        "killed",
    ],
    "example_local.py": [
        "command: hello from ",
        "python: Python 3.",
        "file: ['1', '2', '3']",
        "listing: /home/user/data/numbers.txt (file)",
        "error handled: exit code 2: ls: cannot access '/does-not-exist'",
        "error handled: FileNotFoundException",
        "INFO example_local: killed sandbox: ",
    ],
    "agent_numpy.py": ["prompt: Solve the linear system", "numpy ", "x = 2.0, y = 3.0"],
    "desktop_loop.py": [
        "screen: (1024, 768)",
        "editor: ~/notes.txt - Mousepad",
        "screenshot: desktop_loop.png",
        "file: A desktop driven by code: the editor opened, this paragraph typed, saved with Ctrl+S.",
        "stream: https://6080-",
        "killed",
    ],
}


@pytest.mark.parametrize("example", sorted(EXPECTED))
def test_example_runs(stack: Stack, tmp_path: Path, example: str) -> None:
    (tmp_path / ".env.local").write_text("".join(f"{key}={value}\n" for key, value in stack.env().items()))
    env = {key: value for key, value in os.environ.items() if not key.startswith("E2B_")}
    process = subprocess.run(
        [sys.executable, str(EXAMPLES / example)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT_S,
    )
    output = process.stdout + process.stderr
    ids = set(SANDBOX_ID.findall(output))
    stack.seen.update(ids)
    assert process.returncode == 0, output
    assert ids, output
    for expected in EXPECTED[example]:
        assert expected in output, output
    running = {info.sandbox_id for info in e2b.Sandbox.list(**stack.opts).next_items()}
    assert not ids & running
