"""envd runs on the node's own Python runtime, so a template without any Python gets it too, on both
engines; the runtime leaves nothing in the environment of the processes envd starts, and the sandbox
cannot change it."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from e2b import AsyncSandbox

from hutch.runtime.container import ContainerRuntime
from hutch.runtime.types import ENVD_PORT, SandboxSpec, TemplateImage
from hutch.templates import base, envd_python
from hutch.templates.envd_zipapp import build
from tests.tiny_rootfs import tiny_rootfs

SUBNET = f"10.{40 + int(os.environ.get('PYTEST_XDIST_WORKER', 'gw0').removeprefix('gw') or 0)}.0.0/16"
CACHE = Path("/var/cache/hutch")
MOUNT = "/usr/local/lib/hutch/runtime"
TOOLS = ["sh", "env", "id", "cat", "grep", "touch", "ls", "tr", "whoami"]
LEAKS = ("LD_LIBRARY_PATH", "LD_PRELOAD", "PYTHONHOME", "PYTHONPATH")


@pytest.fixture()
async def runtime(tmp_path):
    if os.geteuid() != 0:
        pytest.fail("the runtime tests need root")
    python = envd_python.build(CACHE, base.build(CACHE))
    rt = ContainerRuntime(
        data_dir=tmp_path / "data",
        cache_dir=CACHE,
        envd_path=build(tmp_path / "envd.pyz"),
        envd_python=python,
        subnet=SUBNET,
    )
    await rt.start()
    yield rt
    await rt.close()


@pytest.mark.parametrize("engine", ["crun", "gvisor"])
async def test_template_without_python_runs_commands(runtime, tmp_path, engine):
    rootfs = tiny_rootfs(tmp_path / "tiny", TOOLS)
    assert not any(rootfs.glob("**/python*"))
    template = TemplateImage("tiny", rootfs, default_user="user")
    handle = await runtime.create(SandboxSpec(template=template, engine=engine))
    try:
        sandbox = await AsyncSandbox.create(debug=True, sandbox_url=f"http://{handle.host}:{ENVD_PORT}")
        assert (await sandbox.commands.run("id -un; echo $HOME")).stdout.split() == ["user", "/home/user"]
        root = await sandbox.commands.run("whoami; echo $BASH_VERSION", user="root")
        assert root.stdout.split()[0] == "root" and root.stdout.split()[1].startswith("5.")
        for user in ("root", "user"):
            names = {
                line.split("=")[0] for line in (await sandbox.commands.run("env", user=user)).stdout.split()
            }
            assert names.isdisjoint(LEAKS), names
        init_env = await sandbox.commands.run("tr '\\0' '\\n' < /proc/1/environ", user="root")
        assert {line.split("=")[0] for line in init_env.stdout.split()}.isdisjoint(LEAKS)
        mounts = await sandbox.commands.run("cat /proc/mounts", user="root")
        options = next(line.split()[3] for line in mounts.stdout.splitlines() if line.split()[1] == MOUNT)
        assert "ro" in options.split(",")
        write = await sandbox.commands.run(f"touch {MOUNT}/x 2>&1; echo $?", user="root")
        assert write.stdout.split()[-1] != "0"
    finally:
        await runtime.kill(handle.sandbox_id)


def test_runtime_is_self_contained_and_runs_alone():
    python = envd_python.build(CACHE, base.build(CACHE))
    assert envd_python.build(CACHE, base.rootfs_path(CACHE)) == python  # cached
    links = [p for p in python.rglob("*") if p.is_symlink()]
    assert links
    for link in links:
        assert not os.readlink(link).startswith("/") and link.resolve().is_relative_to(python.resolve())
        assert link.exists(), link
    command = [f"{python}/ld.so", "--library-path", f"{python}/lib", f"{python}/python3", "-I", "-c"]
    code = "import os, sqlite3, ssl, sys, zlib; print(sys.prefix, sorted(os.environ))"
    out = subprocess.run([*command, code], env={}, capture_output=True, text=True, check=True).stdout
    assert out.split(maxsplit=1) == [str(python / "usr"), "['LC_CTYPE']\n"]  # C locale coerced to UTF-8


def test_runtime_is_rebuilt_for_another_base(tmp_path):
    for name, status in (("a", "Package: a\n"), ("b", "Package: b\n")):
        (tmp_path / name / "var/lib/dpkg").mkdir(parents=True)
        (tmp_path / name / "var/lib/dpkg/status").write_text(status)
    assert envd_python.path(CACHE, tmp_path / "a") != envd_python.path(CACHE, tmp_path / "b")
