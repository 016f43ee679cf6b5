"""The TLS edge: its HAProxy configuration, and HAProxy itself in front of two loopback servers standing in
for the API and the proxy (routing by Host, the headers it sets, HTTP/2, restart and stop)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import ssl
import subprocess
import threading
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

from hutch.config import Settings
from hutch.proxy import haproxy
from hutch.proxy.edge import EdgeProcess, haproxy_binary
from hutch.proxy.routes import EdgeRoutes
from tests.conftest import free_port

DOMAIN = "hutch.localhost"
BINARY = haproxy_binary()
needs_haproxy = pytest.mark.skipif(
    BINARY is None, reason="haproxy is not installed (apt-get install haproxy)"
)


def _settings(tmp_path: Path, **proxy: object) -> Settings:
    # The tests' environment turns the edge off (tests/edge_ca.py): these settings name its port.
    proxy = {"domain": DOMAIN, "tls_dir": tmp_path / "tls", "tls_port": 8443, **proxy}
    return Settings(data_dir=tmp_path, proxy=proxy)


def _routes(tmp_path: Path) -> EdgeRoutes:
    return EdgeRoutes(tmp_path / "edge")


def test_the_configuration_terminates_tls_and_routes_by_host(tmp_path):
    settings = _settings(tmp_path, tls_port=8443, port=49990, idle_timeout_s=300)
    settings.api.port = 3999
    config = haproxy.from_settings(
        settings, tmp_path / "edge.pem", _routes(tmp_path), ipv6=True, user="haproxy"
    )
    text = haproxy.render(config)
    crt = f"ssl crt {tmp_path / 'edge.pem'} alpn h2,http/1.1"
    assert f"bind ipv4@127.0.0.1:8443 {crt}" in text
    assert f"bind ipv6@::1:8443 v6only {crt}" in text
    assert "ssl-min-ver TLSv1.2" in text
    assert f"maxconn {haproxy.MAX_CONNECTIONS}" in text
    assert f"-m str api.{DOMAIN}" in text
    assert "server api ipv4@127.0.0.1:3999" in text
    assert "server proxy ipv4@127.0.0.1:49990" in text
    assert "http-request set-header X-Hutch-Edge 1" in text
    assert "http-request del-header X-Forwarded-For" in text
    assert "option forwardfor" in text
    assert "timeout server 300000ms" in text
    assert "timeout client 620s" in text and "timeout tunnel" in text
    assert "user haproxy" in text


def test_without_ipv6_loopback_the_edge_listens_on_ipv4_only(tmp_path):
    config = haproxy.from_settings(
        _settings(tmp_path), tmp_path / "edge.pem", _routes(tmp_path), ipv6=False, user=None
    )
    assert list(config.listen) == ["127.0.0.1"]
    assert "::1" not in haproxy.render(config) and "user " not in haproxy.render(config)


def test_the_connection_bound_follows_the_file_limit(tmp_path):
    settings = _settings(tmp_path)
    assert (
        haproxy.from_settings(
            settings, Path("/x.pem"), _routes(tmp_path), ipv6=True, user=None
        ).max_connections
        == haproxy.MAX_CONNECTIONS
    )
    bounded = haproxy.from_settings(
        settings, Path("/x.pem"), _routes(tmp_path), ipv6=True, user=None, file_limit=4096
    )
    assert bounded.max_connections == 1998
    assert "maxconn 1998" in haproxy.render(bounded)


def test_a_public_host_is_listened_on_as_given(tmp_path):
    config = haproxy.from_settings(
        _settings(tmp_path, host="0.0.0.0"), Path("/x.pem"), _routes(tmp_path), ipv6=True, user=None
    )
    assert list(config.listen) == ["0.0.0.0"]
    assert config.proxy[0] == "127.0.0.1"


@needs_haproxy
def test_haproxy_accepts_the_configuration(tmp_path):
    from hutch.proxy.certificates import ensure

    pem = ensure(tmp_path / "tls", DOMAIN).pem_path
    path = tmp_path / "haproxy.cfg"
    path.write_text(
        haproxy.render(
            haproxy.from_settings(_settings(tmp_path), pem, _routes(tmp_path), ipv6=True, user="haproxy")
        )
    )
    routes = _routes(tmp_path)
    routes.directory.mkdir()
    routes.write_files()
    checked = subprocess.run([BINARY, "-c", "-f", str(path)], capture_output=True, text=True)
    assert checked.returncode == 0, checked.stderr


class _Echo(BaseHTTPRequestHandler):
    """Answers with its name and the request's headers, as JSON."""

    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        body = json.dumps(
            {"server": self.server.name, "headers": {k.lower(): v for k, v in self.headers.items()}}
        )
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body.encode())

    def log_message(self, *args: object) -> None:
        pass


@dataclass
class Edge:
    port: int
    ca: Path
    process: EdgeProcess

    def url(self, name: str) -> str:
        return f"https://{name}.{DOMAIN}:{self.port}"


@pytest.fixture()
def backends() -> Iterator[tuple[int, int]]:
    servers = []
    for name in ("api", "proxy"):
        server = ThreadingHTTPServer(("127.0.0.1", 0), _Echo)
        server.name = name  # type: ignore[attr-defined]
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
    yield servers[0].server_address[1], servers[1].server_address[1]
    for server in servers:
        server.shutdown()
        server.server_close()


@pytest.fixture()
async def edge(tmp_path: Path, backends: tuple[int, int]) -> AsyncIterator[Edge]:
    if BINARY is None:
        pytest.skip("haproxy is not installed (apt-get install haproxy)")
    api_port, proxy_port = backends
    settings = _settings(tmp_path, tls_port=free_port(), port=proxy_port)
    settings.api.port = api_port
    process = EdgeProcess(settings, BINARY, _routes(tmp_path))
    certificate = await process.start()
    assert certificate.ca_path is not None
    yield Edge(settings.proxy.tls_port, certificate.ca_path, process)
    await process.stop()


async def _get(edge: Edge, url: str, **headers: str) -> httpx.Response:
    async with httpx.AsyncClient(verify=ssl.create_default_context(cafile=str(edge.ca))) as client:
        return await client.get(url, headers=headers)


async def test_the_edge_routes_by_host_and_marks_every_request(edge):
    api = await _get(edge, f"{edge.url('api')}/health", **{"X-Hutch-Edge": "0", "X-Forwarded-For": "6.6.6.6"})
    assert api.status_code == 200 and api.http_version == "HTTP/1.1"
    assert api.json()["server"] == "api"
    headers = api.json()["headers"]
    assert headers["x-hutch-edge"] == "1"
    assert headers["x-forwarded-proto"] == "https"
    assert "6.6.6.6" not in headers["x-forwarded-for"]
    assert headers["host"] == f"api.{DOMAIN}:{edge.port}"

    sandbox = await _get(edge, f"{edge.url('8000-abc123')}/")
    assert sandbox.json()["server"] == "proxy"
    assert sandbox.json()["headers"]["host"] == f"8000-abc123.{DOMAIN}:{edge.port}"
    assert sandbox.json()["headers"]["x-hutch-edge"] == "1"


@pytest.mark.parametrize(("flag", "version"), [("--http2", "2"), ("--http1.1", "1.1")])
async def test_curl_negotiates_http2_or_http1(edge, flag, version):
    done = await asyncio.to_thread(
        subprocess.run,
        ["curl", "-sS", flag, "--cacert", str(edge.ca), "-w", "\n%{http_version}", f"{edge.url('api')}/x"],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    body, negotiated = done.stdout.rsplit("\n", 1)
    assert negotiated == version
    assert json.loads(body)["server"] == "api"


async def test_the_edge_serves_on_ipv6_loopback_too(edge):
    context = ssl.create_default_context(cafile=str(edge.ca))
    _, writer = await asyncio.open_connection("::1", edge.port, ssl=context, server_hostname=f"api.{DOMAIN}")
    writer.close()


async def test_a_killed_haproxy_is_started_again_and_stop_ends_it(edge):
    first = edge.process.pid
    assert first is not None
    os.kill(first, signal.SIGKILL)
    for _ in range(200):
        if edge.process.pid != first:
            try:
                if (await _get(edge, f"{edge.url('api')}/")).status_code == 200:
                    break
            except httpx.TransportError:
                pass
        await asyncio.sleep(0.05)
    else:
        pytest.fail("haproxy was not started again")
    second = edge.process.pid
    await edge.process.stop()
    with pytest.raises(ProcessLookupError):
        os.kill(second, 0)
    with pytest.raises(httpx.TransportError):
        await _get(edge, f"{edge.url('api')}/")
