"""The interpreter package ships alone into templates: it must import nothing else from ``hutch``."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import hutch.interpreter

PACKAGE = Path(hutch.interpreter.__file__).parent
CHECK = """
import sys
sys.path = [sys.argv[1]] + [p for p in sys.path if p != sys.argv[2]]
import hutch.interpreter.__main__, hutch.interpreter.app
assert hutch.__file__ is None, hutch.__file__  # the namespace package of the copy, not the project's
others = sorted(m for m in sys.modules if m.startswith("hutch") and not m.startswith("hutch.interpreter"))
assert others == ["hutch"], others
"""


def test_the_package_runs_on_its_own(tmp_path):
    shutil.copytree(PACKAGE, tmp_path / "hutch" / "interpreter", ignore=shutil.ignore_patterns("__pycache__"))
    source_root = str(PACKAGE.parent.parent)
    result = subprocess.run(
        [sys.executable, "-c", CHECK, str(tmp_path), source_root], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
