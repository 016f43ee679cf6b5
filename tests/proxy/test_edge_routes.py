"""The edge's own routes: HAProxy sends a routed sandbox's requests straight to it and everything else to
the Python proxy; the maps change at run time, survive a restart of HAProxy, and the edge answers in E2B's
JSON when a routed sandbox's port gives no answer. Loopback servers stand in for the API, the Python proxy
and two sandboxes (each on its own loopback address, as a sandbox has its own)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import ssl
import threading
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

from hutch.catalog.models import SandboxRow
from hutch.proxy import responses
from hutch.proxy.edge import EdgeProcess, haproxy_binary
from hutch.proxy.routes import EdgeRoutes
from hutch.runtime.types import ENVD_PORT
from tests.conftest import free_port

DOMAIN = "hutch.localhost"
BINARY = haproxy_binary()
# Each stand-in sandbox has an address of its own, as sandboxes do.
SANDBOXES = {"sandboxaaaa": "127.0.77.1", "sandboxbbbb": "127.0.77.2"}
USER_PORT = 8000

pytestmark = pytest.mark.skipif(BINARY is None, reason="haproxy is not installed (apt-get install haproxy)")


class _Named(BaseHTTPRequestHandler):
    """Answers with its server's name and the request's Host; ``/status/<code>`` answers that status."""

    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        status = int(self.path.removeprefix("/status/")) if self.path.startswith("/status/") else 200
        body = json.dumps({"server": self.server.name, "host": self.headers.get("Host")}).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: object, client_address: object) -> None:
        pass  # the edge closing its idle connections at its stop


def _serve(name: str, address: str, port: int) -> ThreadingHTTPServer:
    server = _Server((address, port), _Named)
    server.name = name  # type: ignore[attr-defined]
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


@dataclass
class Edge:
    port: int
    ca: Path
    process: EdgeProcess
    routes: EdgeRoutes

    async def get(self, port: int | str, sandbox_id: str, path: str = "/") -> httpx.Response:
        url = f"https://{port}-{sandbox_id}.{DOMAIN}:{self.port}{path}"
        async with httpx.AsyncClient(verify=ssl.create_default_context(cafile=str(self.ca))) as client:
            return await client.get(url)


@pytest.fixture()
def servers() -> Iterator[tuple[int, int]]:
    """The API and the Python proxy on free ports; in each sandbox, envd's port and a user port (the second
    sandbox serves nothing on the user port)."""
    running = [_serve("api", "127.0.0.1", 0), _serve("proxy", "127.0.0.1", 0)]
    for name, address in SANDBOXES.items():
        running.append(_serve(f"{name}:envd", address, ENVD_PORT))
    running.append(_serve("sandboxaaaa:user", SANDBOXES["sandboxaaaa"], USER_PORT))
    yield running[0].server_address[1], running[1].server_address[1]
    for server in running:
        server.shutdown()
        server.server_close()


@pytest.fixture()
async def edge(tmp_path: Path, servers: tuple[int, int]) -> AsyncIterator[Edge]:
    from hutch.config import Settings

    api_port, proxy_port = servers
    proxy = {"domain": DOMAIN, "tls_dir": tmp_path / "tls", "tls_port": free_port(), "port": proxy_port}
    settings = Settings(data_dir=tmp_path, proxy=proxy)
    settings.api.port = api_port
    routes = EdgeRoutes(tmp_path / "edge")
    process = EdgeProcess(settings, BINARY or "", routes)
    certificate = await process.start()
    assert certificate.ca_path is not None
    yield Edge(settings.proxy.tls_port, certificate.ca_path, process, routes)
    await process.stop()


def _row(sandbox_id: str, **fields: object) -> SandboxRow:
    return SandboxRow(sandbox_id=sandbox_id, host=SANDBOXES[sandbox_id], **fields)


async def _served_by(edge: Edge, port: int | str, sandbox_id: str) -> str:
    return (await edge.get(port, sandbox_id)).json()["server"]


async def test_a_routed_sandbox_is_reached_directly_and_a_closed_one_through_the_proxy(edge):
    assert await _served_by(edge, ENVD_PORT, "sandboxaaaa") == "proxy"
    await edge.routes.open(_row("sandboxaaaa"))
    assert await _served_by(edge, ENVD_PORT, "sandboxaaaa") == "sandboxaaaa:envd"
    answer = await edge.get(USER_PORT, "sandboxaaaa")
    assert answer.json() == {
        "server": "sandboxaaaa:user",
        "host": f"{USER_PORT}-sandboxaaaa.{DOMAIN}:{edge.port}",
    }
    assert await _served_by(edge, ENVD_PORT, "sandboxbbbb") == "proxy"

    await edge.routes.close("sandboxaaaa")
    assert await _served_by(edge, ENVD_PORT, "sandboxaaaa") == "proxy"
    assert await _served_by(edge, USER_PORT, "sandboxaaaa") == "proxy"


async def test_ports_behind_a_token_or_a_masked_host_go_through_the_proxy(edge):
    await edge.routes.open(_row("sandboxaaaa", traffic_access_token="secret"))
    assert await _served_by(edge, ENVD_PORT, "sandboxaaaa") == "sandboxaaaa:envd"  # envd checks its own
    assert await _served_by(edge, USER_PORT, "sandboxaaaa") == "proxy"
    await edge.routes.open(_row("sandboxaaaa", mask_request_host="example.test"))
    assert await _served_by(edge, USER_PORT, "sandboxaaaa") == "proxy"
    await edge.routes.open(_row("sandboxaaaa"))
    assert await _served_by(edge, USER_PORT, "sandboxaaaa") == "sandboxaaaa:user"


async def test_hosts_that_name_no_valid_port_go_through_the_proxy(edge):
    await edge.routes.open(_row("sandboxaaaa"))
    for port in ("0", "65536", "99999", "080", "x"):
        assert await _served_by(edge, port, "sandboxaaaa") == "proxy", port
    async with httpx.AsyncClient(verify=ssl.create_default_context(cafile=str(edge.ca))) as client:
        nested = await client.get(
            f"https://{USER_PORT}-sandboxaaaa.{DOMAIN}:{edge.port}/",
            headers={"Host": f"{USER_PORT}-sandboxaaaa.more.{DOMAIN}:{edge.port}"},
        )
    assert nested.json()["server"] == "proxy"


async def test_a_port_that_refuses_is_e2b_json_and_a_sandbox_answer_is_left_alone(edge):
    await edge.routes.open(_row("sandboxbbbb"))
    closed = await edge.get(USER_PORT, "sandboxbbbb")
    assert closed.status_code == 502
    assert closed.json() == {"sandboxId": "sandboxbbbb", "message": responses.PORT_NOT_OPEN, "code": 502}
    assert "x-hutch-refusal" not in closed.headers

    await edge.routes.open(_row("sandboxaaaa"))
    own = await edge.get(USER_PORT, "sandboxaaaa", "/status/503")
    assert own.status_code == 503 and own.json()["server"] == "sandboxaaaa:user"


async def test_a_running_sandbox_whose_envd_refuses_has_its_port_not_open(edge, servers):
    # As E2B's proxy answers: the sandbox runs (it is routed), envd's port is not open.
    row = SandboxRow(sandbox_id="sandboxcccc", host="127.0.77.3")
    await edge.routes.open(row)
    refused = await edge.get(ENVD_PORT, "sandboxcccc")
    assert refused.status_code == 502
    assert refused.json() == {"sandboxId": "sandboxcccc", "message": responses.PORT_NOT_OPEN, "code": 502}


async def test_routes_changed_while_haproxy_is_down_hold_after_its_restart(edge):
    await edge.routes.open(_row("sandboxaaaa"))
    first = edge.process.pid
    assert first is not None
    os.kill(first, signal.SIGKILL)
    await edge.routes.close("sandboxaaaa")  # while it is down
    await edge.routes.open(_row("sandboxbbbb"))
    for _ in range(200):
        if edge.process.pid != first:
            try:
                if await _served_by(edge, ENVD_PORT, "sandboxbbbb") == "sandboxbbbb:envd":
                    break
            except (httpx.TransportError, json.JSONDecodeError):
                pass
        await asyncio.sleep(0.05)
    else:
        pytest.fail("the restarted haproxy does not route the sandbox opened while it was down")
    assert await _served_by(edge, ENVD_PORT, "sandboxaaaa") == "proxy"


async def test_reset_routes_exactly_the_sandboxes_given(edge):
    await edge.routes.open(_row("sandboxaaaa"))
    await edge.routes.reset([_row("sandboxbbbb")])
    assert await _served_by(edge, ENVD_PORT, "sandboxaaaa") == "proxy"
    assert await _served_by(edge, ENVD_PORT, "sandboxbbbb") == "sandboxbbbb:envd"
    assert "sandboxbbbb" in edge.routes and "sandboxaaaa" not in edge.routes


async def test_the_admin_socket_is_root_only(edge):
    mode = edge.routes.admin_socket.stat().st_mode & 0o777
    assert mode == 0o600
    assert edge.routes.directory.stat().st_mode & 0o077 == 0
