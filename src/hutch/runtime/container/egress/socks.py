"""A SOCKS5 client (RFC 1928, with RFC 1929 username/password auth) for the sandboxes whose egress leaves
through an upstream proxy (``network.egressProxy``): CONNECT only, by name (ATYP=domain, the proxy
resolves it) or by IPv4 address, optionally over TLS to the proxy. Every read has a size and a time bound.
"""

from __future__ import annotations

import asyncio
import ipaddress
import ssl
from collections.abc import Awaitable, Callable

from ....errors import BackendUnavailable
from ...types import UpstreamProxy

Streams = tuple[asyncio.StreamReader, asyncio.StreamWriter]
REPLIES = {
    1: "general failure", 2: "not allowed by the proxy's rules", 3: "network unreachable",
    4: "host unreachable", 5: "connection refused", 6: "TTL expired", 7: "command not supported",
    8: "address type not supported",
}  # fmt: skip


class SocksError(BackendUnavailable):
    """The proxy refused or broke the SOCKS5 exchange (its message never holds the credentials)."""


def proxy_address(proxy: UpstreamProxy) -> tuple[str, int]:
    """``host:port`` (or ``[v6]:port``) split; ``ValueError`` if it is not that."""
    host, colon, port = proxy.address.strip().rpartition(":")
    if not colon or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"egress proxy address {proxy.address!r} is not host:port")
    return host.removeprefix("[").removesuffix("]"), int(port)


def tls_context(proxy: UpstreamProxy) -> ssl.SSLContext:
    """The context the hop to the proxy is verified with: its ``ca_cert`` alone, or the host's store."""
    if proxy.ca_cert:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.load_verify_locations(cadata=proxy.ca_cert)
        return context
    return ssl.create_default_context()


async def open_tunnel(
    proxy: UpstreamProxy,
    target: tuple[str, int],
    dial: Callable[[str, int], Awaitable[Streams]],
    *,
    by_name: bool,
    timeout_s: float,
) -> Streams:
    """A stream to ``target`` (a host name with ``by_name``, else an IPv4 address) through ``proxy``;
    ``dial`` opens the TCP connection to the proxy itself. ``SocksError``/``OSError`` on failure."""
    host, port = proxy_address(proxy)
    async with asyncio.timeout(timeout_s):
        address = await _resolve(host)
        reader, writer = await dial(address, port)
        try:
            if proxy.tls:
                await writer.start_tls(tls_context(proxy), server_hostname=proxy.server_name or host)
            await _negotiate(reader, writer, proxy, target, by_name=by_name)
        except BaseException:
            writer.transport.abort()
            raise
    return reader, writer


async def _resolve(host: str) -> str:
    try:
        return str(ipaddress.IPv4Address(host))
    except ValueError:
        pass
    infos = await asyncio.get_running_loop().getaddrinfo(host, None, family=2, type=1)  # AF_INET, STREAM
    if not infos:
        raise SocksError(f"egress proxy {host!r} does not resolve")
    return infos[0][4][0]


async def _negotiate(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    proxy: UpstreamProxy,
    target: tuple[str, int],
    *,
    by_name: bool,
) -> None:
    auth = proxy.username is not None or proxy.password is not None
    writer.write(b"\x05\x02\x00\x02" if auth else b"\x05\x01\x00")
    version, method = await reader.readexactly(2)
    if version != 5 or method not in ((0, 2) if auth else (0,)):
        raise SocksError("the egress proxy accepts none of the offered authentication methods")
    if method == 2:
        user, password = (proxy.username or "").encode(), (proxy.password or "").encode()
        if len(user) > 255 or len(password) > 255:
            raise SocksError("the egress proxy's username or password is longer than 255 bytes")
        writer.write(bytes([1, len(user)]) + user + bytes([len(password)]) + password)
        _, status = await reader.readexactly(2)
        if status != 0:
            raise SocksError("the egress proxy refused the username and password")
    host, port = target
    if by_name:
        name = host.encode("ascii")
        if not 0 < len(name) <= 255:
            raise SocksError("host name too long for SOCKS5")
        destination = b"\x03" + bytes([len(name)]) + name
    else:
        destination = b"\x01" + ipaddress.IPv4Address(host).packed
    writer.write(b"\x05\x01\x00" + destination + port.to_bytes(2, "big"))
    await writer.drain()
    version, reply, _, kind = await reader.readexactly(4)
    if version != 5:
        raise SocksError("the egress proxy does not speak SOCKS5")
    if reply != 0:
        raise SocksError(f"the egress proxy refused the connection: {REPLIES.get(reply, reply)}")
    if kind == 1:
        await reader.readexactly(4 + 2)
    elif kind == 4:
        await reader.readexactly(16 + 2)
    elif kind == 3:
        (length,) = await reader.readexactly(1)
        await reader.readexactly(length + 2)
    else:
        raise SocksError("the egress proxy answered with an unknown address type")
