"""A node's volumes through the node API, called as an API replica calls them (``RemoteNode``, the cluster
key): made, written and read as streams, listed, changed, removed and deleted, with the node's errors
coming back as they were raised, and nothing done without the key."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest

from hutch.errors import BackendUnavailable, Conflict, InvalidRequest, NotFound, OutOfSpace
from hutch.node.api import Admission, Capacity, create_node_app
from hutch.runtime.container import ContainerRuntime
from hutch.runtime.remote_node import RemoteNode
from tests.node.conftest import serving

KEY = "v" * 40
MIB = 1 << 20


@pytest.fixture()
def node(tmp_path) -> Iterator[tuple[str, ContainerRuntime]]:
    """A container runtime's node API (volumes need no started node: no sandbox runs here)."""
    if os.geteuid() != 0:
        pytest.fail("volumes need root (loop mounts)")
    runtime = ContainerRuntime(
        data_dir=tmp_path / "data", cache_dir=tmp_path / "cache", envd_path=tmp_path / "envd.pyz",
        subnet="10.254.0.0/16", egress_interface="off",
    )  # fmt: skip
    admission = Admission(runtime, Capacity(cpu_count=1, memory_mb=1024, disk_mb=4096), cpu_overcommit=1)
    with serving(create_node_app(runtime, key=KEY, admission=admission)) as port:
        yield f"127.0.0.1:{port}", runtime
    assert [
        line for line in Path("/proc/self/mountinfo").read_text().splitlines() if str(tmp_path) in line
    ] == []


async def _with(address: str, key: str, call):  # type: ignore[no-untyped-def]
    client = RemoteNode("node-a", address, key=key)
    try:
        return await call(client)
    finally:
        await client.close()


async def _megabytes(count: int) -> AsyncIterator[bytes]:
    for index in range(count):
        yield bytes([index]) * MIB


def test_a_volume_through_the_node_api(node: tuple[str, ContainerRuntime]) -> None:
    address, _ = node

    async def scenario(client: RemoteNode) -> None:
        await client.create_volume("vol-node", size_mb=32)
        with pytest.raises(Conflict):
            await client.create_volume("vol-node", size_mb=32)
        root = await client.volume_stat("vol-node", "/")
        assert (root.type, root.uid, root.gid, root.mode) == ("directory", 1000, 1000, 0o755)
        made = await client.volume_make_dir("vol-node", "/a/b", uid=None, gid=None, mode=0o700, force=True)
        assert (made.path, made.mode, made.uid) == ("/a/b", 0o700, 1000)
        written = await client.volume_write(
            "vol-node", "/a/b/big", _megabytes(3), uid=0, gid=0, mode=0o600, force=False
        )
        assert (written.size, written.uid, written.mode) == (3 * MIB, 0, 0o600)
        content = b"".join([chunk async for chunk in client.volume_read("vol-node", "/a/b/big")])
        assert content == b"".join([bytes([i]) * MIB for i in range(3)])
        assert [e.path for e in await client.volume_list("vol-node", "/", depth=3)] == [
            "/a",
            "/a/b",
            "/a/b/big",
        ]
        changed = await client.volume_change("vol-node", "/a/b/big", uid=1000, gid=None, mode=0o644)
        assert (changed.uid, changed.gid, changed.mode) == (1000, 0, 0o644)
        assert 3 * MIB <= await client.volume_used("vol-node") < 4 * MIB
        with pytest.raises(OutOfSpace):
            await client.volume_write(
                "vol-node", "/huge", _megabytes(40), uid=None, gid=None, mode=None, force=False
            )
        await client.volume_remove("vol-node", "/a")
        assert await client.volume_list("vol-node", "/", depth=1) == []
        with pytest.raises(NotFound):
            [chunk async for chunk in client.volume_read("vol-node", "/a/b/big")]
        with pytest.raises(InvalidRequest):
            await client.volume_stat("vol-node", "/../etc")
        with pytest.raises(InvalidRequest):
            await client.volume_list("vol-node", "/", depth=17)
        with pytest.raises(InvalidRequest):
            await client.create_volume("not_an.id", size_mb=32)
        await client.delete_volume("vol-node")
        with pytest.raises(NotFound):
            await client.volume_stat("vol-node", "/")

    asyncio.run(_with(address, KEY, scenario))


def test_without_the_key_no_volume_is_touched(node: tuple[str, ContainerRuntime]) -> None:
    address, runtime = node
    for key in ("", "wrong"):
        with pytest.raises(BackendUnavailable, match="cluster key is wrong"):
            asyncio.run(_with(address, key, lambda client: client.create_volume("vol-nokey", size_mb=32)))
        answer = httpx.get(
            f"http://{address}/node/v1/volumes/vol-nokey/stat?path=/", headers={"X-Hutch-Cluster-Key": key}
        )
        assert answer.status_code == 401
    assert not runtime.host.volumes.directory.exists()
