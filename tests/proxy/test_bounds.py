"""The proxy against a hostile sandbox port: a sandbox holds nothing of the proxy longer than its client
stays (a terabyte announced and trickled, an answer that never comes), an upstream that goes quiet ends the
request after the idle timeout (while envd's keepalives keep the SDK's streams alive), and WebSocket
messages over the cap close the connection with 1009, from either side."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
from e2b import Sandbox
from e2b.connection_config import KEEPALIVE_PING_INTERVAL_SEC
from websockets import ConnectionClosed
from websockets.asyncio.client import connect
from websockets.asyncio.server import ServerConnection, serve
from websockets.utils import accept_key

from hutch.config import ProxySettings
from hutch.envd.connect import DEFAULT_KEEPALIVE_S
from hutch.proxy import SandboxRoute
from hutch.runtime.types import ENVD_PORT

from .conftest import SANDBOX_A, Proxy, handle, sdk_sandbox, serving

IDLE_TIMEOUT_S = 1.0
MAX_MESSAGE_MB = 1


class _Hostile:
    """A hand-written server on a sandbox port. ``/trickle`` announces a terabyte and sends a byte every
    50 ms; ``/mute`` never answers; ``/quiet`` sends one chunk, then nothing; ``/ws/announce`` accepts a
    WebSocket and announces a frame of a gibibyte; ``/ws/fragments`` sends a message in 256 KiB fragments
    that never ends. :attr:`gone` is set when the proxy has let go of the connection."""

    def __init__(self) -> None:
        self.gone = asyncio.Event()

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1")
        path = head.split(" ", 2)[1]
        try:
            if path == "/trickle":
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 1000000000000\r\n\r\n")
                await self._trickle(writer, b"x", 0.05)
            elif path == "/quiet":
                writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\ntick\n\r\n")
                await writer.drain()
                await reader.read()
            elif path.startswith("/ws/"):
                writer.write(_accept(head))
                if path == "/ws/announce":
                    writer.write(b"\x82\x7f" + (1 << 30).to_bytes(8, "big"))
                    await self._trickle(writer, b"\0" * 1024, 0.01)
                else:
                    fragment = b"\0" * (256 << 10)
                    writer.write(b"\x02\x7f" + len(fragment).to_bytes(8, "big") + fragment)
                    for _ in range(64):
                        writer.write(b"\x00\x7f" + len(fragment).to_bytes(8, "big") + fragment)
                        await writer.drain()
                    await reader.read()
            else:  # /mute
                await reader.read()
        except ConnectionError:
            pass
        finally:
            self.gone.set()
            writer.close()

    @staticmethod
    async def _trickle(writer: asyncio.StreamWriter, data: bytes, every_s: float) -> None:
        for _ in range(int(60 / every_s)):
            writer.write(data)
            await writer.drain()
            await asyncio.sleep(every_s)


def _accept(head: str) -> bytes:
    key = next(
        line.split(":", 1)[1].strip()
        for line in head.split("\r\n")
        if line.lower().startswith("sec-websocket-key:")
    )
    accept = accept_key(key).encode()
    return (
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Accept: " + accept + b"\r\n\r\n"
    )


@pytest.fixture()
async def hostile() -> AsyncIterator[tuple[_Hostile, int]]:
    server = _Hostile()
    listener = await asyncio.start_server(server.handle, "127.0.0.1", 0)
    async with listener:
        yield server, listener.sockets[0].getsockname()[1]


@pytest.fixture(scope="module")
def strict(proxy: Proxy) -> Iterator[Proxy]:
    """A second proxy with a 1 s idle timeout and a 1 MiB WebSocket message cap, to sandbox A."""
    route = SandboxRoute(handle(SANDBOX_A, proxy.envds[SANDBOX_A].port))

    async def resolve(sandbox_id: str) -> SandboxRoute | None:
        return route if sandbox_id == SANDBOX_A else None

    settings = ProxySettings(idle_timeout_s=IDLE_TIMEOUT_S, max_websocket_message_mb=MAX_MESSAGE_MB)
    with serving(settings, resolve) as port:
        yield Proxy(f"http://127.0.0.1:{port}", port, proxy.envds, [])


def _routing(port: int) -> dict[str, str]:
    return {"E2b-Sandbox-Id": SANDBOX_A, "E2b-Sandbox-Port": str(port)}


async def test_a_trickled_terabyte_is_dropped_when_the_client_leaves(proxy, hostile):
    server, port = hostile
    async with httpx.AsyncClient() as client:
        request = client.build_request("GET", f"{proxy.url}/trickle", headers=_routing(port))
        response = await client.send(request, stream=True)
        assert response.headers["content-length"] == "1000000000000"
        assert await anext(response.aiter_raw()) == b"x"
        await response.aclose()
    await asyncio.wait_for(server.gone.wait(), 5)


async def test_an_answer_that_never_comes_is_dropped_when_the_client_leaves(proxy, hostile):
    server, port = hostile
    async with httpx.AsyncClient(timeout=0.5) as client:
        with pytest.raises(httpx.ReadTimeout):
            await client.get(f"{proxy.url}/mute", headers=_routing(port))
    await asyncio.wait_for(server.gone.wait(), 5)


async def test_an_upload_to_a_port_that_never_answers_is_dropped_when_the_client_leaves(proxy, hostile):
    server, port = hostile

    async def body() -> AsyncIterator[bytes]:
        yield b"x" * 1024

    async with httpx.AsyncClient(timeout=0.5) as client:
        with pytest.raises(httpx.ReadTimeout):
            await client.post(f"{proxy.url}/mute", headers=_routing(port), content=body())
    await asyncio.wait_for(server.gone.wait(), 5)


async def test_no_answer_within_the_idle_timeout_is_a_502(strict, hostile):
    server, port = hostile
    async with httpx.AsyncClient(timeout=10) as client:
        response = await client.get(f"{strict.url}/mute", headers=_routing(port))
    assert response.status_code == 502
    assert response.json()["code"] == 502
    await asyncio.wait_for(server.gone.wait(), 5)


async def test_a_stream_quiet_for_the_idle_timeout_is_cut_short(strict, hostile):
    server, port = hostile
    async with httpx.AsyncClient(timeout=10) as client:
        request = client.build_request("GET", f"{strict.url}/quiet", headers=_routing(port))
        response = await client.send(request, stream=True)
        chunks = response.aiter_raw()
        assert await anext(chunks) == b"tick\n"
        with pytest.raises(httpx.RemoteProtocolError):
            await anext(chunks)
        await response.aclose()
    await asyncio.wait_for(server.gone.wait(), 5)


def test_envd_keepalives_keep_a_quiet_command_alive(strict, monkeypatch):
    # The SDK asks envd for a keepalive every 50 s; asked for one every 0.3 s, a command quiet for longer
    # than the idle timeout keeps its stream, and without them it loses it.
    sandbox = sdk_sandbox(Sandbox, strict, SANDBOX_A)
    monkeypatch.setattr("e2b.sandbox_sync.commands.command.KEEPALIVE_PING_INTERVAL_SEC", 0.3)
    assert sandbox.commands.run("sleep 2.5; echo done").stdout == "done\n"
    monkeypatch.setattr("e2b.sandbox_sync.commands.command.KEEPALIVE_PING_INTERVAL_SEC", 50)
    with pytest.raises(Exception):  # noqa: B017 (the SDK's error for a broken stream varies)
        sandbox.commands.run("sleep 2.5; echo done")


def test_the_default_idle_timeout_outlasts_envds_keepalives():
    assert ProxySettings().idle_timeout_s > max(KEEPALIVE_PING_INTERVAL_SEC, DEFAULT_KEEPALIVE_S) * 2


@pytest.mark.parametrize("path", ["/ws/announce", "/ws/fragments"])
async def test_a_sandboxs_message_over_the_cap_closes_with_1009(strict, hostile, path):
    server, port = hostile
    async with connect(
        f"ws://127.0.0.1:{strict.port}{path}", additional_headers=_routing(port), max_size=None
    ) as ws:
        with pytest.raises(ConnectionClosed) as closed:
            await asyncio.wait_for(ws.recv(), 10)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1009
    await asyncio.wait_for(server.gone.wait(), 15)


async def test_a_clients_message_over_the_cap_closes_with_1009(strict):
    codes: list[int | None] = []

    async def echo(connection: ServerConnection) -> None:
        try:
            async for message in connection:
                await connection.send(message)
        finally:
            codes.append(connection.close_code)

    async with serve(echo, "127.0.0.1", 0, max_size=None) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        url = f"ws://127.0.0.1:{strict.port}/"
        async with connect(url, additional_headers=_routing(port), max_size=None) as ws:
            await ws.send(b"small")
            assert await ws.recv() == b"small"
            await ws.send(b"\0" * ((MAX_MESSAGE_MB << 20) + 1))
            with pytest.raises(ConnectionClosed) as closed:
                await asyncio.wait_for(ws.recv(), 10)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1009
        for _ in range(100):
            if codes:
                break
            await asyncio.sleep(0.05)
    assert codes == [1009]


async def test_envd_still_answers_through_the_strict_proxy(strict):
    async with httpx.AsyncClient() as client:
        response = await client.get(f"{strict.url}/health", headers=_routing(ENVD_PORT))
    assert response.status_code == 204
