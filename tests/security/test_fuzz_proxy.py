"""Malformed and hostile requests against the proxy of the real stack: answered with 4xx or the SDK's 502
bodies, never a 5xx of its own, never a hang, and routing keeps working."""

from __future__ import annotations

import httpx
import pytest
from e2b import Sandbox
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.security.raw_http import status_of_raw_request


def _routes_still(stack, sandbox: Sandbox) -> None:
    assert sandbox.commands.run("echo still").stdout.strip() == "still"


@pytest.fixture(scope="module")
def routed(stack):
    sandbox = Sandbox.create(**stack.opts)
    stack.seen.add(sandbox.sandbox_id)
    yield sandbox
    sandbox.kill()


HEADER_VALUES = st.text(alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7E), max_size=40)


@settings(
    max_examples=120,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(sandbox_id=HEADER_VALUES, port=HEADER_VALUES, path=HEADER_VALUES)
def test_any_routing_headers(stack, sandbox_id, port, path):
    response = httpx.get(
        f"{stack.sandbox_url}/{path.lstrip('/')}",
        headers={"E2b-Sandbox-Id": sandbox_id, "E2b-Sandbox-Port": port},
        timeout=10,
    )
    assert response.status_code < 500 or response.status_code == 502, response.text
    if response.status_code in (400, 502):
        body = response.json()
        assert body["code"] == response.status_code and body["message"]


@settings(
    max_examples=80,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(host=HEADER_VALUES)
def test_any_host(stack, host):
    response = httpx.get(f"http://127.0.0.1:{stack.proxy_port}/", headers={"Host": host}, timeout=10)
    assert response.status_code < 500 or response.status_code == 502, response.text


@pytest.mark.parametrize(
    "request_bytes",
    [
        b"GARBAGE\r\n\r\n",
        b"GET / HTTP/1.1\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: 49983-" + b"a" * 5000 + b".localhost\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: x\r\nE2b-Sandbox-Id: abc\r\nE2b-Sandbox-Port: 99999999999999999999\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nE2b-Sandbox-Id: ../../etc\r\nE2b-Sandbox-Port: 22\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        b"GET / HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: localhost\r\n" + b"X-Junk: " + b"y" * 100_000 + b"\r\n\r\n",
    ],
)
def test_malformed_http(stack, routed, request_bytes):
    status = status_of_raw_request(stack.proxy_port, request_bytes)
    assert status is None or 400 <= status < 500 or status == 502, status
    _routes_still(stack, routed)


def test_routing_to_the_host_is_refused(stack, routed):
    # A sandbox id is looked up, never used as an address: nothing routes to the host or another name.
    for sandbox_id in ["127.0.0.1", "localhost", routed.sandbox_id + ".evil", "debug_sandbox_id.x"]:
        response = httpx.get(
            f"{stack.sandbox_url}/health",
            headers={"E2b-Sandbox-Id": sandbox_id, "E2b-Sandbox-Port": str(stack.api_port)},
        )
        assert response.status_code in (400, 502), (sandbox_id, response.status_code)
