"""WebSockets through the proxy, to an echo server standing in for an app on a sandbox port."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from http import HTTPStatus

import pytest
from websockets import ConnectionClosed, InvalidStatus
from websockets.asyncio.client import connect
from websockets.asyncio.server import ServerConnection, serve
from websockets.http11 import Request, Response

from .conftest import SANDBOX_A, SANDBOX_CLOSED


async def _echo(connection: ServerConnection) -> None:
    request = connection.request
    assert request is not None
    await connection.send(json.dumps({"path": request.path, "host": request.headers["Host"]}))
    async for message in connection:
        if message == "close":
            await connection.close(4001, "bye")
            return
        await connection.send(message)


def _refuse(connection: ServerConnection, request: Request) -> Response | None:
    if request.path == "/forbidden":
        return connection.respond(HTTPStatus.FORBIDDEN, "not here\n")
    return None


@pytest.fixture()
async def echo_port() -> AsyncIterator[int]:
    async with serve(
        _echo, "127.0.0.1", 0, subprotocols=["chat"], process_request=_refuse, max_size=None
    ) as server:
        yield next(iter(server.sockets)).getsockname()[1]


def _routing(sandbox_id: str, port: int) -> dict[str, str]:
    return {"E2b-Sandbox-Id": sandbox_id, "E2b-Sandbox-Port": str(port)}


async def test_echo_with_header_routing(proxy, echo_port):
    url = f"ws://127.0.0.1:{proxy.port}/echo?x=1"
    async with connect(
        url, additional_headers=_routing(SANDBOX_A, echo_port), subprotocols=["chat"], max_size=None
    ) as ws:
        assert ws.subprotocol == "chat"
        hello = json.loads(await ws.recv())
        assert hello == {"path": "/echo?x=1", "host": f"127.0.0.1:{proxy.port}"}
        await ws.send("text message")
        assert await ws.recv() == "text message"
        await ws.send(b"\x00\x01binary")
        assert await ws.recv() == b"\x00\x01binary"
        big = b"z" * (2 * 1024 * 1024)
        await ws.send(big)
        assert await ws.recv() == big


async def test_echo_with_host_routing(proxy, echo_port):
    # The URL's host travels in the Host header; the TCP connection goes to the proxy on loopback.
    host = f"{echo_port}-{SANDBOX_A}.localhost:{proxy.port}"
    async with connect(
        f"ws://{host}/", host="127.0.0.1", port=proxy.port, proxy=None, subprotocols=["chat"]
    ) as ws:
        assert json.loads(await ws.recv())["host"] == host


async def test_close_code_reaches_the_client(proxy, echo_port):
    url = f"ws://127.0.0.1:{proxy.port}/"
    async with connect(url, additional_headers=_routing(SANDBOX_A, echo_port), subprotocols=["chat"]) as ws:
        await ws.recv()
        await ws.send("close")
        with pytest.raises(ConnectionClosed):
            await ws.recv()
    assert ws.close_code == 4001
    assert ws.close_reason == "bye"


async def test_refused_handshake_is_passed_back(proxy, echo_port):
    url = f"ws://127.0.0.1:{proxy.port}/forbidden"
    with pytest.raises(InvalidStatus) as caught:
        await connect(url, additional_headers=_routing(SANDBOX_A, echo_port), subprotocols=["chat"])
    assert caught.value.response.status_code == 403
    assert caught.value.response.body == b"not here\n"


async def test_closed_port_answers_502(proxy):
    url = f"ws://127.0.0.1:{proxy.port}/"
    with pytest.raises(InvalidStatus) as caught:
        await connect(url, additional_headers=_routing(SANDBOX_CLOSED, 49983))
    assert caught.value.response.status_code == 502
    assert json.loads(caught.value.response.body)["message"] == "The sandbox is running but port is not open"
