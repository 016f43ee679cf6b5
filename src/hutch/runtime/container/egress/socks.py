"""SOCKS5 (RFC 1928, with RFC 1929 username/password auth) on a connection to a sandbox's upstream proxy:
CONNECT only, by name (ATYP=domain, the proxy resolves it) or by IPv4 address."""

from __future__ import annotations

import asyncio
import ipaddress

from ....errors import BackendUnavailable
from ...types import UpstreamProxy

REPLIES = {
    1: "general failure", 2: "not allowed by the proxy's rules", 3: "network unreachable",
    4: "host unreachable", 5: "connection refused", 6: "TTL expired", 7: "command not supported",
    8: "address type not supported",
}  # fmt: skip


class SocksError(BackendUnavailable):
    """The proxy refused or broke the SOCKS5 exchange (its message never holds the credentials)."""


async def negotiate(
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
