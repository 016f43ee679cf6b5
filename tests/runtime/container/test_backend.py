"""The container runtime, on both engines (crun and gVisor), undoes every step of a create that fails
halfway, and a kill releases everything."""

from __future__ import annotations

import os
from pathlib import Path

import httpx
import pytest

from hutch.errors import BackendUnavailable
from hutch.runtime import container, envd_client
from hutch.runtime.container import ContainerRuntime, _write_identity, _write_resolv_conf
from hutch.runtime.firewall import sandbox_resolv_conf
from hutch.runtime.types import ENVD_PORT, SandboxSpec, TemplateImage, new_sandbox_id
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


@pytest.fixture()
def made(monkeypatch) -> set[str]:
    """The ids of the sandboxes the runtime makes (other nodes on this machine make network namespaces and
    cgroups of their own meanwhile)."""
    ids: set[str] = set()

    def recorded() -> str:
        sandbox_id = new_sandbox_id()
        ids.add(sandbox_id)
        return sandbox_id

    monkeypatch.setattr(container, "new_sandbox_id", recorded)
    return ids


def _assert_clean(rt: ContainerRuntime, made: set[str]) -> None:
    assert made
    assert list(rt.sandboxes_dir.iterdir()) == []
    assert _mounts_under(rt.sandboxes_dir) == []
    assert {f"hutch-{sandbox_id}" for sandbox_id in made} & _netns() == set()
    assert made & _cgroups() == set()
    assert rt.networks.used == set()


ENGINES = pytest.mark.parametrize("engine", ["container", "gvisor"])


@ENGINES
async def test_failed_create_leaves_nothing(runtime, made, tmp_path, engine):
    # A root filesystem without python3: the overlay, network and crun steps run, envd cannot start.
    empty = tmp_path / "empty-rootfs"
    (empty / "usr/local/lib/hutch").mkdir(parents=True)
    (empty / "usr/local/lib/hutch/envd.pyz").touch()
    (empty / "etc").mkdir()
    with pytest.raises(BackendUnavailable):
        await runtime.create(
            SandboxSpec(template=TemplateImage("broken", empty, default_user="root"), runtime=engine)
        )
    _assert_clean(runtime, made)


async def test_missing_template_rootfs_leaves_nothing(runtime, made, tmp_path):
    with pytest.raises(OSError):
        await runtime.create(SandboxSpec(template=TemplateImage("gone", tmp_path / "nowhere")))
    _assert_clean(runtime, made)


@ENGINES
async def test_kill_releases_everything(runtime, made, engine):
    rootfs = base.build(Path("/var/cache/hutch"))  # cached after the first build
    handle = await runtime.create(SandboxSpec(template=TemplateImage("base", rootfs), runtime=engine))
    assert f"hutch-{handle.sandbox_id}" in _netns()
    assert handle.sandbox_id in _cgroups()
    await runtime.kill(handle.sandbox_id)
    await runtime.close()  # waits for the background teardown
    _assert_clean(runtime, made)


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


@pytest.fixture()
def host_files(tmp_path) -> Path:
    """A host directory with canaries where a hostile root points its links: it must stay as it is."""
    host = tmp_path / "host"
    host.mkdir()
    for name in ("hosts", "hostname", "resolv.conf"):
        (host / name).write_text(f"host's {name}\n")
    return host


def _host_unchanged(host: Path) -> None:
    assert sorted(p.name for p in host.iterdir()) == ["hostname", "hosts", "resolv.conf"]
    for name in ("hosts", "hostname", "resolv.conf"):
        assert (host / name).read_text() == f"host's {name}\n"


@pytest.mark.parametrize("linked", ["files", "etc"])
def test_identity_and_resolv_conf_never_write_through_links(tmp_path, host_files, linked):
    """A root whose ``/etc/hosts``, ``/etc/hostname`` and ``/etc/resolv.conf`` (or ``/etc`` itself) are links
    to host files: the host writes inside the root or not at all."""
    if not sandbox_resolv_conf(Path("/etc/resolv.conf").read_text()):
        pytest.skip("this host has no name server a sandbox would be given")
    root = tmp_path / "root"
    if linked == "etc":
        root.mkdir()
        (root / "etc").symlink_to(host_files)
    else:
        (root / "etc").mkdir(parents=True)
        for name in ("hosts", "hostname", "resolv.conf"):
            (root / "etc" / name).symlink_to(host_files / name)
    _write_identity(root, "sandbox-id")
    _write_resolv_conf(root)
    _host_unchanged(host_files)
    if linked == "files":
        assert (root / "etc" / "hostname").read_text() == "sandbox-id\n"
        assert "sandbox-id" in (root / "etc" / "hosts").read_text()
        assert (root / "etc" / "resolv.conf").read_text().startswith("nameserver ")


def _hostile_layer(tmp_path: Path, host: Path) -> Path:
    """A template layer (over the base) whose identity files and ``/tmp`` are links to the host."""
    layer = tmp_path / "hostile-layer"
    (layer / "etc").mkdir(parents=True)
    for name in ("hosts", "hostname", "resolv.conf"):
        (layer / "etc" / name).symlink_to(host / name)
    (layer / "tmp").symlink_to(host)
    return layer


async def _run(handle, command: str) -> tuple[int | None, str]:
    output: list[str] = []
    async with httpx.AsyncClient(trust_env=False) as client:
        code = await envd_client.run(
            client, f"http://{handle.host}:{ENVD_PORT}", command, user="root", shell=("/bin/sh", "-c"),
            on_output=output.append, timeout_s=30,
        )  # fmt: skip
    return code, "".join(output)


@ENGINES
async def test_a_template_with_links_to_the_host(runtime, tmp_path, host_files, engine):
    """Started, paused to its files and booted again: the host's files stay untouched, and gVisor's
    ``/tmp`` is the sandbox's own directory, not the host's that the template's link names."""
    rootfs = base.build(Path("/var/cache/hutch"))
    lower = f"{_hostile_layer(tmp_path, host_files)}:{rootfs}"
    template = TemplateImage("hostile", Path(lower), default_user="root")
    handle = await runtime.create(SandboxSpec(template=template, runtime=engine))
    try:
        _host_unchanged(host_files)
        code, output = await _run(handle, "cat /etc/hostname")
        assert (code, output) == (0, f"{handle.sandbox_id}\n")
        if engine == "gvisor":
            code, output = await _run(
                handle, "test -d /tmp && ! test -L /tmp && echo x > /tmp/planted && ls /tmp"
            )
            assert (code, output) == (0, "planted\n")
            await runtime.pause(handle.sandbox_id, memory=False)
            await runtime.resume(handle.sandbox_id)
            code, output = await _run(handle, "ls /tmp")
            assert (code, output) == (0, "planted\n")
        _host_unchanged(host_files)
    finally:
        await runtime.kill(handle.sandbox_id)
