"""Pack envd into one self-contained file (a zipapp) that any template's CPython >= 3.9 can run.

The archive holds ``hutch/envd`` and the pure-Python packages it imports (h11, python-multipart,
inotify_simple), taken from this environment's installed copies, each module with its source and a
bytecode file compiled by this interpreter. An interpreter of the same minor version loads the bytecode
(envd starts several times faster); any other falls back to the source. Run it as
``python3 envd.pyz --port P``.
``python -m hutch.templates.envd_zipapp OUT`` builds it.
"""

from __future__ import annotations

import py_compile
import shutil
import sys
import tempfile
import zipapp
from importlib import import_module
from pathlib import Path

BUNDLED = ("h11", "python_multipart", "inotify_simple")
MAIN = "from hutch.envd.__main__ import main\n\nmain()\n"


def _copy_module(name: str, staging: Path) -> None:
    module = import_module(name)
    source = Path(module.__file__ or "")
    if source.name == "__init__.py":
        shutil.copytree(source.parent, staging / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    else:
        shutil.copy2(source, staging / source.name)


def _compile(staging: Path) -> None:
    """Add ``module.pyc`` beside each ``module.py``: the layout zipimport looks for inside an archive."""
    for source in staging.rglob("*.py"):
        if source.name == "__main__.py" and source.parent == staging:
            continue  # run as a script, never imported
        py_compile.compile(
            str(source),
            cfile=str(source) + "c",
            dfile=str(source.relative_to(staging)),
            doraise=True,
            invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH,
        )


def build(output: Path) -> Path:
    """Write the envd zipapp to ``output`` and return its path."""
    envd_dir = Path(__file__).resolve().parent.parent / "envd"
    with tempfile.TemporaryDirectory(prefix="envd-pack-") as tmp:
        staging = Path(tmp)
        (staging / "hutch").mkdir()
        (staging / "hutch" / "__init__.py").write_text('"""Hutch (envd only)."""\n')
        shutil.copytree(
            envd_dir,
            staging / "hutch" / "envd",
            ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "*.toml"),
        )
        for name in BUNDLED:
            _copy_module(name, staging)
        (staging / "__main__.py").write_text(MAIN)
        _compile(staging)
        output.parent.mkdir(parents=True, exist_ok=True)
        partial = output.with_suffix(".partial")
        zipapp.create_archive(staging, partial, interpreter="/usr/bin/env python3", compressed=True)
        partial.replace(output)
    return output


if __name__ == "__main__":
    target = Path(sys.argv[1] if len(sys.argv) > 1 else "dist/envd.pyz")
    print(build(target))
