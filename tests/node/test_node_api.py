"""The node API over a real (fake-backend) runtime, called the way an API replica calls it: through
:class:`RemoteNode`, with the cluster key. What it refuses, and how its errors come back."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from hutch.errors import BackendUnavailable, NodeFull, NodeUnavailable, NotFound, NotSupported
from hutch.node.api import Admission, Capacity, create_node_app
from hutch.runtime.fake import FakeRuntime
from hutch.runtime.remote_node import RemoteNode
from hutch.runtime.types import SandboxSpec, TemplateImage
from tests.conftest import free_port
from tests.node.conftest import serving

KEY = "n" * 40
SPEC = SandboxSpec(template=TemplateImage("base", Path("/")), cpu_count=1, memory_mb=512, disk_mb=1024)


@pytest.fixture(scope="module")
def node() -> Iterator[tuple[str, FakeRuntime]]:
    runtime = FakeRuntime(node_id="node-a")
    admission = Admission(runtime, Capacity(cpu_count=1, memory_mb=1024, disk_mb=4096), cpu_overcommit=2)
    with serving(create_node_app(runtime, key=KEY, admission=admission)) as port:
        yield f"127.0.0.1:{port}", runtime
    assert runtime.reserved().sandboxes == 0, "a test left a sandbox running"


async def _with(address: str, key: str, call):  # type: ignore[no-untyped-def]
    client = RemoteNode("node-a", address, key=key)
    try:
        return await call(client)
    finally:
        await client.close()


def test_create_list_kill_through_the_node_api(node: tuple[str, FakeRuntime]) -> None:
    address, _ = node

    async def scenario(client: RemoteNode) -> None:
        handle = await client.create(SPEC)
        assert handle.node_id == "node-a" and handle.template_id == "base"
        assert [h.sandbox_id for h in await client.list()] == [handle.sandbox_id]
        await client.kill(handle.sandbox_id)
        assert await client.list() == []

    asyncio.run(_with(address, KEY, scenario))


def test_a_full_node_says_so_and_takes_again_once_there_is_room(node: tuple[str, FakeRuntime]) -> None:
    address, _ = node

    async def scenario(client: RemoteNode) -> None:
        first = await client.create(SPEC)
        second = await client.create(SPEC)
        with pytest.raises(NodeFull, match="no room for 1 vCPUs, 512 MiB"):
            await client.create(SPEC)  # memory: 1024 MiB offered, two sandboxes of 512 hold it
        await client.kill(first.sandbox_id)
        third = await client.create(SPEC)
        for handle in (second, third):
            await client.kill(handle.sandbox_id)

    asyncio.run(_with(address, KEY, scenario))


def test_errors_come_back_as_they_were_raised(node: tuple[str, FakeRuntime]) -> None:
    address, _ = node

    async def scenario(client: RemoteNode) -> None:
        with pytest.raises(NotSupported, match="cannot pause"):
            await client.pause("sbxnosuchsandbox0000", memory=True)
        with pytest.raises(NotFound):
            await client.metrics("sbxnosuchsandbox0000")
        with pytest.raises(NotSupported, match="cannot move"):
            await client.departure("sbxnosuchsandbox0000")
        with pytest.raises(NotSupported, match="cannot move"):
            await client.arrive("sbxnosuchsandbox0000", SPEC, source_node="node-b")

    asyncio.run(_with(address, KEY, scenario))


def test_without_the_key_nothing_is_done(node: tuple[str, FakeRuntime]) -> None:
    address, runtime = node
    for key in ("", "wrong", KEY[:-1] + "m"):
        with pytest.raises(BackendUnavailable, match="cluster key is wrong"):
            asyncio.run(_with(address, key, lambda client: client.create(SPEC)))
        for path in ("/sandboxes/sbxnosuchsandbox0000/files", "/sandboxes/sbxnosuchsandbox0000/departure"):
            answer = httpx.get(f"http://{address}/node/v1{path}", headers={"X-Hutch-Cluster-Key": key})
            assert answer.status_code == 401, path
    assert asyncio.run(runtime.list()) == []


def test_a_node_that_does_not_answer_is_unavailable() -> None:
    with pytest.raises(NodeUnavailable, match="does not answer"):
        asyncio.run(_with(f"127.0.0.1:{free_port()}", KEY, lambda client: client.list()))
