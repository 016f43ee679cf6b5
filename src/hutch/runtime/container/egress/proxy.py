"""The node's egress proxy: where host names in ``allowOut``/``denyOut`` are enforced.

A sandbox whose policy names hosts has its new outbound TCP connections that a name could decide
redirected here by the firewall (an nftables ``redirect`` to this proxy's port, see ``firewall``). The
kernel keeps the address the sandbox dialled in the connection's conntrack entry; the proxy reads it
with ``SO_ORIGINAL_DST``. It then reads the first bytes the client sends (at most ``peek_limit`` bytes
for at most ``peek_timeout_s``): the server name of a TLS ClientHello or the ``Host`` of an HTTP/1
request. The sandbox's policy decides with the name and the original address, in the firewall's order
(``allowOut`` before ``denyOut`` before internet access). Allowed: the proxy connects to the original
address and port — never anywhere else, and it never resolves the name — through the uplink only, sends
the bytes it read, and copies both ways. Refused: the connection is reset.

The node boundary holds here as in the firewall, whatever a name resolved to (DNS rebinding): an address
closed to every sandbox (loopback, link-local, the sandbox subnet, the node's own…) is refused before the
policy is asked, a name that is such an address literal (``Host: 169.254.169.254``) is refused, and the
upstream socket carries ``PROXY_MARK``, so that the firewall's guard (private ranges, the uplink's
networks) drops its packets as it drops a sandbox's.

A NAT redirect rather than TPROXY: it needs no policy routing and no transparent sockets on the host,
and conntrack, which masquerading uses anyway, remembers the original destination.

A name is only what the client claims. Keeping to the dialled address means a lie never sends the proxy
anywhere the sandbox did not ask for; but a sandbox that sends an allowed name to another address (its
own server, which accepts any name, or a shared host or CDN serving both) reaches that address. Allowed
names keep honest clients to the listed hosts; they do not contain hostile code (allow addresses for
that). Only the first request of a connection is read, never what follows it or what TLS hides.

With header rules (``EgressSettings.rules``), a TLS connection whose server name has a rule is not passed
on as it is but terminated here and rewritten request by request (``intercept``); every other connection
is copied untouched. With an upstream proxy (``EgressSettings.proxy``), the proxy connects through it
(``upstream``: SOCKS5 or HTTP ``CONNECT``): by the name, for a connection a name in ``allowOut`` let out;
by the address otherwise.

A policy change applies at once: new connections follow the new policy, and open connections that it no
longer allows are closed, as the firewall stops routed packets of a connection that it no longer allows.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import socket
import ssl
import struct
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from ....errors import BackendUnavailable
from .authority import Authority
from .firewall import PROXY_MARK, EgressPolicy, closes
from .intercept import Interception, upstream_context
from .rules import HostRule, host_rule
from .sni import INVALID, Sniffed, matches, sniff
from .tls_stream import TlsServerStream
from .upstream import open_tunnel

log = logging.getLogger("hutch.runtime")
SO_ORIGINAL_DST = 80  # linux/netfilter_ipv4.h
CHUNK = 65536
LOG_EVERY_S = 1.0  # at most one refusal logged per sandbox and second: a sandbox cannot flood the log


@dataclass(eq=False)
class _Connection:
    """One proxied connection, so that a policy change can find and close it."""

    sandbox: str
    address: str
    port: int
    client: asyncio.StreamWriter
    upstream: asyncio.StreamWriter | None = None
    sniffed: Sniffed | None = None  # None while the first bytes are being read
    rule: HostRule | None = None  # the header rule it is rewritten by (intercepted), if any
    tasks: set[asyncio.Task] = field(default_factory=set)

    def close(self, *, reset: bool = True) -> None:
        """Close both sides: with a reset (refused, failed, no longer allowed), or after the copies
        ended cleanly with an orderly close that still delivers what is buffered."""
        for task in self.tasks:
            task.cancel()
        for writer in (self.client, self.upstream):
            if writer is None:
                continue
            if reset:
                _reset(writer)
            else:
                writer.close()


def _reset(writer: asyncio.StreamWriter) -> None:
    """Close at once with a TCP reset, so that a refused client fails fast and clearly."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
    """Copy until the end of the stream and pass the end on (a half-close); False if a side failed.
    Memory stays bounded: one chunk in hand, and ``drain`` waits while the other side is slow."""
    try:
        while chunk := await reader.read(CHUNK):
            writer.write(chunk)
            await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()
        return True
    except (OSError, RuntimeError):
        return False


class EgressProxy:
    """One per node: a transparent TCP proxy for the connections the firewall redirects to it.

    ``start`` binds the port (0: any free one, read ``port`` after) before the firewall is installed with
    it; ``set_policy`` before the firewall applies a policy with host names; ``remove`` after the firewall
    forgets the sandbox; ``stop`` after the firewall is uninstalled.
    """

    mark = PROXY_MARK  # of the upstream sockets, whose packets the firewall's guard judges

    def __init__(
        self,
        subnet: str,
        uplink: str | None,
        *,
        port: int = 0,
        peek_timeout_s: float = 5.0,
        peek_limit: int = 16384,
        connect_timeout_s: float = 10.0,
        max_connections: int = 2048,
        max_per_sandbox: int = 256,
        upstream_ca_file: str | None = None,
    ) -> None:
        self.subnet = ipaddress.IPv4Network(subnet)
        self.uplink = uplink
        self.port = port
        self.peek_timeout_s = peek_timeout_s
        self.peek_limit = peek_limit
        self.connect_timeout_s = connect_timeout_s
        self.max_connections = max_connections
        self.max_per_sandbox = max_per_sandbox
        self.counts: Counter[str] = Counter()  # allowed / refused / intercepted, for logs and tests
        # How intercepted connections' servers are verified: the host's store and the operator's extra CAs.
        self.upstream_context: ssl.SSLContext = upstream_context(upstream_ca_file)
        self._authorities: dict[Path, Authority] = {}
        self._policies: dict[str, EgressPolicy] = {}
        self._connections: dict[str, set[_Connection]] = {}
        self._handlers: set[asyncio.Task] = set()
        self._server: asyncio.Server | None = None
        self._logged: dict[str, tuple[float, int]] = {}  # sandbox → (last refusal logged, refusals since)

    # -- the node's calls --------------------------------------------------------------------------------

    async def start(self) -> None:
        # All addresses: the firewall redirects to the address of the sandbox's host interface, and drops
        # every connection to this port that it did not redirect.
        self._server = await asyncio.start_server(
            self._handle, host="0.0.0.0", port=self.port, reuse_address=True, backlog=1024
        )
        self.port = self._server.sockets[0].getsockname()[1]
        log.info("egress proxy listening on port %d", self.port)

    async def stop(self) -> None:
        """Stop listening and close every proxied connection."""
        server, self._server = self._server, None
        if server is not None:
            server.close()
        for connections in self._connections.values():
            for connection in list(connections):
                connection.close()
        for handler in list(self._handlers):
            handler.cancel()
        await asyncio.gather(*self._handlers, return_exceptions=True)
        if server is not None:
            await server.wait_closed()
        self._policies.clear()

    def set_policy(self, sandbox_address: str, policy: EgressPolicy) -> None:
        """Judge the sandbox's new connections by ``policy`` from now on, and close those it refuses."""
        old = self._policies.get(sandbox_address)
        if old is not None and old.authority is not None and old.authority != policy.authority:
            self._authorities.pop(old.authority, None)
        self._policies[sandbox_address] = policy
        for connection in list(self._connections.get(sandbox_address, ())):
            if connection.sniffed is not None and not self._allows(policy, connection):
                log.info("egress of %s to %s closed by a policy change", sandbox_address, _target(connection))
                connection.close()
            elif connection.rule is not None and connection.rule != self._rule(policy, connection):
                log.info("egress of %s to %s closed: its rule changed", sandbox_address, _target(connection))
                connection.close()

    def remove(self, sandbox_address: str) -> None:
        """Forget the sandbox and close its proxied connections."""
        policy = self._policies.pop(sandbox_address, None)
        if policy is not None and policy.authority is not None:
            self._authorities.pop(policy.authority, None)
        self._logged.pop(sandbox_address, None)
        for connection in list(self._connections.get(sandbox_address, ())):
            connection.close()

    # -- one connection ----------------------------------------------------------------------------------

    async def _handle(self, client_reader: asyncio.StreamReader, client: asyncio.StreamWriter) -> None:
        handler = asyncio.current_task()
        assert handler is not None
        self._handlers.add(handler)
        connection = None
        clean = False
        try:
            connection = self._admit(client)
            if connection is not None:
                clean = await self._serve(connection, client_reader)
        except Exception:
            log.exception("egress proxy: connection failed")
        finally:
            self._handlers.discard(handler)
            if connection is None:
                _reset(client)
            else:
                connection.close(reset=not clean)
                connections = self._connections.get(connection.sandbox, set())
                connections.discard(connection)
                if not connections:
                    self._connections.pop(connection.sandbox, None)

    def _admit(self, client: asyncio.StreamWriter) -> _Connection | None:
        """The connection, if it was redirected from a sandbox this proxy knows, to a place it may go."""
        sandbox = client.get_extra_info("peername")[0]
        destination = self._original_destination(client.get_extra_info("socket"))
        if sandbox not in self._policies or destination is None:
            return None
        address, port = destination
        connection = _Connection(sandbox, address, port, client)
        if len(self._connections.get(sandbox, ())) >= self.max_per_sandbox:
            self._refused(connection, f"it has {self.max_per_sandbox} connections open")
            return None
        if sum(map(len, self._connections.values())) >= self.max_connections:
            self._refused(connection, f"the node has {self.max_connections} connections open")
            return None
        if not self._may_connect(address):
            self._refused(connection, "not an outside address")
            return None
        self._connections.setdefault(sandbox, set()).add(connection)
        return connection

    async def _serve(self, connection: _Connection, client_reader: asyncio.StreamReader) -> bool:
        """Peek, decide, connect and copy; True if both directions ended cleanly."""
        policy = self._policies[connection.sandbox]
        early = None
        tls_port = connection.port == 443 and bool(policy.settings.rules)  # a client that speaks first
        if policy.allows(connection.address, None) and not tls_port:
            # Allowed without a name (only a denied name could close it): connect now, so that protocols
            # where the server speaks first do not wait for the peek to time out.
            early = asyncio.ensure_future(self._open(connection))
            connection.tasks.add(early)
        data, connection.sniffed = await self._peek(client_reader)
        policy = self._policies.get(connection.sandbox)
        if policy is None or not self._allows(policy, connection):
            assert connection.sniffed is not None
            self._refused(connection, "malformed" if connection.sniffed.protocol == "invalid" else "policy")
            return False
        self.counts["allowed"] += 1
        log.debug("egress of %s to %s allowed", connection.sandbox, _target(connection))
        rule = self._rule(policy, connection)
        if rule is not None and early is None:
            connection.rule = rule
            return await self._intercept(connection, policy, client_reader, data)
        down = await (early if early is not None else self._open(connection))
        if down is None or connection.upstream is None:
            return False
        connection.upstream.write(data)
        up = asyncio.ensure_future(_pipe(client_reader, connection.upstream))
        connection.tasks.add(up)
        pending = {up, down}
        while pending:
            done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
            if not all(task.result() for task in done):
                return False  # a side failed: both are reset
        return True

    async def _intercept(
        self, connection: _Connection, policy: EgressPolicy, client_reader: asyncio.StreamReader, data: bytes
    ) -> bool:
        """Terminate the sandbox's TLS with a certificate of its CA and rewrite its requests."""
        assert connection.rule is not None and connection.sniffed is not None
        name = connection.sniffed.name
        assert name is not None
        authority = await self._authority(policy)
        if authority is None:
            self._refused(connection, "its egress CA is missing")
            return False
        context = await asyncio.to_thread(authority.context_for, name)
        self.counts["intercepted"] += 1

        async def dial() -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
            reader, writer = await self._dial(connection, policy)
            connection.upstream = writer
            return reader, writer

        sandbox = TlsServerStream(client_reader, connection.client, context, data)
        return await Interception(sandbox, connection.rule, name, dial, self.upstream_context).run()

    async def _authority(self, policy: EgressPolicy) -> Authority | None:
        directory = policy.authority
        if directory is None:
            return None
        found = self._authorities.get(directory)
        if found is None:
            try:
                found = await asyncio.to_thread(Authority.load, directory)
            except (OSError, ValueError) as err:
                log.error("egress CA in %s cannot be read: %s", directory, err)
                return None
            self._authorities[directory] = found
        return found

    async def _dial(
        self, connection: _Connection, policy: EgressPolicy
    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        """A stream to the original destination: through the uplink, or through the sandbox's upstream
        proxy (by name when a name of ``allowOut`` let the connection out). ``OSError`` if it fails."""
        upstream = policy.settings.proxy
        if upstream is None:
            return await self._connect(connection.address, connection.port)
        name = connection.sniffed.name if connection.sniffed is not None else None
        by_name = name is not None and matches(name, policy.allow_names)
        target = (name if by_name and name is not None else connection.address, connection.port)
        try:
            return await open_tunnel(
                upstream, target, self._connect, by_name=by_name, timeout_s=self.connect_timeout_s
            )
        except (ValueError, BackendUnavailable) as err:
            raise OSError(str(err)) from None

    async def _connect(self, address: str, port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        """A TCP connection out through the uplink only, marked as the proxy's (the guard judges it)."""
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            sock.setblocking(False)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_MARK, self.mark)
            if self.uplink:
                # Out through the uplink only, as routed sandbox traffic: never to the host's other networks.
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, self.uplink.encode())
            async with asyncio.timeout(self.connect_timeout_s):
                await asyncio.get_running_loop().sock_connect(sock, (address, port))
            return await asyncio.open_connection(sock=sock, limit=CHUNK)
        except BaseException:
            sock.close()
            raise

    async def _open(self, connection: _Connection) -> asyncio.Task | None:
        """Connect to the original destination (``_dial``) and start copying its bytes back (the task
        doing that); ``None`` if the destination cannot be reached."""
        policy = self._policies.get(connection.sandbox)
        if policy is None:
            return None
        try:
            reader, writer = await self._dial(connection, policy)
        except (OSError, TimeoutError) as err:
            log.info("egress of %s to %s failed: %s", connection.sandbox, _target(connection), err)
            return None
        connection.upstream = writer
        down = asyncio.ensure_future(_pipe(reader, connection.client))
        connection.tasks.add(down)
        return down

    async def _peek(self, reader: asyncio.StreamReader) -> tuple[bytes, Sniffed]:
        """The first bytes and what they name, within the time and byte limits."""
        data = b""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self.peek_timeout_s):
                while len(data) < self.peek_limit:
                    chunk = await reader.read(self.peek_limit - len(data))
                    if not chunk:
                        break
                    data += chunk
                    found = sniff(data)
                    if found is not None:
                        return data, found
        return data, sniff(data, complete=True) or INVALID

    # -- decisions ---------------------------------------------------------------------------------------

    def _refused(self, connection: _Connection, why: str) -> None:
        self.counts["refused"] += 1
        now = time.monotonic()
        last, since = self._logged.get(connection.sandbox, (0.0, 0))
        if now - last < LOG_EVERY_S:
            self._logged[connection.sandbox] = (last, since + 1)
            return
        self._logged[connection.sandbox] = (now, 0)
        more = f" (and {since} more since the last one logged)" if since else ""
        log.info("egress of %s to %s refused: %s%s", connection.sandbox, _target(connection), why, more)

    @staticmethod
    def _rule(policy: EgressPolicy, connection: _Connection) -> HostRule | None:
        """The header rule a TLS connection naming a host is rewritten by, if any."""
        sniffed = connection.sniffed
        if sniffed is None or sniffed.protocol != "tls" or sniffed.name is None or not policy.settings.rules:
            return None
        return host_rule(sniffed.name, policy.settings)

    @staticmethod
    def _allows(policy: EgressPolicy, connection: _Connection) -> bool:
        sniffed = connection.sniffed
        return (
            sniffed is not None
            and sniffed.protocol != "invalid"
            and (sniffed.name is None or not closes(sniffed.name))
            and policy.allows(connection.address, sniffed.name)
        )

    def _original_destination(self, sock: socket.socket) -> tuple[str, int] | None:
        """Where the sandbox dialled, from conntrack; ``None`` if the connection was not redirected."""
        try:
            raw = sock.getsockopt(socket.SOL_IP, SO_ORIGINAL_DST, 16)
        except OSError:
            return None
        destination = socket.inet_ntoa(raw[4:8]), int.from_bytes(raw[2:4], "big")
        return None if destination == sock.getsockname()[:2] else destination

    def _may_connect(self, address: str) -> bool:
        """An outside unicast address: not the host's own, nor a sandbox's, loopback, link-local and the
        like. (The firewall never redirects those; this holds even if it did.)"""
        if closes(address) or ipaddress.IPv4Address(address) in self.subnet:
            return False
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            try:
                probe.bind((address, 0))  # succeeds only for the host's own addresses
            except OSError:
                return True
        return False


def _target(connection: _Connection) -> str:
    name = connection.sniffed.name if connection.sniffed is not None else None
    where = f"{connection.address}:{connection.port}"
    return f"{where} ({name})" if name else where
