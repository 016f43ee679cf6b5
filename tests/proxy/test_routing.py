"""Routing a request to a sandbox port from its Host and routing headers."""

from __future__ import annotations

import pytest

from hutch.errors import InvalidRequest
from hutch.proxy.routing import Target, hostname_of, is_valid_sandbox_id, route

ID = "i3x8k2m9q0w7e5r4t1y6"
HEADERS = {"e2b-sandbox-id": ID, "e2b-sandbox-port": "49983"}


@pytest.mark.parametrize(
    "host",
    [
        "localhost",
        "localhost:49983",
        "127.0.0.1:49983",
        "10.1.2.3",
        "[::1]:49983",
        "::1",
        "sandbox.localhost:8080",
    ],
)
def test_header_routing_on_shared_hosts(host):
    assert route(host, HEADERS, domain="localhost") == Target(ID, 49983)


def test_header_routing_on_the_sandbox_subdomain_of_the_configured_domain():
    assert route("sandbox.example.com", HEADERS, domain="example.com") == Target(ID, 49983)
    with pytest.raises(InvalidRequest):
        route("sandbox.other.com", HEADERS, domain="example.com")


@pytest.mark.parametrize(
    ("headers", "message"),
    [
        ({"e2b-sandbox-id": ID}, "Missing header: E2b-Sandbox-Port"),
        ({"e2b-sandbox-port": "49983"}, "Missing header: E2b-Sandbox-Id"),
        ({"e2b-sandbox-id": ID, "e2b-sandbox-port": ""}, "Missing header: E2b-Sandbox-Port"),
    ],
)
def test_header_routing_needs_both_headers(headers, message):
    with pytest.raises(InvalidRequest) as caught:
        route("localhost:49983", headers, domain="localhost")
    assert caught.value.message == message


@pytest.mark.parametrize("port", ["0", "65536", "-1", "80a", "", " ", "123456"])
def test_bad_ports(port):
    with pytest.raises(InvalidRequest):
        route("localhost", {"e2b-sandbox-id": ID, "e2b-sandbox-port": port}, domain="localhost")
    with pytest.raises(InvalidRequest):
        route(f"{port}-{ID}.localhost", {}, domain="localhost")


@pytest.mark.parametrize("sandbox_id", ["ABC", "a-b", "a.b", "a_b", "", "ä"])
def test_bad_sandbox_ids(sandbox_id):
    with pytest.raises(InvalidRequest):
        route("localhost", {"e2b-sandbox-id": sandbox_id, "e2b-sandbox-port": "1"}, domain="localhost")


def test_the_debug_sandbox_id_is_accepted():
    headers = {"e2b-sandbox-id": "debug_sandbox_id", "e2b-sandbox-port": "49983"}
    assert route("localhost:49983", headers, domain="localhost") == Target("debug_sandbox_id", 49983)
    assert is_valid_sandbox_id("debug_sandbox_id")
    assert not is_valid_sandbox_id("debug_sandbox_id2")


@pytest.mark.parametrize(
    ("host", "domain", "target"),
    [
        (f"49983-{ID}.localhost", "localhost", Target(ID, 49983)),
        (f"8000-{ID}.localhost:49983", "localhost", Target(ID, 8000)),
        (f"6080-{ID}.Example.COM", "example.com", Target(ID, 6080)),
        (f"6080-{ID}.sandboxes.example.com.", "sandboxes.example.com", Target(ID, 6080)),
        (f"3000-{ID}.example.com", "EXAMPLE.com.", Target(ID, 3000)),
        # Through the TLS edge, with its port in the domain (E2B_DOMAIN=hutch.localhost:8443).
        (f"49983-{ID}.hutch.localhost:8443", "hutch.localhost", Target(ID, 49983)),
        # Plain HTTP to the proxy's port keeps working under any configured domain.
        (f"8000-{ID}.localhost:49983", "hutch.localhost", Target(ID, 8000)),
    ],
)
def test_host_routing(host, domain, target):
    assert route(host, {}, domain=domain) == target


def test_routing_headers_are_ignored_on_a_sandbox_host():
    assert route(f"8000-{ID}.localhost", HEADERS, domain="localhost") == Target(ID, 8000)


@pytest.mark.parametrize(
    "host",
    [
        "localhost",  # a shared host without routing headers
        "127.0.0.1:49983",
        f"8000-{ID}.example.com",  # another domain
        f"8000-{ID}.a.localhost",  # a deeper name
        f"8000{ID}.localhost",  # no dash
        f"{ID}-8000.localhost",  # reversed
        f"8000-{ID}-x.localhost",
        "",
    ],
)
def test_invalid_hosts(host):
    with pytest.raises(InvalidRequest):
        route(host, {}, domain="localhost")


@pytest.mark.parametrize(
    ("host", "name"),
    [
        ("Example.com:443", "example.com"),
        ("example.com", "example.com"),
        ("[::1]:80", "::1"),
        ("[::1]", "::1"),
        ("fe80::1", "fe80::1"),
        ("localhost.", "localhost"),
    ],
)
def test_hostname_of(host, name):
    assert hostname_of(host) == name
