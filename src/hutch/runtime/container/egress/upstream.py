"""The client of a sandbox's upstream proxy (``network.egressProxy``): the TCP connection to the proxy,
optionally TLS on it, then a tunnel to the destination by name (the proxy resolves it) or by IPv4 address,
asked for in the proxy's protocol: SOCKS5 (``socks``) or HTTP ``CONNECT`` (``http_connect``). Every read has
a size and a time bound.
"""

from __future__ import annotations

import asyncio
import ipaddress
import ssl
from collections.abc import Awaitable, Callable

from ...types import UpstreamProxy
from . import http_connect, socks

Streams = tuple[asyncio.StreamReader, asyncio.StreamWriter]


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
    ``dial`` opens the TCP connection to the proxy itself. ``OSError``, or the protocol's error (a
    ``BackendUnavailable``), on failure."""
    host, port = proxy_address(proxy)
    async with asyncio.timeout(timeout_s):
        address = await _resolve(host)
        reader, writer = await dial(address, port)
        try:
            if proxy.tls:
                await writer.start_tls(tls_context(proxy), server_hostname=proxy.server_name or host)
            negotiate = http_connect.negotiate if proxy.scheme == "http" else socks.negotiate
            await negotiate(reader, writer, proxy, target, by_name=by_name)
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
        raise OSError(f"egress proxy {host!r} does not resolve")
    return infos[0][4][0]
