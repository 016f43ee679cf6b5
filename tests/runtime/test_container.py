"""The container runtime, on both engines (crun and gVisor), undoes every step of a create that fails
halfway, and a kill releases everything."""

from __future__ import annotations

import os
from pathlib import Path

import httpx
import pytest

from hutch.errors import BackendUnavailable
from hutch.runtime.container import ContainerRuntime
from hutch.runtime.types import SandboxSpec, TemplateImage
from hutch.templates import base
from hutch.templates.envd_zipapp import build

SUBNET = f"10.{40 + int(os.environ.get('PYTEST_XDIST_WORKER', 'gw0').removeprefix('gw') or 0)}.0.0/16"


def _netns() -> set[str]:
    return set(os.listdir("/run/netns")) if os.path.isdir("/run/netns") else set()


def _mounts_under(path: Path) -> list[str]:
    return [line for line in Path("/proc/self/mountinfo").read_text().splitlines() if str(path) in line]


def _cgroups(prefix: str = "/sys/fs/cgroup/memory/hutch") -> set[str]:
    return {p.name for p in Path(prefix).iterdir() if p.is_dir()} if Path(prefix).exists() else set()


@pytest.fixture()
async def runtime(tmp_path):
    if os.geteuid() != 0:
        pytest.fail("the runtime tests need root")
    envd = build(tmp_path / "envd.pyz")
    rt = ContainerRuntime(
        data_dir=tmp_path / "data", cache_dir=Path("/var/cache/hutch"), envd_path=envd, subnet=SUBNET
    )
    await rt.start()
    yield rt
    await rt.close()


def _assert_clean(rt: ContainerRuntime, netns_before: set[str], cgroups_before: set[str]) -> None:
    assert list(rt.sandboxes_dir.iterdir()) == []
    assert _mounts_under(rt.sandboxes_dir) == []
    assert _netns() - netns_before == set()
    assert _cgroups() - cgroups_before == set()
    assert rt.networks.used == set()


ENGINES = pytest.mark.parametrize("engine", ["container", "gvisor"])


@ENGINES
async def test_failed_create_leaves_nothing(runtime, tmp_path, engine):
    # A root filesystem without python3: the overlay, network and crun steps run, envd cannot start.
    empty = tmp_path / "empty-rootfs"
    (empty / "usr/local/lib/hutch").mkdir(parents=True)
    (empty / "usr/local/lib/hutch/envd.pyz").touch()
    (empty / "etc").mkdir()
    netns_before, cgroups_before = _netns(), _cgroups()
    with pytest.raises(BackendUnavailable):
        await runtime.create(
            SandboxSpec(template=TemplateImage("broken", empty, default_user="root"), runtime=engine)
        )
    _assert_clean(runtime, netns_before, cgroups_before)


async def test_missing_template_rootfs_leaves_nothing(runtime, tmp_path):
    netns_before, cgroups_before = _netns(), _cgroups()
    with pytest.raises(OSError):
        await runtime.create(SandboxSpec(template=TemplateImage("gone", tmp_path / "nowhere")))
    _assert_clean(runtime, netns_before, cgroups_before)


@ENGINES
async def test_kill_releases_everything(runtime, engine):
    rootfs = base.build(Path("/var/cache/hutch"))  # cached after the first build
    netns_before, cgroups_before = _netns(), _cgroups()
    handle = await runtime.create(SandboxSpec(template=TemplateImage("base", rootfs), runtime=engine))
    assert f"hutch-{handle.sandbox_id}" in _netns()
    assert handle.sandbox_id in _cgroups()
    await runtime.kill(handle.sandbox_id)
    await runtime.close()  # waits for the background teardown
    _assert_clean(runtime, netns_before, cgroups_before)


@ENGINES
async def test_start_and_ready_commands_run_before_create_returns(runtime, engine):
    rootfs = base.build(Path("/var/cache/hutch"))
    template = TemplateImage(
        "served",
        rootfs,
        env={"GREETING": "hello"},
        start_cmd=(
            'mkdir -p /tmp/www && echo "$GREETING" > /tmp/www/index.html'
            " && python3 -m http.server -d /tmp/www 8000"
        ),
        ready_cmd="curl -sf http://127.0.0.1:8000/ >/dev/null",
    )
    handle = await runtime.create(SandboxSpec(template=template, runtime=engine))
    try:
        async with httpx.AsyncClient(trust_env=False) as client:
            response = await client.get(f"http://{handle.host}:8000/index.html")
        assert response.text.strip() == "hello"  # answered at once: create waited for the ready command
    finally:
        await runtime.kill(handle.sandbox_id)
