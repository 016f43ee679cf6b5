"""The npm packages the tests run under Node (E2B's CLI, its desktop SDK), installed by the project's own
scripts into the cache on first use, with a Node.js of their own if the machine's is missing or too old."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"


def install(script: str) -> tuple[str, str]:
    """Run ``scripts/<script>``; the two lines it prints: the node to use, and the package's entry point or
    directory."""
    result = subprocess.run(
        [str(SCRIPTS / script)],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
        env={**os.environ, "PYTHON": sys.executable},
    )
    if result.returncode != 0:
        pytest.fail(f"could not install with {script}: {result.stderr.strip()}")
    node, found = result.stdout.split()
    return node, found
