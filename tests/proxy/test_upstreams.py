"""The proxy's keep-alive pools: one per sandbox and address, each holding only its own connections, reused
while kept, closed once unused for the idle time (never while a request is in it), all closed at the end."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx
import pytest

from hutch.proxy import upstreams
from hutch.proxy.upstreams import Upstreams

ANSWER = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok"


class Upstream:
    """A keep-alive HTTP server on loopback that counts the connections it got and the ones that ended."""

    def __init__(self) -> None:
        self.opened = 0
        self.ended = 0
        self.server: asyncio.Server | None = None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.opened += 1
        try:
            while True:
                await reader.readuntil(b"\r\n\r\n")
                writer.write(ANSWER)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            self.ended += 1
            writer.close()

    @property
    def address(self) -> tuple[str, int]:
        assert self.server is not None
        return "127.0.0.1", self.server.sockets[0].getsockname()[1]


@pytest.fixture()
async def servers() -> AsyncIterator[list[Upstream]]:
    made = [Upstream() for _ in range(3)]
    for upstream in made:
        upstream.server = await asyncio.start_server(upstream._serve, "127.0.0.1", 0)
    yield made
    for upstream in made:
        assert upstream.server is not None
        upstream.server.close()


async def _get(pools: Upstreams, sandbox_id: str, address: tuple[str, int]) -> None:
    async with pools.pool(sandbox_id, address) as transport:
        host, port = address
        response = await transport.handle_async_request(httpx.Request("GET", f"http://{host}:{port}/"))
        assert await response.aread() == b"ok"
        await response.aclose()


async def _settle() -> None:
    for _ in range(20):
        await asyncio.sleep(0.01)


async def test_each_sandbox_has_a_pool_of_its_own_connections_reused(servers: list[Upstream]) -> None:
    pools = Upstreams()
    for _ in range(3):
        for index, upstream in enumerate(servers):
            await _get(pools, f"sandbox-{index}", upstream.address)
    # A cluster's proxy reaches every sandbox of a node at one address: still one pool per sandbox.
    await _get(pools, "sandbox-3", servers[0].address)
    assert len(pools) == 4
    assert [upstream.opened for upstream in servers] == [2, 1, 1]
    for key, pool in pools._pools.items():
        assert len(pool.transport._pool.connections) == 1, key
    await pools.aclose()
    await _settle()
    assert [upstream.ended for upstream in servers] == [2, 1, 1]
    assert len(pools) == 0


async def test_a_pool_unused_for_the_idle_time_is_closed_but_never_one_in_use(
    servers: list[Upstream],
) -> None:
    now = [1000.0]
    pools = Upstreams(clock=lambda: now[0])
    idle, busy, fresh = servers
    await _get(pools, "idle", idle.address)
    async with pools.pool("busy", busy.address) as transport:
        host, port = busy.address
        response = await transport.handle_async_request(httpx.Request("GET", f"http://{host}:{port}/"))
        now[0] += upstreams.IDLE_S + upstreams.SWEEP_EVERY_S
        await _get(pools, "fresh", fresh.address)  # its end sweeps
        await _settle()
        assert (idle.ended, busy.ended, fresh.ended) == (1, 0, 0)
        assert sorted(sandbox for sandbox, _ in pools._pools) == ["busy", "fresh"]
        assert await response.aread() == b"ok"  # the long request's answer is still read
        await response.aclose()
    now[0] += upstreams.SWEEP_EVERY_S  # sooner than the idle time since either was used: both stay
    await _get(pools, "fresh", fresh.address)
    assert len(pools) == 2
    await _get(pools, "idle", idle.address)  # a sandbox seen again gets a new pool
    assert idle.opened == 2
    await pools.aclose()
    await _settle()
    assert (idle.ended, busy.ended, fresh.ended) == (2, 1, 1)


async def test_beyond_the_bound_the_pools_used_longest_ago_are_closed_first(
    servers: list[Upstream], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(upstreams, "MAX_POOLS", 4)
    now = [1000.0]
    pools = Upstreams(clock=lambda: now[0])
    upstream = servers[0]
    async with pools.pool("oldest, in use", upstream.address):
        for name in ("old", "older", "newer"):  # a tenant's ports, say: each its own pool
            now[0] += 1
            await _get(pools, name, upstream.address)
        now[0] += 1
        await _get(pools, "newest", upstream.address)  # the fifth: three kept, the one in use among them
        await _settle()
        assert sorted(sandbox for sandbox, _ in pools._pools) == [
            "newer",
            "newest",
            "older",
            "oldest, in use",
        ]
        assert (upstream.opened, upstream.ended) == (4, 1)
    await pools.aclose()
