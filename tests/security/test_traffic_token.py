"""The traffic access token on the real stack: a sandbox created with ``allow_public_traffic=False`` serves
its user ports only to requests carrying ``E2B-Traffic-Access-Token``, by header and by host routing,
while the SDK keeps working through envd's port (which envd guards with its own token)."""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import pytest
from e2b import Sandbox

from tests.stack import Stack

PORT = 8000
SECURED = "Sandbox is secured with traffic access token."
MISSING = f"{SECURED} Token header 'e2b-traffic-access-token' is missing"
INVALID = f"{SECURED} Provided token in header 'e2b-traffic-access-token' is invalid"


def _serve(sandbox: Sandbox, port: int) -> None:
    sandbox.files.write("/home/user/site/index.html", "<h1>secured</h1>")
    sandbox.commands.run(f"cd /home/user/site && python3 -m http.server {port}", background=True, timeout=0)
    deadline = time.monotonic() + 10
    probe = f"python3 -c \"import socket; socket.create_connection(('127.0.0.1', {port}), 1)\""
    while time.monotonic() < deadline:
        if sandbox.commands.run(f"{probe} 2>/dev/null && echo up || true").stdout.strip() == "up":
            return
        time.sleep(0.1)
    raise AssertionError("the http.server did not start")


@pytest.fixture(scope="module")
def secured(stack: Stack) -> Iterator[Sandbox]:
    sandbox = Sandbox.create(network={"allow_public_traffic": False}, **stack.opts)
    stack.seen.add(sandbox.sandbox_id)
    _serve(sandbox, PORT)
    yield sandbox
    sandbox.kill()


def _by_header(stack: Stack, sandbox_id: str, **headers: str) -> httpx.Response:
    routing = {"E2b-Sandbox-Id": sandbox_id, "E2b-Sandbox-Port": str(PORT)}
    return httpx.get(f"{stack.sandbox_url}/index.html", headers={**routing, **headers})


def _by_host(stack: Stack, sandbox_id: str, **headers: str) -> httpx.Response:
    host = {"Host": f"{PORT}-{sandbox_id}.localhost:{stack.proxy_port}"}
    return httpx.get(f"http://127.0.0.1:{stack.proxy_port}/index.html", headers={**host, **headers})


def test_create_and_connect_return_the_token(stack: Stack, secured: Sandbox) -> None:
    token = secured.traffic_access_token
    assert isinstance(token, str) and len(token) >= 32
    assert Sandbox.connect(secured.sandbox_id, **stack.opts).traffic_access_token == token
    assert secured.get_info().network == {"allow_public_traffic": False}


@pytest.mark.parametrize("request_port", [_by_header, _by_host], ids=["header-routing", "host-routing"])
def test_a_user_port_wants_the_token(stack: Stack, secured: Sandbox, request_port) -> None:
    missing = request_port(stack, secured.sandbox_id)
    assert missing.status_code == 403
    assert missing.json() == {"sandboxId": secured.sandbox_id, "message": MISSING, "code": 403}

    wrong = request_port(stack, secured.sandbox_id, **{"E2B-Traffic-Access-Token": "not-the-token"})
    assert wrong.status_code == 403
    assert wrong.json() == {"sandboxId": secured.sandbox_id, "message": INVALID, "code": 403}

    token = secured.traffic_access_token
    assert token is not None
    other = Sandbox.create(network={"allow_public_traffic": False}, **stack.opts)
    stack.seen.add(other.sandbox_id)
    try:
        assert other.traffic_access_token not in (None, token)
        # Another sandbox's token opens nothing here.
        foreign = request_port(
            stack, secured.sandbox_id, **{"E2B-Traffic-Access-Token": str(other.traffic_access_token)}
        )
        assert foreign.status_code == 403 and foreign.json()["message"] == INVALID
    finally:
        other.kill()

    allowed = request_port(stack, secured.sandbox_id, **{"E2B-Traffic-Access-Token": token})
    assert allowed.status_code == 200 and "secured" in allowed.text


def test_the_sdk_works_through_envd_without_the_traffic_token(secured: Sandbox) -> None:
    # The SDK sends only X-Access-Token (envd's token) to port 49983.
    assert secured.commands.run("echo ok").stdout.strip() == "ok"
    secured.files.write("/tmp/probe.txt", "probe")
    assert secured.files.read("/tmp/probe.txt") == "probe"


def test_envd_keeps_its_own_token(stack: Stack, secured: Sandbox) -> None:
    # The traffic token is no key to envd: without envd's token its RPCs stay closed.
    response = httpx.post(
        f"{stack.sandbox_url}/process.Process/List",
        headers={
            "E2b-Sandbox-Id": secured.sandbox_id,
            "E2b-Sandbox-Port": "49983",
            "E2B-Traffic-Access-Token": str(secured.traffic_access_token),
            "Content-Type": "application/json",
        },
        content=b"{}",
    )
    assert response.status_code == 401


def test_a_public_sandbox_needs_no_token(stack: Stack) -> None:
    sandbox = Sandbox.create(**stack.opts)
    stack.seen.add(sandbox.sandbox_id)
    try:
        assert sandbox.traffic_access_token is None
        _serve(sandbox, PORT)
        assert _by_header(stack, sandbox.sandbox_id).status_code == 200
        assert _by_host(stack, sandbox.sandbox_id).status_code == 200
    finally:
        sandbox.kill()
