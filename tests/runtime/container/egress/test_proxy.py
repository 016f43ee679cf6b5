"""The egress proxy on loopback: what it lets through, what it refuses, and its limits.

Here the original destination is given instead of read from conntrack (loopback connections are not
redirected); ``tests/security/test_egress_names.py`` runs the real path, firewall redirect included.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator

import pytest

from hutch.runtime.container.egress.firewall import EgressPolicy
from hutch.runtime.container.egress.proxy import EgressProxy

SANDBOX = "127.0.0.1"  # the peer address the proxy sees
HELLO = b"GET / HTTP/1.1\r\nHost: allowed.test\r\n\r\n"


class LoopbackProxy(EgressProxy):
    """The proxy with every connection "redirected" to ``destination``, which may be on loopback."""

    destination: tuple[str, int] = ("127.0.0.1", 1)
    mark = 0  # loopback upstreams, which the node's firewall guard drops for marked sockets

    def _original_destination(self, sock):
        return self.destination

    def _may_connect(self, address: str) -> bool:
        return True


class Upstream:
    """A loopback server that records what it receives and answers each connection as told."""

    def __init__(self, *, banner: bytes = b"", reply: bytes = b"pong") -> None:
        self.banner, self.reply = banner, reply
        self.received: list[bytes] = []
        self.server: asyncio.Server | None = None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError):
            if self.banner:
                writer.write(self.banner)
                await writer.drain()
            data = await reader.read(65536)
            self.received.append(data)
            writer.write(self.reply)
            await writer.drain()
            # Then echo until the client is done.
            while chunk := await reader.read(65536):
                writer.write(chunk)
                await writer.drain()
            writer.close()

    @property
    def port(self) -> int:
        assert self.server is not None
        return self.server.sockets[0].getsockname()[1]


@pytest.fixture()
async def upstream() -> AsyncIterator[Upstream]:
    server = Upstream()
    server.server = await asyncio.start_server(server._serve, "127.0.0.1", 0)
    yield server
    server.server.close()


@pytest.fixture()
async def proxy(upstream) -> AsyncIterator[LoopbackProxy]:
    running = LoopbackProxy("10.99.0.0/16", None, peek_timeout_s=0.5, max_per_sandbox=4)
    running.destination = ("127.0.0.1", upstream.port)
    await running.start()
    yield running
    await running.stop()


async def _connect(proxy: EgressProxy) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection("127.0.0.1", proxy.port)


async def _exchange(proxy: EgressProxy, first: bytes) -> bytes:
    """Send ``first``; what comes back until the proxy or the server closes (b"" when refused)."""
    reader, writer = await _connect(proxy)
    try:
        writer.write(first)
        await writer.drain()
        return await asyncio.wait_for(reader.read(65536), 5)
    except ConnectionResetError:
        return b""
    finally:
        writer.close()


NAMES_ONLY = EgressPolicy(False, ("allowed.test", "*.wild.test"), ("0.0.0.0/0",))


@pytest.mark.parametrize(
    ("first", "answer"),
    [
        (HELLO, b"pong"),
        (b"GET / HTTP/1.1\r\nHost: ALLOWED.test:8080\r\n\r\n", b"pong"),
        (b"GET / HTTP/1.1\r\nHost: a.b.wild.test\r\n\r\n", b"pong"),
        (b"GET / HTTP/1.1\r\nHost: wild.test\r\n\r\n", b""),
        (b"GET / HTTP/1.1\r\nHost: other.test\r\n\r\n", b""),
        (b"GET / HTTP/1.1\r\nHost: allowed.test\r\nHost: other.test\r\n\r\n", b""),
        (b"GET / HTTP/1.0\r\n\r\n", b""),
        (b"SSH-2.0-x\r\n", b""),
        (b"\x16\x03\x01\x00\x05\x02\x00\x00\x01\x00", b""),
    ],
)
async def test_names_decide(proxy, upstream, first, answer):
    proxy.set_policy(SANDBOX, NAMES_ONLY)
    assert await _exchange(proxy, first) == answer
    if answer:
        assert upstream.received == [first]  # the peeked bytes reach the server unchanged
    else:
        assert upstream.received == []


async def test_precedence_of_addresses_and_names(proxy, upstream):
    # An allowed address needs no name.
    proxy.set_policy(SANDBOX, EgressPolicy(False, ("127.0.0.1",), ("0.0.0.0/0",)))
    assert await _exchange(proxy, b"\x00raw") == b"pong"
    # A denied name closes what the internet default opens; other names and no name pass.
    proxy.set_policy(SANDBOX, EgressPolicy(True, (), ("blocked.test",)))
    assert await _exchange(proxy, b"GET / HTTP/1.1\r\nHost: blocked.test\r\n\r\n") == b""
    assert await _exchange(proxy, b"GET / HTTP/1.1\r\nHost: x.test\r\n\r\n") == b"pong"
    assert await _exchange(proxy, b"\x00raw") == b"pong"
    # allowOut before denyOut: an allowed name opens a denied address.
    proxy.set_policy(SANDBOX, EgressPolicy(False, ("allowed.test",), ("127.0.0.0/8", "allowed.test")))
    assert await _exchange(proxy, HELLO) == b"pong"


@pytest.mark.parametrize(
    "first",
    [
        b"GET / HTTP/1.1\r\nHost: 169.254.169.254\r\n\r\n",
        b"GET http://127.0.0.1:8080/ HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n\r\n",
        b"CONNECT 169.254.169.254:80 HTTP/1.1\r\nHost: 169.254.169.254:80\r\n\r\n",
        b"CONNECT [fe80::1]:80 HTTP/1.1\r\n\r\n",
    ],
)
async def test_a_closed_address_named_by_the_client_is_refused(proxy, upstream, first):
    """Whatever the policy: a Host or CONNECT target that is a link-local or loopback literal."""
    proxy.set_policy(SANDBOX, EgressPolicy(True, ("*",)))
    assert await _exchange(proxy, first) == b""
    assert not any(upstream.received)  # (an early connection to the dialled address gets no bytes)


async def test_a_server_that_speaks_first_is_not_held_up(proxy, upstream):
    upstream.banner = b"220 ready\r\n"
    proxy.set_policy(SANDBOX, EgressPolicy(True, (), ("blocked.test",)))
    reader, writer = await _connect(proxy)
    started = time.monotonic()
    assert await asyncio.wait_for(reader.readexactly(11), 2) == b"220 ready\r\n"
    assert time.monotonic() - started < proxy.peek_timeout_s
    writer.write(b"EHLO me\r\n")
    assert await asyncio.wait_for(reader.readexactly(4), 2) == b"pong"
    writer.close()


async def test_silence_is_refused_after_the_peek_timeout(proxy, upstream):
    proxy.set_policy(SANDBOX, NAMES_ONLY)
    reader, writer = await _connect(proxy)
    started = time.monotonic()
    with contextlib.suppress(ConnectionResetError):
        assert await asyncio.wait_for(reader.read(100), 3) == b""
    assert 0.4 < time.monotonic() - started < 2
    writer.close()
    assert upstream.received == []


async def test_the_peek_stops_at_its_byte_limit(proxy, upstream):
    proxy.set_policy(SANDBOX, NAMES_ONLY)
    endless = b"GET / HTTP/1.1\r\nHost: allowed.test\r\nX-Long: " + b"a" * (proxy.peek_limit + 4096)
    started = time.monotonic()
    assert await _exchange(proxy, endless) == b""
    assert time.monotonic() - started < proxy.peek_timeout_s
    assert upstream.received == []


async def test_a_policy_change_applies_to_open_connections(proxy, upstream):
    proxy.set_policy(SANDBOX, NAMES_ONLY)
    reader, writer = await _connect(proxy)
    writer.write(HELLO)
    assert await asyncio.wait_for(reader.readexactly(4), 2) == b"pong"
    # Still allowed: the connection stays.
    proxy.set_policy(SANDBOX, EgressPolicy(False, ("allowed.test",), ()))
    writer.write(b"echo")
    assert await asyncio.wait_for(reader.readexactly(4), 2) == b"echo"
    # No longer allowed: closed, and new connections are refused.
    proxy.set_policy(SANDBOX, EgressPolicy(False, ("other.test",), ("0.0.0.0/0",)))
    with contextlib.suppress(ConnectionResetError):
        assert await asyncio.wait_for(reader.read(100), 2) == b""
    writer.close()
    assert await _exchange(proxy, HELLO) == b""


async def test_remove_closes_and_refuses(proxy, upstream):
    proxy.set_policy(SANDBOX, NAMES_ONLY)
    reader, writer = await _connect(proxy)
    writer.write(HELLO)
    assert await asyncio.wait_for(reader.readexactly(4), 2) == b"pong"
    proxy.remove(SANDBOX)
    with contextlib.suppress(ConnectionResetError):
        assert await asyncio.wait_for(reader.read(100), 2) == b""
    writer.close()
    assert await _exchange(proxy, HELLO) == b""


async def test_an_unknown_sandbox_is_refused(proxy, upstream):
    assert await _exchange(proxy, HELLO) == b""
    assert upstream.received == []


async def test_connections_per_sandbox_are_capped(proxy, upstream):
    proxy.set_policy(SANDBOX, NAMES_ONLY)
    held = [await _connect(proxy) for _ in range(proxy.max_per_sandbox)]
    await asyncio.sleep(0.05)
    assert await _exchange(proxy, HELLO) == b""
    for _, writer in held:
        writer.close()
    await asyncio.sleep(0.6)  # the held connections' peeks time out
    assert await _exchange(proxy, HELLO) == b"pong"


async def test_half_close_and_a_large_transfer(proxy, upstream):
    proxy.set_policy(SANDBOX, NAMES_ONLY)
    reader, writer = await _connect(proxy)
    writer.write(HELLO)
    assert await asyncio.wait_for(reader.readexactly(4), 2) == b"pong"
    payload = bytes(range(256)) * 16384  # 4 MiB each way
    writer.write(payload)
    writer.write_eof()
    echoed = await asyncio.wait_for(reader.read(-1), 20)  # up to the server's close after our EOF
    assert echoed == payload
    writer.close()


async def test_an_unreachable_destination_is_a_reset(proxy, upstream):
    proxy.destination = ("127.0.0.1", 1)  # nothing listens there
    proxy.set_policy(SANDBOX, NAMES_ONLY)
    assert await _exchange(proxy, HELLO) == b""


async def test_stop_closes_everything(upstream):
    running = LoopbackProxy("10.99.0.0/16", None)
    running.destination = ("127.0.0.1", upstream.port)
    await running.start()
    running.set_policy(SANDBOX, NAMES_ONLY)
    reader, writer = await asyncio.open_connection("127.0.0.1", running.port)
    writer.write(HELLO)
    assert await asyncio.wait_for(reader.readexactly(4), 2) == b"pong"
    await running.stop()
    with contextlib.suppress(ConnectionResetError):
        assert await asyncio.wait_for(reader.read(100), 2) == b""
    writer.close()
    with pytest.raises(OSError):
        await asyncio.open_connection("127.0.0.1", running.port)


async def test_a_connection_that_was_not_redirected_is_refused(upstream):
    running = EgressProxy("10.99.0.0/16", None)
    await running.start()
    try:
        running.set_policy(SANDBOX, EgressPolicy(True))
        assert await _exchange(running, HELLO) == b""
        assert running.counts["allowed"] == 0
    finally:
        await running.stop()


@pytest.mark.parametrize(
    ("address", "allowed"),
    [
        ("192.0.2.10", True),
        ("8.8.8.8", True),
        ("127.0.0.1", False),
        ("127.1.2.3", False),
        ("169.254.169.254", False),
        ("169.254.170.2", False),
        ("0.1.2.3", False),
        ("10.99.0.3", False),  # a sandbox
        ("224.0.0.1", False),
        ("0.0.0.0", False),
        ("240.0.0.1", False),
        ("255.255.255.255", False),
    ],
)
def test_only_outside_addresses_are_dialled(address, allowed):
    assert EgressProxy("10.99.0.0/16", None)._may_connect(address) is allowed
