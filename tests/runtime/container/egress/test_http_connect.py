"""The HTTP ``CONNECT`` client of the egress proxy (an ``egressProxy`` written ``http://host:port``) against
a small proxy: Basic credentials, by name or by address, refusals, an endless answer head and silence end
in an error, never a hang."""

from __future__ import annotations

import asyncio
import base64

import pytest

from hutch.runtime.container.egress.http_connect import ConnectError
from hutch.runtime.container.egress.upstream import open_tunnel
from hutch.runtime.types import UpstreamProxy

LOGIN = "Basic " + base64.b64encode(b"u:p").decode()


async def _dial(address: str, port: int):
    return await asyncio.open_connection(address, port)


@pytest.fixture()
async def server():
    seen: list[str] = []
    mode = {"answer": b"HTTP/1.1 200 Connection established\r\nVia: test\r\n\r\n"}

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = (await reader.readuntil(b"\r\n\r\n")).decode()
            seen.append(head)
            if f"Proxy-Authorization: {LOGIN}" not in head:
                writer.write(b"HTTP/1.1 407 Proxy Authentication Required\r\nContent-Length: 0\r\n\r\n")
            else:
                writer.write(mode["answer"])
                await writer.drain()
                writer.write(await reader.read(100))  # echo
            await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    listener = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = listener.sockets[0].getsockname()[1]
    yield port, seen, mode
    listener.close()


def _proxy(port: int, password: str = "p") -> UpstreamProxy:
    return UpstreamProxy(f"127.0.0.1:{port}", "u", password, scheme="http")


async def test_by_name_and_by_address(server):
    port, seen, _ = server
    reader, writer = await open_tunnel(_proxy(port), ("api.test", 443), _dial, by_name=True, timeout_s=5)
    writer.write(b"ping")
    assert await reader.read(4) == b"ping"
    writer.close()
    reader, writer = await open_tunnel(_proxy(port), ("203.0.113.7", 80), _dial, by_name=False, timeout_s=5)
    writer.close()
    assert [head.split("\r\n")[:2] for head in seen] == [
        ["CONNECT api.test:443 HTTP/1.1", "Host: api.test:443"],
        ["CONNECT 203.0.113.7:80 HTTP/1.1", "Host: 203.0.113.7:80"],
    ]


async def test_refusals_and_bad_answers_fail(server):
    port, _, mode = server
    with pytest.raises(ConnectError, match="username and password"):
        await open_tunnel(_proxy(port, "bad"), ("a.test", 1), _dial, by_name=True, timeout_s=5)
    mode["answer"] = b"HTTP/1.1 403 Forbidden\r\n\r\n"
    with pytest.raises(ConnectError, match="HTTP 403"):
        await open_tunnel(_proxy(port), ("a.test", 1), _dial, by_name=True, timeout_s=5)
    mode["answer"] = b"SSH-2.0-nope\r\n\r\n"
    with pytest.raises(ConnectError, match="does not speak HTTP"):
        await open_tunnel(_proxy(port), ("a.test", 1), _dial, by_name=True, timeout_s=5)
    mode["answer"] = b"HTTP/1.1 200 OK\r\nX: " + b"a" * (256 * 1024)  # a head that never ends
    with pytest.raises((ConnectError, TimeoutError)):
        await open_tunnel(_proxy(port), ("a.test", 1), _dial, by_name=True, timeout_s=2)
    mode["answer"] = b"HTTP/1.1 200"  # then silence
    with pytest.raises((TimeoutError, ConnectError)):
        await open_tunnel(_proxy(port), ("a.test", 1), _dial, by_name=True, timeout_s=1)


async def test_a_name_that_would_break_the_request_line_is_refused(server):
    port, seen, _ = server
    for name in ("a.test\r\nX-Injected: 1", "user@a.test", "a.test:80", ""):
        with pytest.raises(ConnectError, match="cannot go in a CONNECT"):
            await open_tunnel(_proxy(port), (name, 443), _dial, by_name=True, timeout_s=5)
    assert seen == []
