"""Plain HTTP through the proxy: host and header routing to user ports, the proxy's own JSON answers,
and one client connection carrying requests for different sandboxes."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
from e2b import Sandbox

from tests.conftest import free_port

from .conftest import SANDBOX_A, SANDBOX_B, SANDBOX_CLOSED, UNKNOWN_SANDBOX, sdk_sandbox


@pytest.fixture(scope="module")
def web_port(proxy) -> Iterator[int]:
    """``python3 -m http.server`` started in sandbox A's home through the SDK; serves ``hello.txt``."""
    sandbox = sdk_sandbox(Sandbox, proxy, SANDBOX_A)
    sandbox.files.write("hello.txt", "hello from a")
    port = free_port()
    server = sandbox.commands.run(f"python3 -m http.server {port} --bind 127.0.0.1", background=True)
    try:
        deadline = time.monotonic() + 10
        while httpx.get(proxy.url, headers=_routing(SANDBOX_A, port)).status_code == 502:
            assert time.monotonic() < deadline, "http.server did not start"
            time.sleep(0.05)
        yield port
    finally:
        server.kill()


def _routing(sandbox_id: str, port: int) -> dict[str, str]:
    return {"E2b-Sandbox-Id": sandbox_id, "E2b-Sandbox-Port": str(port)}


def test_host_routing_to_a_user_port(proxy, web_port):
    # *.localhost names loopback; the connection goes to 127.0.0.1 and the name travels in Host.
    host = f"{web_port}-{SANDBOX_A}.localhost:{proxy.port}"
    response = httpx.get(f"{proxy.url}/hello.txt", headers={"Host": host})
    assert response.status_code == 200
    assert response.text == "hello from a"


def test_header_routing_to_a_user_port(proxy, web_port):
    response = httpx.get(f"{proxy.url}/hello.txt", headers=_routing(SANDBOX_A, web_port))
    assert response.status_code == 200
    assert response.text == "hello from a"


def test_host_routing_on_another_domain_is_refused(proxy, web_port):
    response = httpx.get(f"{proxy.url}/hello.txt", headers={"Host": f"{web_port}-{SANDBOX_A}.example.com"})
    assert response.status_code == 400
    assert response.json()["code"] == 400


def test_header_routing_needs_both_headers(proxy):
    response = httpx.get(f"{proxy.url}/health", headers={"E2b-Sandbox-Id": SANDBOX_A})
    assert response.status_code == 400
    assert response.json() == {"code": 400, "message": "Missing header: E2b-Sandbox-Port"}
    response = httpx.get(f"{proxy.url}/health", headers={"E2b-Sandbox-Port": "49983"})
    assert response.status_code == 400
    assert response.json()["message"] == "Missing header: E2b-Sandbox-Id"


def test_unknown_sandbox_answer(proxy):
    response = httpx.get(f"{proxy.url}/health", headers=_routing(UNKNOWN_SANDBOX, 49983))
    assert response.status_code == 502
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {
        "sandboxId": UNKNOWN_SANDBOX,
        "message": "The sandbox was not found",
        "code": 502,
    }


def test_closed_port_answer(proxy):
    response = httpx.get(f"{proxy.url}/health", headers=_routing(SANDBOX_CLOSED, 49983))
    assert response.status_code == 502
    assert response.json() == {
        "sandboxId": SANDBOX_CLOSED,
        "message": "The sandbox is running but port is not open",
        "code": 502,
    }


def test_one_connection_serves_several_sandboxes(proxy):
    for sandbox_id in (SANDBOX_A, SANDBOX_B):
        sdk_sandbox(Sandbox, proxy, sandbox_id).files.write("name.txt", sandbox_id)
    with httpx.Client(base_url=proxy.url, limits=httpx.Limits(max_connections=1)) as client:
        peers = set()
        for sandbox_id in (SANDBOX_A, SANDBOX_B, SANDBOX_A, UNKNOWN_SANDBOX, SANDBOX_B):
            response = client.get("/files", params={"path": "name.txt"}, headers=_routing(sandbox_id, 49983))
            peers.add(response.extensions["network_stream"].get_extra_info("client_addr"))
            if sandbox_id == UNKNOWN_SANDBOX:
                assert response.status_code == 502
            else:
                assert response.text == sandbox_id
    assert len(peers) == 1
    assert proxy.resolved[-5:] == [SANDBOX_A, SANDBOX_B, SANDBOX_A, UNKNOWN_SANDBOX, SANDBOX_B]


def test_request_and_response_bodies_stream(proxy):
    """A chunked upload of 3 MiB arrives whole."""
    chunks = [b"x" * 65536] * 50
    response = httpx.post(
        f"{proxy.url}/files",
        params={"path": "streamed.bin"},
        headers={**_routing(SANDBOX_A, 49983), "Content-Type": "application/octet-stream"},
        content=iter(chunks),
    )
    assert response.status_code == 200, response.text
    sandbox = sdk_sandbox(Sandbox, proxy, SANDBOX_A)
    assert sandbox.files.read("streamed.bin", format="bytes") == b"".join(chunks)


class _Upstream:
    """A hand-written HTTP/1.1 server on a sandbox port: ``/headers`` answers with the request head it got,
    ``/broken`` sends one chunk and hangs up, ``/endless`` streams chunks until the connection is gone, then
    sets :attr:`gone`."""

    def __init__(self) -> None:
        self.gone = asyncio.Event()

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1")
        try:
            if head.startswith("GET /headers"):
                body = head.encode("latin-1")
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
                await writer.drain()
            elif head.startswith("GET /broken"):
                writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\ntick\n\r\n")
                await writer.drain()
            else:
                writer.write(
                    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Encoding: x-mine\r\n\r\n"
                )
                while True:
                    writer.write(b"5\r\ntick\n\r\n")
                    await writer.drain()
                    await asyncio.sleep(0.05)
        except ConnectionError:
            self.gone.set()
        finally:
            writer.close()


@pytest.fixture()
async def upstream() -> AsyncIterator[tuple[_Upstream, int]]:
    server = _Upstream()
    listener = await asyncio.start_server(server.handle, "127.0.0.1", 0)
    async with listener:
        yield server, listener.sockets[0].getsockname()[1]


async def test_request_head_as_the_sandbox_sees_it(proxy, upstream):
    _, port = upstream
    reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
    writer.write(
        f"GET /headers?q=%2F HTTP/1.1\r\nHost: {port}-{SANDBOX_A}.localhost\r\n"
        "Connection: keep-alive, X-Private\r\nX-Private: 1\r\nKeep-Alive: timeout=5\r\n"
        "X-Forwarded-For: 10.0.0.1\r\n\r\n".encode()
    )
    await writer.drain()
    status = await reader.readuntil(b"\r\n\r\n")
    length = int(
        next(line for line in status.split(b"\r\n") if line.lower().startswith(b"content-length:"))[15:]
    )
    head = (await reader.readexactly(length)).decode().lower()
    writer.close()
    lines = head.split("\r\n")
    assert lines[0] == "get /headers?q=%2f http/1.1"
    assert f"host: {port}-{SANDBOX_A}.localhost" in lines
    assert "x-forwarded-for: 10.0.0.1, 127.0.0.1" in lines
    assert "x-forwarded-proto: http" in lines
    for header in ("connection", "x-private", "keep-alive", "accept-encoding", "user-agent"):
        assert not any(line.startswith(f"{header}:") for line in lines), header


async def test_a_stream_stops_when_the_client_leaves(proxy, upstream):
    server, port = upstream
    async with httpx.AsyncClient() as client:
        request = client.build_request("GET", f"{proxy.url}/endless", headers=_routing(SANDBOX_A, port))
        response = await client.send(request, stream=True)
        assert response.headers["content-encoding"] == "x-mine"
        chunks = response.aiter_raw()
        assert await anext(chunks) == b"tick\n"
        assert await anext(chunks) == b"tick\n"
        await response.aclose()
    await asyncio.wait_for(server.gone.wait(), 5)


async def test_a_stream_cut_short_upstream_is_cut_short_for_the_client(proxy, upstream):
    _, port = upstream
    async with httpx.AsyncClient() as client:
        request = client.build_request("GET", f"{proxy.url}/broken", headers=_routing(SANDBOX_A, port))
        response = await client.send(request, stream=True)
        chunks = response.aiter_raw()
        assert await anext(chunks) == b"tick\n"
        with pytest.raises(httpx.RemoteProtocolError):
            await anext(chunks)
        await response.aclose()
