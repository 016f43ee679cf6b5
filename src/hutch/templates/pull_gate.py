"""The gate every connection of an image pull goes through.

Checking a registry's address before a pull does not bind where the pull connects: skopeo resolves names
again, follows redirects (blob storage, token realms) and may be answered differently each time. So a pull
runs in a network namespace of its own that has only loopback, where the one thing listening is this gate,
a SOCKS5 proxy that skopeo reaches through ``HTTP_PROXY``/``HTTPS_PROXY``. The gate resolves every name
itself, refuses the connection when any of its addresses is not public or is this node's (unless the
operator lists it in ``internal_registries``) and connects to the address it checked. A redirect to an
internal address, or a name whose answer changes, reaches nothing; a literal loopback address, which Go
never sends to a proxy, reaches the pull's own empty loopback.

The namespace belongs to the pull: a short thread creates it and leaves, the gate's listening socket and
one descriptor keep it alive, and it is gone when the pull ends, even if the process is killed.
"""

from __future__ import annotations

import ctypes
import fcntl
import json
import os
import selectors
import socket
import struct
import subprocess
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv6Address, ip_address, ip_network
from types import TracebackType

from ..errors import Forbidden

Address = IPv4Address | IPv6Address

# Connections one pull may hold open through the gate at once; more are closed unanswered.
MAX_CONNECTIONS = 32
# How long a client has to say where it goes, and the gate to reach it.
HANDSHAKE_TIMEOUT_S = 10.0
CONNECT_TIMEOUT_S = 10.0
# A relayed connection with no traffic either way for this long is closed.
IDLE_TIMEOUT_S = 120.0
# Refusals kept for the pull's error message.
MAX_REFUSALS = 8

_CLONE_NEWNET = 0x40000000
_SIOCGIFFLAGS = 0x8913
_SIOCSIFFLAGS = 0x8914
_IFF_UP = 0x1
_CHUNK = 64 * 1024

_SOCKS_VERSION = 5
_NO_AUTHENTICATION = 0
_NO_ACCEPTABLE_METHOD = 0xFF
_CONNECT = 1
_SUCCEEDED = 0
_GENERAL_FAILURE = 1
_NOT_ALLOWED = 2
_HOST_UNREACHABLE = 4
_CONNECTION_REFUSED = 5
_COMMAND_NOT_SUPPORTED = 7
_ADDRESS_NOT_SUPPORTED = 8


@dataclass(frozen=True)
class Policy:
    """Which addresses registry connections may reach: public ones that are not this node's, and what the
    operator lists in ``internal_registries`` (``host[:port]``, a host name, an address or a network)."""

    internal_registries: Sequence[str] = ()
    node_addresses: frozenset[Address] = field(default_factory=frozenset)

    def addresses(self, host: str, port: int | None = None) -> list[Address]:
        """The addresses of ``host`` a connection may use: all of them, or ``Forbidden`` naming the first
        that is internal. ``OSError`` when the name does not resolve."""
        listed = self.internal_registries
        named = host in listed or (port is not None and _host_port(host, port) in listed)
        found = socket.getaddrinfo(host, port, proto=socket.IPPROTO_TCP)
        addresses = list(dict.fromkeys(_address(item[4][0]) for item in found))
        if named:
            return addresses
        networks = [ip_network(entry, strict=False) for entry in listed if _is_network(entry)]
        for address in addresses:
            if any(address in network for network in networks):
                continue
            if not address.is_global or address.is_multicast or address in self.node_addresses:
                name = _host_port(host, port) if port else host
                raise Forbidden(
                    f"registry {name} is at {address}, an internal address (loopback, private, "
                    "link-local or this node's): the operator must list it in internal_registries"
                )
        return addresses


def node_addresses() -> frozenset[Address]:
    """The addresses of this node's interfaces."""
    done = subprocess.run(["ip", "-j", "address"], capture_output=True, text=True, check=False)
    try:
        links = json.loads(done.stdout or "[]")
    except json.JSONDecodeError:
        return frozenset()
    found: set[Address] = set()
    for link in links:
        for info in link.get("addr_info", ()):
            try:
                found.add(ip_address(str(info.get("local", "")).partition("%")[0]))
            except ValueError:
                continue
    return frozenset(found)


class Gate:
    """A SOCKS5 proxy (CONNECT only, no authentication) that lets through what ``policy`` allows.

    ``serve(listener)`` answers on a listening socket until ``close``; ``refusals`` says what it refused.
    """

    def __init__(self, policy: Policy) -> None:
        self.policy = policy
        self.refusals: list[str] = []
        self._listener: socket.socket | None = None
        self._slots = threading.BoundedSemaphore(MAX_CONNECTIONS)
        self._open: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._closed = threading.Event()
        self._acceptor: threading.Thread | None = None

    def serve(self, listener: socket.socket) -> None:
        """Answer on ``listener`` in a thread of this one's network namespace (connections out are made
        from it)."""
        self._listener = listener
        self._acceptor = threading.Thread(target=self._accept, name="pull-gate", daemon=True)
        self._acceptor.start()

    def close(self) -> None:
        """Stop answering and close every connection still open."""
        self._closed.set()
        if self._listener is not None:
            _shut(self._listener)  # wakes the acceptor's accept()
        if self._acceptor is not None:
            self._acceptor.join()
        if self._listener is not None:
            self._listener.close()
        with self._lock:
            for connection in self._open:
                _shut(connection)

    def _accept(self) -> None:
        assert self._listener is not None
        while not self._closed.is_set():
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            if not self._slots.acquire(blocking=False):
                client.close()
                continue
            threading.Thread(target=self._answer, args=(client,), name="pull-gate-relay", daemon=True).start()

    def _answer(self, client: socket.socket) -> None:
        upstream: socket.socket | None = None
        self._track(client)
        try:
            client.settimeout(HANDSHAKE_TIMEOUT_S)
            target = _handshake(client)
            if target is None:
                return
            upstream = self._connect(client, *target)
            if upstream is None:
                return
            self._track(upstream)
            _reply(client, _SUCCEEDED)
            _relay(client, upstream, self._closed)
        except OSError:
            return
        finally:
            for end in (client, upstream):
                if end is not None:
                    self._untrack(end)
                    end.close()
            self._slots.release()

    def _connect(self, client: socket.socket, host: str, port: int) -> socket.socket | None:
        """A connection to the first reachable allowed address of ``host``, or None with the client told."""
        try:
            addresses = self.policy.addresses(host, port)
        except Forbidden as refused:
            self._refused(refused.message)
            _reply(client, _NOT_ALLOWED)
            return None
        except (OSError, UnicodeError, ValueError):
            _reply(client, _HOST_UNREACHABLE)
            return None
        for address in addresses:
            try:
                return socket.create_connection((str(address), port), timeout=CONNECT_TIMEOUT_S)
            except OSError:
                continue
        _reply(client, _CONNECTION_REFUSED)
        return None

    def _refused(self, message: str) -> None:
        with self._lock:
            if len(self.refusals) < MAX_REFUSALS and message not in self.refusals:
                self.refusals.append(message)

    def _track(self, connection: socket.socket) -> None:
        with self._lock:
            self._open.add(connection)

    def _untrack(self, connection: socket.socket) -> None:
        with self._lock:
            self._open.discard(connection)


class PullNamespace:
    """A network namespace with only loopback, where ``gate`` listens: ``command`` runs a program in it,
    with ``environment`` pointing its HTTP clients at the gate."""

    def __init__(self, gate: Gate) -> None:
        self.gate = gate
        self._namespace: int | None = None
        self._port = 0

    def __enter__(self) -> PullNamespace:
        made: list[tuple[int, socket.socket]] = []
        failed: list[BaseException] = []

        def make() -> None:
            try:
                made.append(_namespace_with_listener())
            except BaseException as error:
                failed.append(error)

        # A thread that leaves afterwards: unsharing changes only its own namespace, never the pool's.
        maker = threading.Thread(target=make, name="pull-namespace")
        maker.start()
        maker.join()
        if failed:
            raise failed[0]
        self._namespace, listener = made[0]
        self._port = listener.getsockname()[1]
        self.gate.serve(listener)
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.gate.close()
        if self._namespace is not None:
            os.close(self._namespace)
            self._namespace = None

    def command(self, argv: Sequence[str]) -> list[str]:
        """``argv`` run inside the namespace."""
        assert self._namespace is not None, "the namespace is not open"
        return ["nsenter", f"--net=/proc/{os.getpid()}/fd/{self._namespace}", "--", *argv]

    def environment(self) -> dict[str, str]:
        """This process's environment with every proxy variable pointing at the gate."""
        proxy = f"socks5://127.0.0.1:{self._port}"
        environment = {
            name: value
            for name, value in os.environ.items()
            if name.lower() not in {"http_proxy", "https_proxy", "all_proxy", "no_proxy"}
        }
        for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY"):
            environment[name] = environment[name.lower()] = proxy
        return environment


def _namespace_with_listener() -> tuple[int, socket.socket]:
    """In the calling thread: a new network namespace with loopback up, a descriptor of it, and a socket
    listening on its loopback."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.unshare(_CLONE_NEWNET) != 0:
        error = ctypes.get_errno()
        raise OSError(error, f"cannot make a network namespace for the pull: {os.strerror(error)}")
    namespace = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as control:
            request = struct.pack("16sh", b"lo", 0)
            flags = struct.unpack("16sh", fcntl.ioctl(control, _SIOCGIFFLAGS, request))[1]
            fcntl.ioctl(control, _SIOCSIFFLAGS, struct.pack("16sh", b"lo", flags | _IFF_UP))
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.bind(("127.0.0.1", 0))
        listener.listen(MAX_CONNECTIONS)
    except BaseException:
        os.close(namespace)
        raise
    return namespace, listener


def _handshake(client: socket.socket) -> tuple[str, int] | None:
    """Where the client wants to go (SOCKS5 greeting and CONNECT request), or None after telling it no."""
    version, count = _read(client, 2)
    methods = _read(client, count)
    if version != _SOCKS_VERSION or _NO_AUTHENTICATION not in methods:
        client.sendall(bytes((_SOCKS_VERSION, _NO_ACCEPTABLE_METHOD)))
        return None
    client.sendall(bytes((_SOCKS_VERSION, _NO_AUTHENTICATION)))
    version, command, _reserved, kind = _read(client, 4)
    if kind == 1:
        host = str(IPv4Address(_read(client, 4)))
    elif kind == 4:
        host = str(IPv6Address(_read(client, 16)))
    elif kind == 3:
        host = _read(client, _read(client, 1)[0]).decode("idna")
    else:
        _reply(client, _ADDRESS_NOT_SUPPORTED)
        return None
    port = struct.unpack("!H", _read(client, 2))[0]
    if version != _SOCKS_VERSION or command != _CONNECT:
        _reply(client, _COMMAND_NOT_SUPPORTED if version == _SOCKS_VERSION else _GENERAL_FAILURE)
        return None
    return host, port


def _read(client: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = client.recv(size - len(data))
        if not chunk:
            raise ConnectionError("the client left during the handshake")
        data += chunk
    return data


def _reply(client: socket.socket, status: int) -> None:
    client.sendall(bytes((_SOCKS_VERSION, status, 0, 1, 0, 0, 0, 0, 0, 0)))


def _relay(client: socket.socket, upstream: socket.socket, closed: threading.Event) -> None:
    """Copy bytes both ways until both sides have finished, one is idle too long, or the gate closes."""
    peers = {client: upstream, upstream: client}
    for end in peers:
        end.setblocking(False)
    open_ends = set(peers)
    with selectors.DefaultSelector() as selector:
        for end in peers:
            selector.register(end, selectors.EVENT_READ)
        while open_ends and not closed.is_set():
            ready = selector.select(timeout=IDLE_TIMEOUT_S)
            if not ready:
                return
            for key, _ in ready:
                source: socket.socket = key.fileobj  # type: ignore[assignment]
                try:
                    data = source.recv(_CHUNK)
                except BlockingIOError:
                    continue
                if not data:
                    selector.unregister(source)
                    open_ends.discard(source)
                    _half_close(peers[source])
                    continue
                peers[source].setblocking(True)
                peers[source].settimeout(IDLE_TIMEOUT_S)
                peers[source].sendall(data)
                peers[source].setblocking(False)


def _half_close(end: socket.socket) -> None:
    try:
        end.shutdown(socket.SHUT_WR)
    except OSError:
        pass


def _shut(end: socket.socket) -> None:
    try:
        end.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass


def _host_port(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _address(text: object) -> Address:
    address = ip_address(str(text).partition("%")[0])
    if isinstance(address, IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _is_network(entry: str) -> bool:
    try:
        ip_network(entry, strict=False)
    except ValueError:
        return False
    return True
