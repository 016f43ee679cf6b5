"""A cluster's data path: a proxy forwards to the node that holds the sandbox with the cluster key, the
node's traffic listener refuses anyone without it and strips it, and no client can smuggle a key or a
route of its own to a sandbox. HTTP and WebSockets, against real servers."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from datetime import UTC, datetime

import httpx
import pytest
from websockets.sync.client import connect

from hutch.config import ProxySettings
from hutch.node.traffic import LocalSandboxes, NodeTrafficApp
from hutch.proxy.app import ProxyApp
from hutch.proxy.routing import NodeHop, SandboxRoute
from hutch.runtime.types import SandboxHandle
from tests.node.conftest import serving

KEY = "k" * 40
SANDBOX = "sbxclusterhop0000000"


async def _echo(scope, receive, send) -> None:  # type: ignore[no-untyped-def]
    """A sandbox's server: answers with the headers it received (HTTP), echoes them first (WebSocket)."""
    headers = {name.decode(): value.decode() for name, value in scope["headers"]}
    if scope["type"] == "http":
        body = json.dumps(headers).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-length", str(len(body)).encode())],
            }
        )
        await send({"type": "http.response.body", "body": body})
    elif scope["type"] == "websocket":
        await receive()
        await send({"type": "websocket.accept"})
        await send({"type": "websocket.send", "text": json.dumps(headers)})
        message = await receive()
        await send({"type": "websocket.send", "text": message.get("text", "")})
        await send({"type": "websocket.close"})


class _Runtime:
    """The node's runtime as the traffic listener sees it: one sandbox, whose port 8000 is the echo."""

    def __init__(self, port: int) -> None:
        self.handle = SandboxHandle(SANDBOX, "base", "127.0.0.1", "node0", datetime.now(UTC), {8000: port})

    async def list(self) -> list[SandboxHandle]:
        return [self.handle]


class _Row:
    def address(self, port: int) -> tuple[str, int]:
        raise AssertionError("a cluster's proxy goes through the node, never straight to the sandbox")


@pytest.fixture(scope="module")
def ports() -> Iterator[tuple[int, int]]:
    """(the node's traffic listener, the proxy in front of it)."""
    settings = ProxySettings(domain="cluster.test")
    with serving(_echo) as sandbox_port:
        node = NodeTrafficApp(LocalSandboxes(_Runtime(sandbox_port)), settings, key=KEY)  # type: ignore[arg-type]
        with serving(node) as node_port:
            hop = NodeHop(("127.0.0.1", node_port), KEY)

            async def resolve(sandbox_id: str) -> SandboxRoute | None:
                return SandboxRoute(_Row(), hop=hop) if sandbox_id == SANDBOX else None

            with serving(ProxyApp(resolve, settings)) as proxy_port:
                yield node_port, proxy_port


def test_the_node_refuses_a_caller_without_the_key(ports: tuple[int, int]) -> None:
    node_port, _ = ports
    headers = {"E2b-Sandbox-Id": SANDBOX, "E2b-Sandbox-Port": "8000"}
    for key in ({}, {"X-Hutch-Cluster-Key": "wrong"}, {"X-Hutch-Cluster-Key": KEY[:-1]}):
        answer = httpx.get(f"http://127.0.0.1:{node_port}/", headers={**headers, **key})
        assert answer.status_code == 401 and "cluster key" in answer.json()["message"]
    answer = httpx.get(f"http://127.0.0.1:{node_port}/", headers={**headers, "X-Hutch-Cluster-Key": KEY})
    assert answer.status_code == 200
    assert "x-hutch-cluster-key" not in answer.json()


def test_through_the_proxy_the_sandbox_never_sees_a_key_and_a_client_cannot_reroute(
    ports: tuple[int, int],
) -> None:
    _, proxy_port = ports
    forged = {"X-Hutch-Cluster-Key": "forged", "E2b-Sandbox-Port": "49983"}
    answer = httpx.get(
        f"http://127.0.0.1:{proxy_port}/", headers={"Host": f"8000-{SANDBOX}.cluster.test", **forged}
    )
    assert answer.status_code == 200, answer.text
    seen = answer.json()
    assert "x-hutch-cluster-key" not in seen
    assert seen["e2b-sandbox-port"] == "8000" and seen["e2b-sandbox-id"] == SANDBOX


def test_an_unknown_sandbox_is_not_found_on_the_node(ports: tuple[int, int]) -> None:
    node_port, _ = ports
    headers = {
        "E2b-Sandbox-Id": "sbxnotonthisnode0000",
        "E2b-Sandbox-Port": "8000",
        "X-Hutch-Cluster-Key": KEY,
    }
    answer = httpx.get(f"http://127.0.0.1:{node_port}/", headers=headers)
    assert answer.status_code == 502 and "was not found" in answer.json()["message"]


def test_websockets_go_through_the_node(ports: tuple[int, int]) -> None:
    _, proxy_port = ports
    sock = socket.create_connection(("127.0.0.1", proxy_port))
    with connect(
        f"ws://8000-{SANDBOX}.cluster.test/", sock=sock, additional_headers={"X-Hutch-Cluster-Key": "forged"}
    ) as websocket:
        seen = json.loads(websocket.recv(5))
        assert "x-hutch-cluster-key" not in seen
        assert seen["e2b-sandbox-id"] == SANDBOX
        websocket.send("through")
        assert websocket.recv(5) == "through"


def test_a_websocket_without_the_key_is_refused_by_the_node(ports: tuple[int, int]) -> None:
    node_port, _ = ports
    with pytest.raises(Exception) as refused:
        connect(
            f"ws://127.0.0.1:{node_port}/",
            additional_headers={"E2b-Sandbox-Id": SANDBOX, "E2b-Sandbox-Port": "8000"},
        )
    assert "401" in str(refused.value)
