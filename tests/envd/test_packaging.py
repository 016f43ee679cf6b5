"""The packed envd (one zipapp) runs in isolation (``python3 -I``) under each CPython a template may have,
and serves the official SDK: nothing it imports may be missing from the archive."""

from __future__ import annotations

import glob
import shutil
import subprocess
import zipfile
from pathlib import Path

import pytest
from e2b import Sandbox

from hutch.templates.envd_zipapp import build

from .conftest import start_envd, stop_envd


def _interpreters() -> list[str]:
    """The system python3 (what Debian templates have) and other CPython >= 3.9 installs on this machine."""
    found = {shutil.which("python3", path="/usr/bin:/bin")}
    found.update(glob.glob("/usr/bin/python3.[0-9]*"))
    for minor in range(9, 15):
        found.update(glob.glob(f"/root/.pyenv/versions/3.{minor}.*/bin/python3"))
    return sorted(p for p in found if p and not p.endswith("-config"))


@pytest.fixture(scope="module")
def pyz(tmp_path_factory) -> Path:
    return build(tmp_path_factory.mktemp("envd") / "envd.pyz")


def test_archive_is_self_contained(pyz):
    names = set(zipfile.ZipFile(pyz).namelist())
    assert "__main__.py" in names
    assert "hutch/envd/__main__.py" in names
    assert {"h11/__init__.py", "python_multipart/__init__.py", "inotify_simple.py"} <= names
    assert "hutch/envd/router.pyc" in names  # bytecode beside the source


@pytest.mark.parametrize("python", _interpreters())
def test_packed_envd_serves_the_sdk(python, pyz, test_user, tmp_path):
    version = subprocess.run(
        [python, "-I", str(pyz), "--version"], capture_output=True, text=True, cwd=tmp_path
    )
    assert version.returncode == 0, version.stderr
    envd = start_envd(*test_user, command=[python, "-I", str(pyz)])
    try:
        sandbox = Sandbox.create(debug=True, sandbox_url=envd.url)
        assert sandbox.commands.run("echo packed").stdout == "packed\n"
        path = f"{envd.home}/packed.txt"
        sandbox.files.write(path, "from the zipapp")
        assert sandbox.files.read(path) == "from the zipapp"
        sandbox.files.write_files([{"path": f"{envd.home}/multi.txt", "data": "multipart"}])
        assert sandbox.files.read(f"{envd.home}/multi.txt") == "multipart"
        handle = sandbox.files.watch_dir(envd.home)
        sandbox.files.write(f"{envd.home}/watched.txt", "x")
        handle.stop()
    finally:
        stop_envd(envd)
    assert envd.process.returncode == 0
