"""The SOCKS5 client of the egress proxy against a small server: auth, by name or by address, refusals and
malformed answers end in an error, never a hang."""

from __future__ import annotations

import asyncio

import pytest

from hutch.runtime.container.egress.socks import SocksError
from hutch.runtime.container.egress.upstream import open_tunnel, proxy_address
from hutch.runtime.types import UpstreamProxy


async def _dial(address: str, port: int):
    return await asyncio.open_connection(address, port)


@pytest.fixture()
async def server():
    seen: list[bytes] = []
    mode = {"reply": b"\x05\x00\x00\x01" + bytes(6)}

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readexactly(2)
            methods = await reader.readexactly(head[1])
            if 2 in methods:
                writer.write(b"\x05\x02")
                _, ulen = await reader.readexactly(2)
                user = await reader.readexactly(ulen)
                (plen,) = await reader.readexactly(1)
                password = await reader.readexactly(plen)
                writer.write(b"\x01\x00" if (user, password) == (b"u", b"p") else b"\x01\x01")
            else:
                writer.write(b"\x05\x00")
            request = await reader.read(300)
            seen.append(request)
            writer.write(mode["reply"])
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


async def test_by_name_and_by_address(server):
    port, seen, _ = server
    proxy = UpstreamProxy(f"127.0.0.1:{port}", "u", "p")
    reader, writer = await open_tunnel(proxy, ("api.test", 443), _dial, by_name=True, timeout_s=5)
    writer.write(b"ping")
    assert await reader.read(4) == b"ping"
    writer.close()
    reader, writer = await open_tunnel(proxy, ("203.0.113.7", 80), _dial, by_name=False, timeout_s=5)
    writer.close()
    assert seen == [
        b"\x05\x01\x00\x03\x08api.test\x01\xbb",
        b"\x05\x01\x00\x01\xcb\x00\x71\x07\x00\x50",
    ]


async def test_refusals_and_bad_answers_fail(server):
    port, _, mode = server
    with pytest.raises(SocksError, match="username and password"):
        await open_tunnel(
            UpstreamProxy(f"127.0.0.1:{port}", "u", "bad"), ("a.test", 1), _dial, by_name=True, timeout_s=5
        )
    mode["reply"] = b"\x05\x05\x00\x01" + bytes(6)
    with pytest.raises(SocksError, match="connection refused"):
        await open_tunnel(UpstreamProxy(f"127.0.0.1:{port}"), ("a.test", 1), _dial, by_name=True, timeout_s=5)
    mode["reply"] = b"\x05\x00\x00\x09"
    with pytest.raises(SocksError, match="unknown address type"):
        await open_tunnel(UpstreamProxy(f"127.0.0.1:{port}"), ("a.test", 1), _dial, by_name=True, timeout_s=5)
    mode["reply"] = b"\x05"  # then silence
    with pytest.raises((TimeoutError, asyncio.IncompleteReadError)):
        await open_tunnel(UpstreamProxy(f"127.0.0.1:{port}"), ("a.test", 1), _dial, by_name=True, timeout_s=1)


def test_proxy_addresses():
    assert proxy_address(UpstreamProxy("proxy.example.com:1080")) == ("proxy.example.com", 1080)
    assert proxy_address(UpstreamProxy("[2001:db8::1]:1080")) == ("2001:db8::1", 1080)
    for bad in ("proxy", "proxy:0", "proxy:99999", ":1080", "proxy:x"):
        with pytest.raises(ValueError):
            proxy_address(UpstreamProxy(bad))
