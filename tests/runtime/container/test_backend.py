"""The container runtime, on both engines (crun and gVisor), undoes every step of a create that fails
halfway, a kill releases everything, a sandbox waiting in the warm pool yields the CPU to those in use
until it is handed out, and a sandbox paused with its files moves out and in whole."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import httpx
import pytest

from hutch.errors import BackendUnavailable, Conflict
from hutch.runtime import envd_client
from hutch.runtime.container import ContainerRuntime, cgroups, start
from hutch.runtime.safe_path import copy_tree
from hutch.runtime.types import ENVD_PORT, SandboxSpec, TemplateImage, new_sandbox_id
from hutch.templates import base, envd_python
from hutch.templates.envd_zipapp import build
from tests.runtime.container.conftest import HostFiles

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
async def node_runtime(tmp_path):
    """The runtime as a node runs it: envd on the node's own Python runtime (forked, on crun)."""
    if os.geteuid() != 0:
        pytest.fail("the runtime tests need root")
    cache = Path("/var/cache/hutch")
    rt = ContainerRuntime(
        data_dir=tmp_path / "data",
        cache_dir=cache,
        envd_path=build(tmp_path / "envd.pyz"),
        envd_python=envd_python.build(cache, base.build(cache)),
        subnet=SUBNET,
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

    monkeypatch.setattr(start, "new_sandbox_id", recorded)
    return ids


def _assert_clean(rt: ContainerRuntime, made: set[str]) -> None:
    assert made
    assert list(rt.host.sandboxes_dir.iterdir()) == []
    assert _mounts_under(rt.host.sandboxes_dir) == []
    assert {f"hutch-{sandbox_id}" for sandbox_id in made} & _netns() == set()
    assert made & _cgroups() == set()
    assert rt.host.networks.used == set()


ENGINES = pytest.mark.parametrize("engine", ["crun", "gvisor"])


@ENGINES
async def test_failed_create_leaves_nothing(runtime, made, tmp_path, engine):
    # A root filesystem without python3: the overlay, network and crun steps run, envd cannot start.
    empty = tmp_path / "empty-rootfs"
    (empty / "usr/local/lib/hutch").mkdir(parents=True)
    (empty / "usr/local/lib/hutch/envd.pyz").touch()
    (empty / "etc").mkdir()
    with pytest.raises(BackendUnavailable):
        await runtime.create(
            SandboxSpec(template=TemplateImage("broken", empty, default_user="root"), engine=engine)
        )
    _assert_clean(runtime, made)


async def test_missing_template_rootfs_leaves_nothing(runtime, made, tmp_path):
    with pytest.raises(OSError):
        await runtime.create(SandboxSpec(template=TemplateImage("gone", tmp_path / "nowhere")))
    _assert_clean(runtime, made)


@ENGINES
async def test_kill_releases_everything(runtime, made, engine):
    rootfs = base.build(Path("/var/cache/hutch"))  # cached after the first build
    handle = await runtime.create(SandboxSpec(template=TemplateImage("base", rootfs), engine=engine))
    assert f"hutch-{handle.sandbox_id}" in _netns()
    assert handle.sandbox_id in _cgroups()
    await runtime.kill(handle.sandbox_id)
    await runtime.close()  # waits for the background teardown
    _assert_clean(runtime, made)


def _cpu_shares(sandbox_id: str) -> int:
    return int((Path("/sys/fs/cgroup/cpu/hutch") / sandbox_id / "cpu.shares").read_text())


@ENGINES
async def test_a_pooled_sandbox_yields_the_cpu_until_it_is_handed_out(runtime, made, engine):
    """A sandbox waiting in the warm pool runs at the pool's low CPU weight, all its processes (envd and
    what the template started) with it; the one handed out gets the default weight back."""
    if not Path("/sys/fs/cgroup/cpu/hutch").is_dir():
        pytest.skip("this host has no cgroup v1 cpu controller")
    template = TemplateImage("base", base.build(Path("/var/cache/hutch")))
    runtime.keep_warm(template, 1, cpu_count=2, memory_mb=512, engine=engine)
    key = ("base", 2, 512, 1024, engine)
    async with asyncio.timeout(120):
        while runtime.pool.size(key) < 1:
            await asyncio.sleep(0.05)
    (pooled,) = made
    assert _cpu_shares(pooled) == cgroups.POOL_CPU_SHARES
    assert (Path("/sys/fs/cgroup/cpu/hutch") / pooled / "cgroup.procs").read_text().split()
    handle = await runtime.create(SandboxSpec(template=template, cpu_count=2, memory_mb=512, engine=engine))
    try:
        assert handle.sandbox_id == pooled
        assert _cpu_shares(pooled) == cgroups.CPU_SHARES
    finally:
        await runtime.kill(handle.sandbox_id)


def _marking_layer(tmp_path: Path) -> Path:
    """A template layer whose login files and ``true`` leave a mark in ``/marked`` when they run."""
    layer = tmp_path / "marking-layer"
    (layer / "etc" / "profile.d").mkdir(parents=True)
    (layer / "etc" / "profile.d" / "mark.sh").write_text("echo profile >> /marked\n")
    (layer / "usr" / "bin").mkdir(parents=True)
    (layer / "usr" / "bin" / "true").write_text("#!/bin/sh\necho true >> /marked\n")
    (layer / "usr" / "bin" / "true").chmod(0o755)
    return layer


@ENGINES
async def test_a_pooled_sandbox_has_started_a_process_before_it_is_handed_out(node_runtime, tmp_path, engine):
    """While it waits in the pool, a sandbox's envd starts a process once (the runtime's loader, as the
    template's default user), so that a create's first command does not pay for envd's first start;
    nothing of the template runs for it. A template without that user is pooled all the same (its
    creates fail as they would anyway, naming the user)."""
    rootfs = base.build(Path("/var/cache/hutch"))
    lower = Path(f"{_marking_layer(tmp_path)}:{rootfs}")

    async def pooled(template: TemplateImage) -> SandboxSpec:
        node_runtime.keep_warm(template, 1, cpu_count=1, memory_mb=256, engine=engine)
        async with asyncio.timeout(120):
            while node_runtime.pool.size((template.template_id, 1, 256, 1024, engine)) < 1:
                await asyncio.sleep(0.05)
        return SandboxSpec(template=template, cpu_count=1, memory_mb=256, engine=engine)

    handle = await node_runtime.create(await pooled(TemplateImage("marking", lower, default_user="user")))
    try:
        messages = [line.message for line in await node_runtime.logs(handle.sandbox_id)]
        loader = "started: /usr/local/lib/hutch/runtime/ld.so as user"
        assert len([m for m in messages if m.startswith("process ") and m.endswith(loader)]) == 1
        code, output = await _run(handle, "cat /marked 2>/dev/null; echo end")
        assert (code, output) == (0, "end\n")
    finally:
        await node_runtime.kill(handle.sandbox_id)

    spec = await pooled(TemplateImage("userless", lower, default_user="nobody-by-that-name"))
    with pytest.raises(BackendUnavailable, match="'nobody-by-that-name' does not exist"):
        await node_runtime.create(spec)


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
    handle = await runtime.create(SandboxSpec(template=template, engine=engine))
    try:
        async with httpx.AsyncClient(trust_env=False) as client:
            response = await client.get(f"http://{handle.host}:8000/index.html")
        assert response.text.strip() == "hello"  # answered at once: create waited for the ready command
    finally:
        await runtime.kill(handle.sandbox_id)


def _hostile_layer(tmp_path: Path, host: HostFiles) -> Path:
    """A template layer (over the base) whose identity files and ``/tmp`` are links to the host."""
    layer = tmp_path / "hostile-layer"
    (layer / "etc").mkdir(parents=True)
    for name in ("hosts", "hostname", "resolv.conf"):
        (layer / "etc" / name).symlink_to(host.directory / name)
    (layer / "tmp").symlink_to(host.directory)
    return layer


async def _run(handle, command: str) -> tuple[int | None, str]:
    output: list[str] = []
    code = await envd_client.run(
        f"http://{handle.host}:{ENVD_PORT}", command, user="root", shell=("/bin/sh", "-c"),
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
    handle = await runtime.create(SandboxSpec(template=template, engine=engine))
    try:
        host_files.assert_unchanged()
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
        host_files.assert_unchanged()
    finally:
        await runtime.kill(handle.sandbox_id)


@ENGINES
async def test_a_sandbox_paused_with_its_files_moves_out_and_in_under_its_id(runtime, made, tmp_path, engine):
    """What a move between nodes does on each end, on one runtime: the sandbox's spec (with its egress
    rules as they are now) and its writable layer are read while it is paused with its files only; it is
    killed; it arrives under the same id over a copy of that layer, with its files and env vars."""
    template = TemplateImage("base", base.build(Path("/var/cache/hutch")))
    spec = SandboxSpec(template=template, env_vars={"KEPT": "yes"}, engine=engine)
    handle = await runtime.create(spec)
    sandbox_id = handle.sandbox_id
    staged = tmp_path / "staged"
    try:
        assert (await _run(handle, "echo moved > /root/a.txt && rm /etc/debian_version"))[0] == 0
        with pytest.raises(Conflict):  # running: nothing to move
            runtime.departure(sandbox_id)
        await runtime.update_egress(sandbox_id, internet=False, allow_out=("10.1.2.3",), deny_out=())
        await runtime.pause(sandbox_id, memory=False)
        leaving = runtime.departure(sandbox_id)
        assert (leaving.env_vars, leaving.allow_out, leaving.access_token) == (
            {"KEPT": "yes"},
            ("10.1.2.3",),
            None,
        )
        with runtime.files(sandbox_id) as upper:
            await copy_tree(upper, staged)
    finally:
        await runtime.kill(sandbox_id)
    await runtime.host.settle()  # the old copy's teardown is done: the id is free on this node again

    async def fill(upper: Path) -> None:
        await copy_tree(staged, upper)

    arrived = await runtime.arrive(sandbox_id, leaving, fill)
    try:
        assert arrived.sandbox_id == sandbox_id
        code, out = await _run(
            arrived, "cat /root/a.txt; test -e /etc/debian_version || echo gone; echo $KEPT"
        )
        assert (code, out.split()) == (0, ["moved", "gone", "yes"])
    finally:
        await runtime.kill(sandbox_id)


async def test_an_arrival_is_refused_or_undone_whole(runtime, made, tmp_path):
    """A move in with an id that is not one, or one the node holds, is refused; one whose files fail to
    arrive (cut short, or more than its disk holds) leaves nothing behind."""
    template = TemplateImage("base", base.build(Path("/var/cache/hutch")))
    spec = SandboxSpec(template=template, disk_mb=64)
    held = await runtime.create(spec)

    async def nothing(upper: Path) -> None:
        raise AssertionError("no file may be written for a refused arrival")

    for hostile in ("../../etc", "", "A" * 20, held.sandbox_id):
        with pytest.raises(Conflict):
            await runtime.arrive(hostile, spec, nothing)
    with pytest.raises(Conflict), runtime.files(held.sandbox_id):  # a running one has none to hand out
        pass
    await runtime.kill(held.sandbox_id)

    async def cut(upper: Path) -> None:
        (upper / "half").write_text("half")
        raise BackendUnavailable("the stream was cut")

    async def too_much(upper: Path) -> None:
        with open(upper / "big", "wb") as big:
            for _ in range(128):
                big.write(b"\1" * (1 << 20))

    for fill in (cut, too_much):
        arriving = new_sandbox_id()
        made.add(arriving)
        with pytest.raises((BackendUnavailable, OSError)):
            await runtime.arrive(arriving, spec, fill)
    await runtime.close()
    _assert_clean(runtime, made)
