"""The gate of image pulls: what it lets through and refuses (as a SOCKS5 proxy on loopback), the pull's
own network namespace, and pulls through it: an allowed registry works, and a registry that redirects to
an internal address or to the host's loopback reaches neither."""

from __future__ import annotations

import contextlib
import http.server
import json
import os
import socket
import struct
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from hutch.errors import Forbidden
from hutch.templates.oci_image import ImageUnavailable, pull
from hutch.templates.pull_gate import MAX_CONNECTIONS, Gate, Policy, PullNamespace
from tests.netns import joined_namespace
from tests.registry import LocalImage, Registry, push
from tests.stack import WORKER

HOST_IP, INSIDE_IP = f"10.247.{WORKER}.1", f"10.247.{WORKER}.2"


class Listener:
    """A TCP port that counts the connections it accepts and echoes what it reads."""

    def __init__(self, address: str) -> None:
        self.socket = socket.create_server((address, 0))
        self.port = self.socket.getsockname()[1]
        self.accepted = 0
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                connection, _ = self.socket.accept()
            except OSError:
                return
            self.accepted += 1
            with connection:
                while data := connection.recv(4096):
                    connection.sendall(data)

    def close(self) -> None:
        self.socket.close()


@pytest.fixture
def loopback_listener() -> Iterator[Listener]:
    listener = Listener("127.0.0.1")
    yield listener
    listener.close()


@pytest.fixture
def gate_on_loopback() -> Iterator[tuple[Gate, int]]:
    """A gate answering on a host loopback port, allowing nothing internal."""
    with _gate() as answering:
        yield answering


@contextlib.contextmanager
def _gate(*internal: str) -> Iterator[tuple[Gate, int]]:
    gate = Gate(Policy(internal))
    listener = socket.create_server(("127.0.0.1", 0))
    gate.serve(listener)
    try:
        yield gate, listener.getsockname()[1]
    finally:
        gate.close()


def socks_connect(gate_port: int, host: str, port: int) -> tuple[int, socket.socket]:
    """A SOCKS5 CONNECT through the gate: its status and the connection."""
    client = socket.create_connection(("127.0.0.1", gate_port), timeout=10)
    client.sendall(b"\x05\x01\x00")
    assert client.recv(2) == b"\x05\x00"
    name = host.encode()
    client.sendall(b"\x05\x01\x00\x03" + bytes((len(name),)) + name + struct.pack("!H", port))
    reply = client.recv(10)
    return reply[1], client


def test_a_name_that_resolves_to_loopback_is_refused(
    gate_on_loopback: tuple[Gate, int], loopback_listener: Listener
) -> None:
    gate, port = gate_on_loopback
    status, client = socks_connect(port, "localhost", loopback_listener.port)
    client.close()
    assert status == 2
    assert loopback_listener.accepted == 0
    assert gate.refusals == [
        f"registry localhost:{loopback_listener.port} is at 127.0.0.1, an internal address (loopback, "
        "private, link-local or this node's): the operator must list it in internal_registries"
    ]


@pytest.mark.parametrize("host", ["169.254.169.254", "10.0.0.1", "::1", "::ffff:127.0.0.1", "fd00::1"])
def test_internal_addresses_are_refused_before_any_connection(
    gate_on_loopback: tuple[Gate, int], host: str
) -> None:
    _gate, port = gate_on_loopback
    status, client = socks_connect(port, host, 80)
    client.close()
    assert status == 2


def test_a_listed_address_is_relayed_both_ways(loopback_listener: Listener) -> None:
    with _gate("127.0.0.0/8") as (_, port):
        status, client = socks_connect(port, "127.0.0.1", loopback_listener.port)
        with client:
            assert status == 0
            client.sendall(b"ping")
            assert client.recv(4) == b"ping"
    assert loopback_listener.accepted == 1


def test_anything_but_a_socks5_connect_is_answered_no(gate_on_loopback: tuple[Gate, int]) -> None:
    _gate, port = gate_on_loopback
    with socket.create_connection(("127.0.0.1", port), timeout=10) as client:
        client.sendall(b"\x04\x01\x00\x50\x7f\x00\x00\x01\x00")
        assert client.recv(2) == b"\x05\xff"
    with socket.create_connection(("127.0.0.1", port), timeout=10) as client:
        client.sendall(b"\x05\x01\x00")
        assert client.recv(2) == b"\x05\x00"
        client.sendall(b"\x05\x02\x00\x01\x7f\x00\x00\x01\x00\x50")
        assert client.recv(10)[1] == 7


def test_connections_beyond_the_bound_are_closed(gate_on_loopback: tuple[Gate, int]) -> None:
    _gate, port = gate_on_loopback
    held = [socket.create_connection(("127.0.0.1", port), timeout=10) for _ in range(MAX_CONNECTIONS)]
    try:
        for client in held:
            client.sendall(b"\x05\x01\x00")
            assert client.recv(2) == b"\x05\x00"
        with socket.create_connection(("127.0.0.1", port), timeout=10) as extra:
            assert extra.recv(2) == b""
    finally:
        for client in held:
            client.close()


def test_a_pull_namespace_has_only_its_own_loopback(loopback_listener: Listener) -> None:
    with PullNamespace(Gate(Policy())) as namespace:
        links = subprocess.run(
            namespace.command(["ip", "-j", "link"]), capture_output=True, text=True, check=True
        ).stdout
        probe = f"import socket; socket.create_connection(('127.0.0.1', {loopback_listener.port}), timeout=2)"
        reached = subprocess.run(
            namespace.command(["python3", "-c", probe]), capture_output=True, check=False
        )
        environment = namespace.environment()
    assert [link["ifname"] for link in json.loads(links)] == ["lo"]
    assert reached.returncode != 0
    assert loopback_listener.accepted == 0
    assert environment["HTTPS_PROXY"].startswith("socks5://127.0.0.1:")
    assert "NO_PROXY" not in environment and "no_proxy" not in environment
    assert not [name for name in os.listdir("/proc/self/fd") if _is_network_namespace(name)]


def _is_network_namespace(fd: str) -> bool:
    try:
        return os.readlink(f"/proc/self/fd/{fd}").startswith("net:")
    except OSError:
        return False


@pytest.fixture(scope="module")
def outside() -> Iterator[str]:
    """An address of this host's that is not loopback (the host's end of a veth of the test's own)."""
    with joined_namespace("pg", HOST_IP, INSIDE_IP, 30):
        yield HOST_IP


def test_a_listed_registry_is_pulled_through_the_gate(
    outside: str, start_registry, local_image: LocalImage, tmp_path: Path
) -> None:
    served: Registry = start_registry(address=outside)
    push(local_image.name, f"{served.host}/hutch/test:1")
    rootfs = pull(
        f"{served.host}/hutch/test:1",
        tmp_path,
        log=lambda _line: None,
        internal_registries=(served.host,),
        insecure_registries=(served.host,),
    )
    assert (rootfs / "etc/hello.txt").read_text() == "hello from hutch\n"


class _Redirecting(http.server.BaseHTTPRequestHandler):
    """A registry that answers ``/v2/`` and sends every other request to ``self.server.target``."""

    def do_GET(self) -> None:
        if self.path == "/v2/":
            self.send_response(200)
            self.send_header("Content-Length", "0")
        else:
            self.send_response(307)
            self.send_header("Location", f"{self.server.target}{self.path}")  # type: ignore[attr-defined]
            self.send_header("Content-Length", "0")
        self.end_headers()

    do_HEAD = do_GET

    def log_message(self, *_args: object) -> None:
        return


@pytest.fixture
def redirecting(outside: str) -> Iterator[http.server.ThreadingHTTPServer]:
    server = http.server.ThreadingHTTPServer((outside, 0), _Redirecting)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server
    server.shutdown()
    server.server_close()


def _pull_redirected(server: http.server.ThreadingHTTPServer, target: str, cache: Path) -> None:
    server.target = target  # type: ignore[attr-defined]
    registry = f"{server.server_address[0]}:{server.server_address[1]}"
    pull(
        f"{registry}/hutch/test:1",
        cache,
        log=lambda _line: None,
        internal_registries=(registry,),
        insecure_registries=(registry,),
        timeout_s=30,
    )


def test_a_redirect_to_an_internal_address_reaches_nothing(
    redirecting: http.server.ThreadingHTTPServer, outside: str, tmp_path: Path
) -> None:
    internal = Listener(outside)
    try:
        with pytest.raises(
            Forbidden, match=f"refused a connection: registry {outside}:{internal.port} is at"
        ):
            _pull_redirected(redirecting, f"http://{outside}:{internal.port}", tmp_path)
    finally:
        internal.close()
    assert internal.accepted == 0


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
def test_a_redirect_to_loopback_stays_in_the_pull_namespace(
    redirecting: http.server.ThreadingHTTPServer, loopback_listener: Listener, host: str, tmp_path: Path
) -> None:
    with pytest.raises(ImageUnavailable):
        _pull_redirected(redirecting, f"http://{host}:{loopback_listener.port}", tmp_path)
    assert loopback_listener.accepted == 0
