"""Egress through a configured uplink: the official SDK's ``allow_internet_access`` (on unless the
create says otherwise, as in E2B) and ``network`` (``allowOut`` / ``denyOut``) decide what a sandbox
reaches outside, and it resolves names through the node's name servers.

"Outside" is a network namespace made here, joined to the host by a veth that the stack uses as its
uplink, with a gateway on the uplink's own network and, behind it, an outside address (TEST-NET), a private
one, a private one the operator opened and the cloud metadata address, each answering HTTP on port 80. The
private address also serves DNS (``dns_server.py``: ``outside.test`` is the outside address), as the
node's name server. Only the stack's sandboxes (by their source subnet) and sockets bound to the uplink
are routed to it: nothing leaves the machine. Every other test stack has egress off
(``tests/stack.py``), and cannot be started with ``auto``.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from e2b import Sandbox

from hutch.config import Settings
from hutch.runtime.container.egress.uplink import default_route_interface
from tests.netns import wait_for_http
from tests.stack import WORKER, Stack, start_stack, stop_stack

SUBNET = f"10.{50 + WORKER}.0.0/16"
HOST_IP, GATEWAY_IP = f"10.250.{WORKER}.1", f"10.250.{WORKER}.2"
OUTSIDE_IP, PRIVATE_IP, METADATA_IP = f"198.51.100.{WORKER}", f"10.251.{WORKER}.2", "169.254.169.254"
# A private address that the stack's operator setting opens (and nothing else of its range).
OPENED_IP = f"10.252.{WORKER}.2"
# The name the outside's name server (on the private address, closed but for DNS) gives the outside address.
OUTSIDE_NAME = "outside.test"
DNS_SERVER = Path(__file__).with_name("dns_server.py")


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True)


@contextlib.contextmanager
def routed_through(uplink: str, gateway: str, subnets: list[str], table: int) -> Iterator[None]:
    """Route the traffic of ``subnets`` (and of sockets bound to ``uplink``) through ``gateway``, as a
    node's default route would; every other route of the host stays as it was."""
    rules = [("oif", uplink)] + [("from", subnet) for subnet in subnets]
    try:
        for subnet in subnets:
            _ip("route", "add", "throw", subnet, "table", str(table))
        _ip("route", "add", "default", "via", gateway, "dev", uplink, "table", str(table))
        for selector, value in rules:
            _ip("rule", "add", selector, value, "lookup", str(table))
        yield
    finally:
        for selector, value in rules:
            subprocess.run(["ip", "rule", "del", selector, value, "lookup", str(table)], capture_output=True)
        subprocess.run(["ip", "route", "flush", "table", str(table)], capture_output=True)


def serve_outside(netns: str, host_if: str, host_ip: str, gateway: str, addresses: list[str]) -> None:
    """Join ``netns`` to the host by a veth (``host_if``): ``host_ip``/24 on the host's side, ``gateway``
    on the uplink's network and ``addresses`` behind it on the other."""
    _ip("link", "add", host_if, "type", "veth", "peer", "name", "eth0", "netns", netns)
    _ip("address", "add", f"{host_ip}/24", "dev", host_if)
    _ip("link", "set", host_if, "up")
    _ip("-n", netns, "address", "add", f"{gateway}/24", "dev", "eth0")
    for address in addresses:
        _ip("-n", netns, "address", "add", f"{address}/32", "dev", "eth0")
    _ip("-n", netns, "link", "set", "eth0", "up")
    _ip("-n", netns, "link", "set", "lo", "up")


@pytest.fixture(scope="module")
def uplink(tmp_path_factory) -> Iterator[str]:
    tag = uuid.uuid4().hex[:8]
    netns, host_if = f"hutch-out-{tag}", f"ho{tag}"
    _ip("netns", "add", netns)
    servers: list[subprocess.Popen] = []
    try:
        serve_outside(netns, host_if, HOST_IP, GATEWAY_IP, [OUTSIDE_IP, PRIVATE_IP, OPENED_IP, METADATA_IP])
        site = tmp_path_factory.mktemp("outside")
        (site / "index.html").write_text("hello from outside")
        inside = ["ip", "netns", "exec", netns, sys.executable]
        quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
        http = [*inside, "-m", "http.server", "80", "--bind", "0.0.0.0"]
        servers.append(subprocess.Popen(http, cwd=site, **quiet))
        dns = [*inside, str(DNS_SERVER), PRIVATE_IP, f"{OUTSIDE_NAME}={OUTSIDE_IP}"]
        servers.append(subprocess.Popen(dns, **quiet))
        wait_for_http(f"http://{GATEWAY_IP}/")
        with routed_through(host_if, GATEWAY_IP, [SUBNET], 2000 + WORKER):
            yield host_if
    finally:
        for server in servers:
            server.terminate()
            server.wait()
        subprocess.run(["ip", "link", "del", host_if], check=False, capture_output=True)
        subprocess.run(["ip", "netns", "del", netns], check=False, capture_output=True)


@pytest.fixture(scope="module")
def egress_stack(tmp_path_factory, uplink) -> Iterator[Stack]:
    if os.geteuid() != 0:
        pytest.fail("the egress tests need root")
    stack = start_stack(
        tmp_path_factory.mktemp("egress"),
        subnet=SUBNET,
        settings={
            "HUTCH_RUNTIME__EGRESS_INTERFACE": uplink,
            "HUTCH_RUNTIME__EGRESS_PRIVATE_NETWORKS": json.dumps([f"{OPENED_IP}/32"]),
            # The outside's name server stands for the host's (whose own are never touched by a test).
            "HUTCH_RUNTIME__EGRESS_NAME_SERVERS": json.dumps([PRIVATE_IP]),
        },
    )
    yield stack
    stop_stack(stack)


def _fetch(sandbox: Sandbox, url: str) -> str:
    code = f"import urllib.request; print(urllib.request.urlopen('{url}', timeout=3).read().decode())"
    result = sandbox.commands.run(f'python3 -c "{code}" 2>/dev/null || echo blocked', timeout=20)
    return result.stdout.strip()


def _sandbox(stack: Stack, **options) -> Sandbox:
    sandbox = Sandbox.create(**options, **stack.opts)
    stack.seen.add(sandbox.sandbox_id)
    return sandbox


OUTSIDE = f"http://{OUTSIDE_IP}/"


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        ({}, "hello from outside"),  # E2B's default: internet access on
        ({"allow_internet_access": True}, "hello from outside"),
        ({"allow_internet_access": False}, "blocked"),
        ({"network": {"deny_out": [f"{OUTSIDE_IP}/32"]}}, "blocked"),
        ({"network": {"allow_out": [OUTSIDE_IP], "deny_out": ["0.0.0.0/0"]}}, "hello from outside"),
        ({"allow_internet_access": False, "network": {"allow_out": [OUTSIDE_IP]}}, "hello from outside"),
        ({"network": {"allow_out": ["192.0.2.1"], "deny_out": ["0.0.0.0/0"]}}, "blocked"),
    ],
)
def test_egress_policy(egress_stack, options, expected):
    sandbox = _sandbox(egress_stack, **options)
    try:
        assert _fetch(sandbox, OUTSIDE) == expected
    finally:
        sandbox.kill()


def test_the_host_stays_closed_with_egress_on(egress_stack):
    sandbox = _sandbox(egress_stack)
    try:
        assert _fetch(sandbox, f"http://{HOST_IP}:{egress_stack.api_port}/health") == "blocked"
        assert _fetch(sandbox, f"http://{HOST_IP}:{egress_stack.proxy_port}/") == "blocked"
    finally:
        sandbox.kill()


def test_no_egress_without_an_uplink(stack, uplink):
    sandbox = _sandbox(stack)
    try:
        assert _fetch(sandbox, OUTSIDE) == "blocked"
        routes = sandbox.commands.run("cat /proc/net/route").stdout.splitlines()[1:]
        assert not [route for route in routes if route.split()[1] == "00000000"]  # no default route
    finally:
        sandbox.kill()


def test_a_sandbox_resolves_names_through_the_nodes_name_server(egress_stack):
    sandbox = _sandbox(egress_stack)
    try:
        assert sandbox.files.read("/etc/resolv.conf") == f"nameserver {PRIVATE_IP}\n"
        assert _fetch(sandbox, f"http://{OUTSIDE_NAME}/") == "hello from outside"
        # The name server's address is open on port 53 alone, though private.
        assert _fetch(sandbox, f"http://{PRIVATE_IP}/") == "blocked"
    finally:
        sandbox.kill()


def test_an_allowed_name_resolves_without_internet_access(egress_stack):
    options = {"allow_internet_access": False, "network": {"allow_out": [OUTSIDE_NAME]}}
    sandbox = _sandbox(egress_stack, **options)
    try:
        assert _fetch(sandbox, f"http://{OUTSIDE_NAME}/") == "hello from outside"
        assert _fetch(sandbox, OUTSIDE) == "blocked"  # by address, no name: the default, off
    finally:
        sandbox.kill()


def test_the_tests_run_with_egress_off():
    """``auto`` is the product's default; in the tests every stack and ``Settings()`` says ``off``."""
    assert Settings().runtime.egress_interface == "off"


@pytest.mark.parametrize("setting", ["auto", "the default route's interface"])
def test_a_test_stack_never_reaches_out_through_the_machine(tmp_path, setting):
    if setting != "auto":
        setting = default_route_interface() or pytest.skip("this machine has no default route")
    with pytest.raises(pytest.fail.Exception, match="must not reach the outside"):
        start_stack(tmp_path, settings={"HUTCH_RUNTIME__EGRESS_INTERFACE": setting})
    assert not (tmp_path / "hutch.log").exists()  # nothing was started


def test_update_network_replaces_the_rules(egress_stack):
    sandbox = _sandbox(egress_stack)
    try:
        assert _fetch(sandbox, OUTSIDE) == "hello from outside"
        sandbox.update_network({"deny_out": [OUTSIDE_IP]})
        assert _fetch(sandbox, OUTSIDE) == "blocked"
        sandbox.update_network({})  # omitted lists are cleared
        assert _fetch(sandbox, OUTSIDE) == "hello from outside"
    finally:
        sandbox.kill()
