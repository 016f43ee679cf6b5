"""No egress policy reaches the node or its networks: sandboxes made through the official SDK, with
whatever ``allow_internet_access`` and ``network.allowOut`` they ask for, never reach the cloud metadata
service (a fake one on 169.254.169.254:80, behind the test's uplink), the uplink's own network, the node's
addresses, another sandbox or a private range; an outside (TEST-NET) address stays reachable.

The outside and the stack are those of ``test_egress``.
"""

from __future__ import annotations

import ipaddress
import select
import socket
from collections.abc import Iterator

import pytest
from e2b import Sandbox

from tests.security import test_egress
from tests.security.test_egress import (
    GATEWAY_IP,
    HOST_IP,
    METADATA_IP,
    OPENED_IP,
    OUTSIDE,
    PRIVATE_IP,
    SUBNET,
    _fetch,
    _sandbox,
)
from tests.stack import Stack

uplink = test_egress.uplink
egress_stack = test_egress.egress_stack
HELLO = "hello from outside"
METADATA = f"http://{METADATA_IP}/"


ROUTE = r"""
import socket, struct
for line in open("/proc/net/route").read().splitlines()[1:]:
    fields = line.split()
    if fields[1] == "00000000":
        print(socket.inet_ntoa(struct.pack("<I", int(fields[2], 16))))
"""


@pytest.fixture()
def listeners() -> Iterator[list[socket.socket]]:
    """A TCP and a UDP port (the same number) open on every address of the host, IPv4 and IPv6."""
    tcp = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
    udp = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    try:
        for sock in (tcp, udp):
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        tcp.bind(("::", 0))
        udp.bind(("::", tcp.getsockname()[1]))
        tcp.listen(16)
        yield [tcp, udp]
    finally:
        tcp.close()
        udp.close()


WAIT_FOR_PORT = """
import socket, sys, time
deadline = time.monotonic() + 20
while True:
    try:
        socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=1).close()
        break
    except OSError:
        if time.monotonic() > deadline:
            raise
        time.sleep(0.05)
"""


def _wait_for_port(sandbox: Sandbox, port: int) -> None:
    """Returns once something in the sandbox listens on ``port`` (a server started in the background)."""
    sandbox.files.write("/tmp/wait_for_port.py", WAIT_FOR_PORT)
    sandbox.commands.run(f"python3 /tmp/wait_for_port.py {port}", timeout=30)


def _gateway(sandbox: Sandbox) -> str:
    """The sandbox's default gateway: the host's end of its veth."""
    sandbox.files.write("/tmp/route.py", ROUTE)
    return sandbox.commands.run("python3 /tmp/route.py").stdout.strip()


@pytest.mark.parametrize(
    "options",
    [
        {},
        {"allow_internet_access": True},
        {"network": {"allow_out": ["0.0.0.0/0"]}},
        {"network": {"allow_out": [METADATA_IP], "deny_out": ["0.0.0.0/0"]}},
        {"network": {"allow_out": ["169.254.0.0/16"]}},
        {"network": {"allow_out": ["*"]}},
        {"network": {"allow_out": ["metadata.test"], "deny_out": ["0.0.0.0/0"]}},
    ],
)
def test_the_metadata_service_is_closed(egress_stack: Stack, options):
    sandbox = _sandbox(egress_stack, **options)
    try:
        # A name that resolves to it (DNS rebinding does the same) opens nothing either.
        sandbox.commands.run(f"echo '{METADATA_IP} metadata.test' >> /etc/hosts", user="root")
        assert _fetch(sandbox, METADATA) == "blocked"
        assert _fetch(sandbox, "http://metadata.test/") == "blocked"
        if "deny_out" not in options.get("network", {}):
            assert _fetch(sandbox, OUTSIDE) == HELLO  # the way out works
    finally:
        sandbox.kill()


def test_the_uplinks_network_and_private_ranges_are_closed(egress_stack: Stack):
    sandbox = _sandbox(egress_stack, network={"allow_out": ["0.0.0.0/0", PRIVATE_IP, f"{GATEWAY_IP}/24"]})
    try:
        assert _fetch(sandbox, OUTSIDE) == HELLO
        assert _fetch(sandbox, f"http://{GATEWAY_IP}/") == "blocked"
        assert _fetch(sandbox, f"http://{PRIVATE_IP}/") == "blocked"
    finally:
        sandbox.kill()


def test_the_operator_opens_a_private_range_and_a_tenant_cannot(egress_stack: Stack):
    """``runtime.egress_private_networks`` opens the address it names; the rest of its range stays closed,
    and a tenant's ``denyOut`` still closes what the operator opened."""
    sandbox = _sandbox(egress_stack)
    denied = _sandbox(egress_stack, network={"deny_out": [f"{OPENED_IP}/32"]})
    try:
        assert _fetch(sandbox, f"http://{OPENED_IP}/") == HELLO
        assert _fetch(sandbox, f"http://{PRIVATE_IP}/") == "blocked"
        assert _fetch(denied, f"http://{OPENED_IP}/") == "blocked"
    finally:
        sandbox.kill()
        denied.kill()


def test_the_node_is_closed(egress_stack: Stack, listeners: list[socket.socket]):
    port = listeners[0].getsockname()[1]
    sandbox = _sandbox(egress_stack, network={"allow_out": ["0.0.0.0/0"]})
    try:
        gateway = _gateway(sandbox)
        assert gateway
        for address in (gateway, HOST_IP):
            assert _fetch(sandbox, f"http://{address}:{port}/") == "blocked"
        # IPv6: the host's end takes none (its link-local address would open every host service).
        code = (
            "import socket; socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)"
            f".sendto(b'x', ('ff02::1%eth0', {port}))"
        )
        sandbox.commands.run(f'python3 -c "{code}"; true', timeout=20)
        assert select.select(listeners, [], [], 1)[0] == []
    finally:
        sandbox.kill()


def test_sandboxes_do_not_reach_each_other(egress_stack: Stack):
    server = _sandbox(egress_stack)
    client = _sandbox(egress_stack, network={"allow_out": ["0.0.0.0/0", SUBNET]})
    try:
        server.commands.run("python3 -m http.server 8000 --bind 0.0.0.0", background=True)
        _wait_for_port(server, 8000)
        # The sandbox's address is the one after its gateway (a /31 each).
        address = ipaddress.IPv4Address(_gateway(server)) + 1
        target = f"http://{address}:8000/"
        assert _fetch(server, target) != "blocked"  # it serves
        assert _fetch(client, target) == "blocked"
    finally:
        server.kill()
        client.kill()
