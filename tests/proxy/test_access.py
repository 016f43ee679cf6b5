"""The traffic access token: a secured sandbox's user ports want ``E2B-Traffic-Access-Token``; envd's port
does not (envd has its own token); a public sandbox wants nothing."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest
from e2b import Sandbox
from websockets import InvalidStatus
from websockets.asyncio.client import connect

from hutch.proxy.access import (
    DEBUG_MODE_EDGE,
    DEBUG_MODE_REMOTE,
    INVALID,
    MISSING,
    check_debug_mode,
    is_loopback,
)
from hutch.proxy.responses import Refusal
from hutch.proxy.routing import DEBUG_SANDBOX_ID, Target
from hutch.runtime.types import ENVD_PORT

from .conftest import SANDBOX_A, SANDBOX_SECURED, TRAFFIC_TOKEN, sdk_sandbox


class _Hello(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = b"hello from a user port"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args) -> None:
        pass


@pytest.fixture(scope="module")
def user_port() -> Iterator[int]:
    """An app on a sandbox port (every port but envd's is that port on 127.0.0.1 in the proxy fixture)."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Hello)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


def _get(proxy, sandbox_id: str, port: int, **headers: str) -> httpx.Response:
    routing = {"E2b-Sandbox-Id": sandbox_id, "E2b-Sandbox-Port": str(port)}
    return httpx.get(f"{proxy.url}/", headers={**routing, **headers})


def test_a_secured_port_without_the_token_is_403(proxy, user_port):
    response = _get(proxy, SANDBOX_SECURED, user_port)
    assert response.status_code == 403
    assert response.headers["content-type"].startswith("application/json")
    assert response.json() == {
        "sandboxId": SANDBOX_SECURED,
        "message": "Sandbox is secured with traffic access token. "
        "Token header 'e2b-traffic-access-token' is missing",
        "code": 403,
    }
    assert response.json()["message"] == MISSING


def test_a_wrong_or_empty_token_is_403(proxy, user_port):
    for wrong in ("nope", TRAFFIC_TOKEN[:-1], TRAFFIC_TOKEN + "x", TRAFFIC_TOKEN.upper()):
        response = _get(proxy, SANDBOX_SECURED, user_port, **{"E2B-Traffic-Access-Token": wrong})
        assert response.status_code == 403
        assert response.json() == {"sandboxId": SANDBOX_SECURED, "message": INVALID, "code": 403}
    response = _get(proxy, SANDBOX_SECURED, user_port, **{"E2B-Traffic-Access-Token": ""})
    assert response.status_code == 403 and response.json()["message"] == MISSING


def test_the_token_opens_the_port(proxy, user_port):
    for name in ("E2B-Traffic-Access-Token", "e2b-traffic-access-token"):
        response = _get(proxy, SANDBOX_SECURED, user_port, **{name: TRAFFIC_TOKEN})
        assert response.status_code == 200 and response.text == "hello from a user port"


def test_host_routing_wants_the_token_too(proxy, user_port):
    host = {"Host": f"{user_port}-{SANDBOX_SECURED}.localhost:{proxy.port}"}
    refused = httpx.get(f"{proxy.url}/", headers=host)
    assert refused.status_code == 403 and refused.json()["message"] == MISSING
    allowed = httpx.get(f"{proxy.url}/", headers={**host, "E2B-Traffic-Access-Token": TRAFFIC_TOKEN})
    assert allowed.status_code == 200


def test_the_envd_port_needs_no_traffic_token(proxy):
    # envd guards itself with its own access token; the SDK never sends the traffic token to it.
    sandbox = sdk_sandbox(Sandbox, proxy, SANDBOX_SECURED)
    assert sandbox.commands.run("echo through envd").stdout.strip() == "through envd"


def test_a_public_sandbox_needs_no_token(proxy, user_port):
    assert _get(proxy, SANDBOX_A, user_port).status_code == 200


async def test_a_websocket_handshake_without_the_token_is_refused(proxy, user_port):
    routing = {"E2b-Sandbox-Id": SANDBOX_SECURED, "E2b-Sandbox-Port": str(user_port)}
    with pytest.raises(InvalidStatus) as refused:
        async with connect(f"ws://127.0.0.1:{proxy.port}/", additional_headers=routing):
            pass
    assert refused.value.response.status_code == 403
    assert b"is missing" in refused.value.response.body


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.8.9.10", True),
        ("::1", True),
        ("::ffff:127.0.0.1", True),
        ("localhost", True),
        ("10.0.0.1", False),
        ("::ffff:10.0.0.1", False),
        ("0.0.0.0", False),
        ("::", False),
        ("localhost.example.com", False),
    ],
)
def test_what_counts_as_loopback(host, loopback):
    assert is_loopback(host) is loopback


@pytest.mark.parametrize("client", [None, ("10.0.0.1", 5000), ("::ffff:192.0.2.1", 5000)])
def test_the_debug_sandbox_is_refused_to_a_peer_off_loopback(client):
    scope = {"client": client, "headers": []}
    with pytest.raises(Refusal) as refused:
        check_debug_mode(Target(DEBUG_SANDBOX_ID, ENVD_PORT), scope, enabled=True)
    assert refused.value.answer == (
        403,
        {"sandboxId": DEBUG_SANDBOX_ID, "message": DEBUG_MODE_REMOTE, "code": 403},
    )
    check_debug_mode(
        Target(DEBUG_SANDBOX_ID, ENVD_PORT), {**scope, "client": ("127.0.0.1", 5000)}, enabled=True
    )
    check_debug_mode(Target(SANDBOX_A, ENVD_PORT), scope, enabled=False)  # other sandboxes: not its business


@pytest.mark.parametrize("value", [b"1", b"0", b""])
def test_the_debug_sandbox_is_refused_through_the_tls_edge(value):
    # Behind HAProxy every peer is loopback: the header the edge always sets is what tells.
    scope = {"client": ("127.0.0.1", 5000), "headers": [(b"X-Hutch-Edge", value)]}
    with pytest.raises(Refusal) as refused:
        check_debug_mode(Target(DEBUG_SANDBOX_ID, ENVD_PORT), scope, enabled=True)
    assert refused.value.answer == (
        403,
        {"sandboxId": DEBUG_SANDBOX_ID, "message": DEBUG_MODE_EDGE, "code": 403},
    )
    check_debug_mode(Target(SANDBOX_A, ENVD_PORT), scope, enabled=True)  # other sandboxes pass on


def test_a_request_from_the_edge_gets_no_debug_sandbox_from_the_proxy(proxy):
    routing = {"E2b-Sandbox-Id": DEBUG_SANDBOX_ID, "E2b-Sandbox-Port": str(ENVD_PORT)}
    assert httpx.get(f"{proxy.url}/health", headers=routing).status_code != 403
    refused = httpx.get(f"{proxy.url}/health", headers={**routing, "X-Hutch-Edge": "1"})
    assert refused.status_code == 403
    assert refused.json()["message"] == DEBUG_MODE_EDGE
