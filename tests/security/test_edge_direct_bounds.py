"""A hostile sandbox behind the edge's own routes: HAProxy reaches the sandbox itself (no Python proxy in
between), and still lets go of the sandbox's connection as soon as its client is gone, whatever the
sandbox sends or withholds, and holds no more of a terabyte WebSocket frame than its buffers.

The sandbox serves :data:`tests.security.test_edge_bounds.HOSTILE`; the client is given only the domain.
HAProxy's connections to the sandbox are read from ``ss``, its memory from ``/proc/<pid>/status``.
"""

from __future__ import annotations

import base64
import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from e2b import Sandbox

from tests.e2e.domain_fixtures import ca_context, use_only_domain
from tests.security.test_edge_bounds import BOUND, HOSTILE_PORT, released, serve_hostile, upstreams
from tests.stack import WORKER, Stack, running_stack

SUBNET = f"10.{190 + WORKER}.0.0/16"
HAPROXY = '"haproxy"'  # how ``ss`` names HAProxy's connections


@pytest.fixture(scope="module")
def edge_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with running_stack(tmp_path_factory, "hutch-direct", subnet=SUBNET, edge=True) as running:
        yield running


@pytest.fixture(scope="module")
def hostile(edge_stack: Stack) -> Iterator[Sandbox]:
    """A sandbox whose port 8765 serves :data:`HOSTILE`, created through the domain."""
    with pytest.MonkeyPatch.context() as monkeypatch:
        use_only_domain(edge_stack, monkeypatch)
        sandbox = Sandbox.create()
        edge_stack.seen.add(sandbox.sandbox_id)
        serve_hostile(sandbox)
        yield sandbox
        sandbox.kill()


def _haproxy_pids(stack: Stack) -> list[int]:
    config = str(stack.data_dir / "edge" / "haproxy.cfg")
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                args = (entry / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if config.encode() in args and any(arg.endswith(b"haproxy") for arg in args):
                found.append(int(entry.name))
    assert found, "no haproxy runs for the stack"
    return found


def _peak(pids: list[int]) -> int:
    total = 0
    for pid in pids:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                total += int(line.split()[1]) * 1024
    return total


def _host(stack: Stack, sandbox: Sandbox) -> tuple[str, int, str]:
    """The edge's address, port and the sandbox port's host name."""
    assert stack.domain is not None
    name, _, port = stack.domain.partition(":")
    return "127.0.0.1", int(port or 443), f"{HOSTILE_PORT}-{sandbox.sandbox_id}.{name}"


def test_a_trickled_terabyte_is_let_go_when_the_client_leaves(edge_stack: Stack, hostile: Sandbox) -> None:
    _, port, host = _host(edge_stack, hostile)
    with httpx.stream("GET", f"https://{host}:{port}/trickle", verify=ca_context(), timeout=10) as response:
        assert response.headers["content-length"] == "1000000000000"
        chunks = response.iter_raw()  # held: a dropped iterator closes the response
        assert next(chunks) == b"x"
        assert upstreams(HAPROXY) == 1  # HAProxy's own connection: the request went direct
    assert released(HAPROXY)


def test_an_answer_that_never_comes_is_let_go_when_the_client_leaves(
    edge_stack: Stack, hostile: Sandbox
) -> None:
    address, port, host = _host(edge_stack, hostile)
    with (
        socket.create_connection((address, port), timeout=10) as raw,
        ca_context().wrap_socket(raw, server_hostname=host) as client,
    ):
        client.sendall(f"GET /mute HTTP/1.1\r\nHost: {host}:{port}\r\n\r\n".encode())
        deadline = time.monotonic() + 10
        while upstreams(HAPROXY) != 1:
            assert time.monotonic() < deadline, "the edge did not connect to the sandbox"
            time.sleep(0.05)
    assert released(HAPROXY)
    assert hostile.commands.run("echo still").stdout.strip() == "still"


def test_a_terabyte_websocket_frame_read_slowly_holds_only_buffers(
    edge_stack: Stack, hostile: Sandbox
) -> None:
    address, port, host = _host(edge_stack, hostile)
    pids = _haproxy_pids(edge_stack)
    before = _peak(pids)
    key = base64.b64encode(os.urandom(16)).decode()
    handshake = (
        f"GET /announce HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    context = ca_context()
    context.set_alpn_protocols(["http/1.1"])
    with (
        socket.create_connection((address, port), timeout=10) as raw,
        context.wrap_socket(raw, server_hostname=host) as client,
    ):
        client.sendall(handshake.encode())
        head = b""
        while b"\r\n\r\n" not in head:
            head += client.recv(4096)
        assert head.startswith(b"HTTP/1.1 101"), head[:200]
        # Read a little, slowly, while the sandbox pushes as fast as it can.
        received = 0
        for _ in range(20):
            received += len(client.recv(65536))
            time.sleep(0.1)
        assert received > 0
        assert _peak(pids) - before < BOUND
    assert released(HAPROXY)
    assert _peak(pids) - before < BOUND


def test_the_hostile_sandbox_did_not_take_the_edge_down(edge_stack: Stack, hostile: Sandbox) -> None:
    with pytest.MonkeyPatch.context() as monkeypatch:
        use_only_domain(edge_stack, monkeypatch)
        again = Sandbox.connect(hostile.sandbox_id)
        assert again.commands.run("echo fine").stdout == "fine\n"
