"""HTTP ``CONNECT`` (RFC 9110 §9.3.6) on a connection to a sandbox's upstream proxy, with Basic
credentials (``Proxy-Authorization``) when it has a username: the destination by name (the proxy resolves
it) or by IPv4 address. The proxy's answer head is read within a bound; only its status line is used."""

from __future__ import annotations

import asyncio
import base64

from ....errors import BackendUnavailable
from ...types import UpstreamProxy

MAX_HEAD = 16 * 1024  # the proxy's answer head, status line and headers


class ConnectError(BackendUnavailable):
    """The proxy refused or broke the exchange (its message never holds the credentials)."""


async def negotiate(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    proxy: UpstreamProxy,
    target: tuple[str, int],
    *,
    by_name: bool,
) -> None:
    host, port = target
    if by_name and (not host or not host.isascii() or any(c in host for c in "\r\n /@:[]")):
        raise ConnectError("the destination's name cannot go in a CONNECT request")
    authority = f"{host}:{port}"
    lines = [f"CONNECT {authority} HTTP/1.1", f"Host: {authority}"]
    if proxy.username is not None:
        login = f"{proxy.username}:{proxy.password or ''}".encode()
        lines.append(f"Proxy-Authorization: Basic {base64.b64encode(login).decode()}")
    writer.write(("\r\n".join(lines) + "\r\n\r\n").encode())
    await writer.drain()
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.LimitOverrunError:
        raise ConnectError("the egress proxy's answer head is too long") from None
    except asyncio.IncompleteReadError:
        raise ConnectError("the egress proxy closed the connection during CONNECT") from None
    if len(head) > MAX_HEAD:
        raise ConnectError("the egress proxy's answer head is too long")
    status = head.split(b"\r\n", 1)[0].split(b" ", 2)
    if len(status) < 2 or not status[0].startswith(b"HTTP/1.") or not status[1].isdigit():
        raise ConnectError("the egress proxy does not speak HTTP")
    code = int(status[1])
    if code == 407:
        raise ConnectError("the egress proxy refused the username and password")
    if not 200 <= code < 300:
        raise ConnectError(f"the egress proxy refused the connection: HTTP {code}")
