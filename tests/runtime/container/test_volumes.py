"""Volumes on real sandboxes, both engines: shared between sandboxes and with the node's content calls,
kept across kills, pauses, snapshots and forks, bounded by their size, whole after an interrupted write,
and never a way out of the volume for a hostile sandbox."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from hutch.errors import Conflict, InvalidRequest, NotFound, OutOfSpace
from hutch.runtime import envd_client
from hutch.runtime.container import ContainerRuntime
from hutch.runtime.linux import umount
from hutch.runtime.types import ENVD_PORT, SandboxHandle, SandboxSpec, TemplateImage, VolumeMount
from hutch.templates import base
from hutch.templates.envd_zipapp import build

WORKER = int(os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw") or 0)
SUBNET = f"10.{80 + WORKER}.0.0/16"
ENGINES = pytest.mark.parametrize("engine", ["crun", "gvisor"])
CACHE = Path("/var/cache/hutch")


@pytest.fixture()
async def runtime(tmp_path) -> AsyncIterator[ContainerRuntime]:
    if os.geteuid() != 0:
        pytest.fail("the runtime tests need root")
    rt = ContainerRuntime(
        data_dir=tmp_path / "data", cache_dir=CACHE, envd_path=build(tmp_path / "envd.pyz"), subnet=SUBNET
    )
    await rt.start()
    yield rt
    await rt.close()
    assert _mounts_under(tmp_path) == []  # no volume, view or loop mount left


def _mounts_under(path: Path) -> list[str]:
    return [line for line in Path("/proc/self/mountinfo").read_text().splitlines() if str(path) in line]


def _loops_of(path: Path) -> list[str]:
    found = []
    for backing in Path("/sys/block").glob("loop*/loop/backing_file"):
        if str(path) in backing.read_text():
            found.append(str(backing))
    return found


def _spec(engine: str, *mounts: VolumeMount) -> SandboxSpec:
    return SandboxSpec(template=TemplateImage("base", base.build(CACHE)), engine=engine, volumes=mounts)


async def _run(handle: SandboxHandle, command: str, user: str = "user") -> tuple[int | None, str]:
    output: list[str] = []
    code = await envd_client.run(
        f"http://{handle.host}:{ENVD_PORT}", command, user=user, shell=("/bin/sh", "-c"),
        on_output=output.append, timeout_s=60,
    )  # fmt: skip
    return code, "".join(output)


async def _chunks(*parts: bytes) -> AsyncIterator[bytes]:
    for part in parts:
        yield part


async def _read(rt: ContainerRuntime, volume_id: str, path: str) -> bytes:
    return b"".join([chunk async for chunk in rt.volume_read(volume_id, path)])


async def _write(rt: ContainerRuntime, volume_id: str, path: str, data: bytes, **options):
    arguments = {"uid": None, "gid": None, "mode": None, "force": False} | options
    return await rt.volume_write(volume_id, path, _chunks(data), **arguments)


@ENGINES
async def test_two_sandboxes_and_the_host_share_a_volume(runtime, engine):
    await runtime.create_volume("vol-share", size_mb=32)
    mount = VolumeMount("vol-share", "/mnt/data")
    first, second = await asyncio.gather(
        runtime.create(_spec(engine, mount)), runtime.create(_spec(engine, mount))
    )
    try:
        assert await _run(first, "stat -c '%u:%g %a' /mnt/data && echo one > /mnt/data/a") == (
            0,
            "1000:1000 755\n",
        )
        assert await _run(second, "cat /mnt/data/a && stat -c '%U' /mnt/data/a") == (0, "one\nuser\n")
        entry = await runtime.volume_stat("vol-share", "/a")
        assert (entry.type, entry.uid, entry.gid, entry.size) == ("file", 1000, 1000, 4)
        assert await _read(runtime, "vol-share", "/a") == b"one\n"
        await _write(runtime, "vol-share", "/b", b"from the host")
        assert await _run(first, "cat /mnt/data/b && stat -c '%u' /mnt/data/b") == (0, "from the host1000\n")
        assert await _run(second, "cat /mnt/data/b") == (0, "from the host")
        await _write(runtime, "vol-share", "/b", b"replaced by the host")  # a file the sandboxes have seen
        assert await _run(second, "cat /mnt/data/b") == (0, "replaced by the host")
        assert await _run(first, "echo appended >> /mnt/data/b && cat /mnt/data/b") == (
            0,
            "replaced by the hostappended\n",
        )
        assert await _read(runtime, "vol-share", "/b") == b"replaced by the hostappended\n"
        assert await _run(second, "touch /mnt/data/rootfile", user="root") == (0, "")
        assert (await runtime.volume_stat("vol-share", "/rootfile")).uid == 0
        with pytest.raises(Conflict):
            await runtime.delete_volume("vol-share")
    finally:
        await runtime.kill(first.sandbox_id)
        await runtime.kill(second.sandbox_id)
        await runtime.host.settle()
    # A new sandbox after both were killed sees what they wrote.
    third = await runtime.create(_spec(engine, mount))
    try:
        assert await _run(third, "cat /mnt/data/a") == (0, "one\n")
    finally:
        await runtime.kill(third.sandbox_id)
        await runtime.host.settle()
    assert _mounts_under(runtime.host.sandboxes_dir) == []
    await runtime.delete_volume("vol-share")
    assert _loops_of(runtime.host.volumes.directory) == []
    assert not (runtime.host.volumes.directory / "vol-share").exists()


@ENGINES
async def test_pauses_keep_the_volume_and_a_paused_sandbox_holds_it(runtime, engine):
    await runtime.create_volume("vol-pause", size_mb=32)
    handle = await runtime.create(_spec(engine, VolumeMount("vol-pause", "/home/user/data")))
    try:
        assert await _run(handle, "echo before > /home/user/data/a") == (0, "")
        for memory in (True, False):
            await runtime.pause(handle.sandbox_id, memory=memory)
            await _write(runtime, "vol-pause", f"/while-{memory}", b"written while paused")
            with pytest.raises(Conflict):
                await runtime.delete_volume("vol-pause")
            await runtime.resume(handle.sandbox_id)
            code, output = await _run(handle, f"cat /home/user/data/a /home/user/data/while-{memory}")
            assert (code, output) == (0, "before\nwritten while paused")
        await runtime.pause(handle.sandbox_id, memory=False)
        with pytest.raises(Conflict, match="volumes"):
            runtime.departure(handle.sandbox_id)  # a volume stays on its node
    finally:
        await runtime.kill(handle.sandbox_id)
        await runtime.host.settle()
    await runtime.delete_volume("vol-pause")


@ENGINES
async def test_a_snapshot_shares_the_volume_and_leaves_its_content_out(runtime, engine, tmp_path):
    await runtime.create_volume("vol-snap", size_mb=32)
    mount = VolumeMount("vol-snap", "/data")
    handle = await runtime.create(_spec(engine, mount))
    started = []
    try:
        assert await _run(handle, "echo in-volume > /data/a && echo in-layer > /home/user/b") == (0, "")
        layer = tmp_path / "snapshot-layer"
        memory = tmp_path / "snapshot-memory" if engine == "gvisor" else None
        spec, kept = await runtime.snapshot(handle.sandbox_id, layer, memory=memory)
        assert spec.volumes == (mount,)
        assert (layer / "home/user/b").is_file()
        assert list((layer / "data").iterdir()) == []  # the mount point only, never the volume's files
        rootfs = Path(f"{layer}:{base.build(CACHE)}")
        template = TemplateImage("snap", rootfs, checkpoint=memory if kept else None)
        copy = await runtime.create(SandboxSpec(template=template, engine=engine, volumes=spec.volumes))
        started.append(copy)
        assert await _run(copy, "cat /data/a && echo from-copy > /data/c") == (0, "in-volume\n")
        assert await _run(handle, "cat /data/c") == (0, "from-copy\n")
        if engine == "gvisor":
            forks = await runtime.fork(handle.sandbox_id, [None])
            assert all(isinstance(fork, SandboxHandle) for fork in forks)
            started.extend(forks)
            assert await _run(forks[0], "cat /data/c && echo from-fork > /data/d") == (0, "from-copy\n")
            assert await _read(runtime, "vol-snap", "/d") == b"from-fork\n"
    finally:
        for sandbox in (handle, *started):
            await runtime.kill(sandbox.sandbox_id)
        await runtime.host.settle()
    await runtime.delete_volume("vol-snap")


@ENGINES
async def test_a_full_volume(runtime, engine):
    await runtime.create_volume("vol-full", size_mb=16)
    handle = await runtime.create(_spec(engine, VolumeMount("vol-full", "/v")))
    try:
        await _write(runtime, "vol-full", "/keep", b"kept")
        _, output = await _run(handle, "dd if=/dev/zero of=/v/big bs=1M count=32 2>&1; echo $?")
        assert "No space left on device" in output and output.endswith("1\n")
        assert await _run(handle, "rm /v/big && sync") == (0, "")
        with pytest.raises(OutOfSpace):
            await _write(runtime, "vol-full", "/keep", b"x" * (32 << 20))
        assert await _read(runtime, "vol-full", "/keep") == b"kept"
        assert [e.name for e in await runtime.volume_list("vol-full", "/", depth=1)] == ["keep"]
    finally:
        await runtime.kill(handle.sandbox_id)
        await runtime.host.settle()
    await runtime.delete_volume("vol-full")


async def test_interrupted_writes_lose_nothing(runtime):
    await runtime.create_volume("vol-crash", size_mb=32)
    await _write(runtime, "vol-crash", "/f", b"old content")

    async def breaking() -> AsyncIterator[bytes]:
        yield b"new content, half"
        raise RuntimeError("the stream broke")

    with pytest.raises(RuntimeError):
        await runtime.volume_write("vol-crash", "/f", breaking(), uid=None, gid=None, mode=None, force=False)
    assert await _read(runtime, "vol-crash", "/f") == b"old content"
    assert [e.name for e in await runtime.volume_list("vol-crash", "/", depth=1)] == ["f"]
    # A sandbox killed while it writes: what was synced before stays whole.
    mount = VolumeMount("vol-crash", "/v")
    handle = await runtime.create(_spec("crun", mount))
    try:
        assert await _run(handle, "echo synced > /v/g && sync") == (0, "")
        await envd_client.run(
            f"http://{handle.host}:{ENVD_PORT}", "dd if=/dev/zero of=/v/g2 bs=64k count=100000",
            user="user", wait=False,
        )  # fmt: skip
        await asyncio.sleep(0.3)
    finally:
        await runtime.kill(handle.sandbox_id)
        await runtime.host.settle()
    assert await _read(runtime, "vol-crash", "/g") == b"synced\n"
    assert await _read(runtime, "vol-crash", "/f") == b"old content"
    again = await runtime.create(_spec("crun", mount))
    try:
        assert await _run(again, "cat /v/g /v/f") == (0, "synced\nold content")
    finally:
        await runtime.kill(again.sandbox_id)
        await runtime.host.settle()
    await runtime.delete_volume("vol-crash")


def _fingerprint(path: str) -> tuple:
    found = os.lstat(path)
    return found.st_mode, found.st_uid, found.st_gid, found.st_mtime_ns, Path(path).read_bytes()


async def test_links_planted_by_a_sandbox_are_never_followed_out(runtime, tmp_path):
    await runtime.create_volume("vol-hostile", size_mb=32)
    shadow, outside = _fingerprint("/etc/shadow"), sorted(os.listdir(runtime.host.volumes.directory))
    handle = await runtime.create(_spec("crun", VolumeMount("vol-hostile", "/v")))
    try:
        planted = "ln -s /etc/shadow /v/shadow && ln -s .. /v/up && ln -s /etc /v/etcdir && mkdir /v/d"
        assert await _run(handle, planted, user="root") == (0, "")
    finally:
        await runtime.kill(handle.sandbox_id)
        await runtime.host.settle()
    link = await runtime.volume_stat("vol-hostile", "/shadow")
    assert (link.type, link.target) == ("symlink", "/etc/shadow")
    for path in ("/shadow", "/etcdir/shadow", "/up/up/etc/shadow"):
        with pytest.raises(NotFound):
            await _read(runtime, "vol-hostile", path)
    listed = {e.path: e.type for e in await runtime.volume_list("vol-hostile", "/", depth=16)}
    assert listed == {"/d": "directory", "/etcdir": "symlink", "/shadow": "symlink", "/up": "symlink"}
    with pytest.raises(NotFound):
        await _write(runtime, "vol-hostile", "/etcdir/planted", b"x")
    with pytest.raises(NotFound):
        await _write(runtime, "vol-hostile", "/etcdir/planted", b"x", force=True)
    with pytest.raises(NotFound):
        await runtime.volume_make_dir("vol-hostile", "/etcdir/x", uid=None, gid=None, mode=None, force=False)
    await runtime.volume_make_dir("vol-hostile", "/up/escape", uid=None, gid=None, mode=None, force=False)
    assert (
        await runtime.volume_stat("vol-hostile", "/escape")
    ).type == "directory"  # ``..`` stops at the top
    with pytest.raises(InvalidRequest):
        await runtime.volume_change("vol-hostile", "/shadow", uid=None, gid=None, mode=0o777)
    await runtime.volume_change("vol-hostile", "/etcdir", uid=5, gid=5, mode=None)  # the link itself
    assert (await runtime.volume_stat("vol-hostile", "/etcdir")).uid == 5
    replaced = await _write(runtime, "vol-hostile", "/shadow", b"replaced the link")
    assert replaced.type == "file"
    await runtime.volume_remove("vol-hostile", "/etcdir")
    await runtime.volume_remove("vol-hostile", "/up")
    for bad in ("/../x", "../../etc/passwd", "/d/../../x", "/a\0b"):
        with pytest.raises(InvalidRequest):
            await runtime.volume_stat("vol-hostile", bad)
    assert _fingerprint("/etc/shadow") == shadow
    assert os.path.isdir("/etc") and os.stat("/etc").st_uid == 0
    assert sorted(os.listdir(runtime.host.volumes.directory)) == outside
    await runtime.delete_volume("vol-hostile")


@pytest.mark.parametrize("volume_id", ["../x", "a/b", "", "A", "x" * 80, ".hidden", "a\0b", "-x"])
async def test_bad_volume_ids(runtime, volume_id):
    with pytest.raises(InvalidRequest):
        await runtime.create_volume(volume_id, size_mb=16)
    with pytest.raises(InvalidRequest):
        await runtime.volume_stat(volume_id, "/")
    with pytest.raises(InvalidRequest):
        await runtime.create(_spec("crun", VolumeMount(volume_id, "/data")))


@pytest.mark.parametrize(
    "paths",
    [
        ("data",), ("/",), ("/proc/x",), ("/sys",), ("/dev/shm",), ("/usr/local/lib/hutch",), ("/usr",),
        ("/usr/local/lib/hutch/envd.pyz/x",), ("/a/../b",), ("/a/",), ("//a",), ("/a", "/a"), ("/a", "/a/b"),
    ],
)  # fmt: skip
async def test_bad_mount_paths(runtime, paths):
    await runtime.create_volume("vol-paths", size_mb=16)
    try:
        with pytest.raises(InvalidRequest, match="mount"):
            await runtime.create(_spec("crun", *(VolumeMount("vol-paths", path) for path in paths)))
        assert list(runtime.host.sandboxes_dir.iterdir()) == []
    finally:
        await runtime.delete_volume("vol-paths")


async def test_unknown_volumes_and_sizes(runtime):
    with pytest.raises(NotFound):
        await runtime.create(_spec("crun", VolumeMount("vol-missing", "/data")))
    assert list(runtime.host.sandboxes_dir.iterdir()) == []
    assert _mounts_under(runtime.host.sandboxes_dir) == []
    with pytest.raises(NotFound):
        await runtime.volume_stat("vol-missing", "/")
    await runtime.delete_volume("vol-missing")  # unknown: fine
    for size in (0, 1, -5):
        with pytest.raises(InvalidRequest):
            await runtime.create_volume("vol-size", size_mb=size)
    await runtime.create_volume("vol-size", size_mb=16)
    with pytest.raises(Conflict):
        await runtime.create_volume("vol-size", size_mb=16)
    assert await runtime.volume_used("vol-size") == 0
    await _write(runtime, "vol-size", "/f", b"x" * 100_000)
    assert 100_000 <= await runtime.volume_used("vol-size") < 200_000
    await runtime.delete_volume("vol-size")


@ENGINES
async def test_a_restarted_node_keeps_its_sandboxes_volumes(tmp_path, engine):
    """A running sandbox adopted after a restart still sees its volume; one paused with its files, whose
    volume the stopped node unmounted (nothing else held it), mounts it again when it resumes."""
    envd = build(tmp_path / "envd.pyz")

    def node() -> ContainerRuntime:
        return ContainerRuntime(data_dir=tmp_path / "data", cache_dir=CACHE, envd_path=envd, subnet=SUBNET)

    try:
        first = node()
        await first.start()
        await first.create_volume("vol-restart", size_mb=32)
        mount = VolumeMount("vol-restart", "/data")
        running, paused = await first.create(_spec(engine, mount)), await first.create(_spec(engine, mount))
        assert await _run(running, "echo kept > /data/a") == (0, "")
        await first.pause(paused.sandbox_id, memory=False)
        await first.let_go()  # a cluster's node restarting: its sandboxes stay as they are
        second = node()
        await second.start()
        try:
            assert {h.sandbox_id for h in await second.list()} == {running.sandbox_id, paused.sandbox_id}
            assert await _run(running, "cat /data/a && echo again > /data/b") == (0, "kept\n")
            with pytest.raises(Conflict):
                await second.delete_volume("vol-restart")
            await second.kill(running.sandbox_id)
        finally:
            await second.close()  # the paused one stays
        third = node()
        await third.start()
        try:
            await third.resume(paused.sandbox_id)
            assert await _run(paused, "cat /data/a /data/b") == (0, "kept\nagain\n")
        finally:
            await third.kill(paused.sandbox_id)
            await third.host.settle()
            await third.delete_volume("vol-restart")
            await third.close()
    finally:
        await _leave_nothing(node(), "vol-restart")  # what a failure above left
    assert _mounts_under(tmp_path) == []
    assert _loops_of(tmp_path) == []


async def _leave_nothing(rt: ContainerRuntime, volume_id: str) -> None:
    """Start a node on the data directory, kill every sandbox it takes back, remove the volume."""
    await rt.start()
    try:
        for handle in await rt.list():
            await rt.kill(handle.sandbox_id)
        await rt.host.settle()
        if rt.host.volumes.exists(volume_id):
            await rt.delete_volume(volume_id)
    finally:
        await rt.close()


async def test_a_volume_held_by_a_sandbox_is_never_mounted_twice(runtime):
    """The node's own mount gone while a sandbox's view holds the file system: mounting the volume again
    reuses that loop device (a second one would be a second ext4 over the same file)."""
    await runtime.create_volume("vol-once", size_mb=16)
    handle = await runtime.create(_spec("crun", VolumeMount("vol-once", "/v")))
    try:
        for private in (
            runtime.host.volumes.directory,
            runtime.host.sandboxes_dir / handle.sandbox_id / "volumes",
        ):
            assert (os.stat(private).st_mode & 0o777, os.stat(private).st_uid) == (0o700, 0)  # root's only
        umount(str(runtime.host.volumes.mountpoint("vol-once")))
        assert len(_loops_of(runtime.host.volumes.image("vol-once"))) == 1  # held by the sandbox's view
        await _write(runtime, "vol-once", "/f", b"one file system")
        assert len(_loops_of(runtime.host.volumes.image("vol-once"))) == 1
        assert await _run(handle, "cat /v/f") == (0, "one file system")
    finally:
        await runtime.kill(handle.sandbox_id)
        await runtime.host.settle()
    await runtime.delete_volume("vol-once")
