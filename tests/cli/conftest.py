"""The ``hutch`` command run as a real process against the real stack (``tests/stack.py``), from an
empty working directory and with only the stack's ``E2B_*`` variables."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.stack import Stack

Hutch = Callable[..., subprocess.CompletedProcess[str]]


def clean_env(**extra: str) -> dict[str, str]:
    """The test's environment without any E2B_ variable, plus ``extra``."""
    env = {name: value for name, value in os.environ.items() if not name.startswith("E2B_")}
    return {**env, "COLUMNS": "200", **extra}


def run_hutch(
    *args: str, env: dict[str, str], cwd: Path, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "hutch.cli.main", *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@pytest.fixture()
def hutch(stack: Stack, tmp_path: Path) -> Hutch:
    """``hutch(*args)``: the finished process, pointed at the stack through the environment."""
    env = clean_env(**stack.env())
    return lambda *args, **options: run_hutch(*args, env={**env, **options.pop("env", {})}, cwd=tmp_path)


def parse(result: subprocess.CompletedProcess[str]) -> Any:
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def error_line(result: subprocess.CompletedProcess[str]) -> str:
    """The one line a failed command prints (exit code 1, nothing on stdout)."""
    assert result.returncode == 1, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]
