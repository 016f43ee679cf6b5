"""The proxy as a process of its own (``python -m hutch.proxy``) under ``hutch up``'s supervisor: restarted
when it dies, stopped with its parent, and routing the SDK's debug id to the sandbox published in the data
directory, re-read when that changes."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

from hutch.catalog import Catalog
from hutch.catalog.models import SandboxRow
from hutch.config import CatalogSettings, ProxySettings, Settings
from hutch.proxy import debug
from hutch.proxy.hints import RouteHints
from hutch.proxy.routing import DEBUG_SANDBOX_ID
from hutch.proxy.supervisor import PID_FILE, ProxyProcess
from hutch.runtime.types import ENVD_PORT, SandboxHandle
from tests.conftest import free_port

DEBUG_HEADERS = {"E2b-Sandbox-Id": DEBUG_SANDBOX_ID, "E2b-Sandbox-Port": str(ENVD_PORT)}


def _settings(data_dir: Path, *, local_development: bool = False) -> Settings:
    proxy = ProxySettings(host="127.0.0.1", port=free_port(), local_development=local_development)
    return Settings(data_dir=data_dir, proxy=proxy)


def _url(settings: Settings) -> str:
    return f"http://127.0.0.1:{settings.proxy.port}/"


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except FileNotFoundError:
        return False
    return state not in ("Z", "X")


@pytest.fixture(params=[True], ids=["local-development"])
async def proxy(
    tmp_path: Path, request: pytest.FixtureRequest
) -> AsyncIterator[tuple[ProxyProcess, Settings]]:
    settings = _settings(tmp_path, local_development=request.param)
    process = ProxyProcess(settings)
    await process.start()
    try:
        yield process, settings
    finally:
        await process.stop()


@pytest.fixture()
def sandboxes() -> Iterator[dict[str, SandboxHandle]]:
    """Two HTTP servers that answer with their name, as handles of two "sandboxes"."""
    servers: dict[str, ThreadingHTTPServer] = {}
    for name in ("first", "second"):

        class Answer(BaseHTTPRequestHandler):
            body = name.encode()

            def do_GET(self) -> None:
                self.send_response(200)
                self.send_header("content-length", str(len(self.body)))
                self.end_headers()
                self.wfile.write(self.body)

            def log_message(self, *args: object) -> None:
                pass

        servers[name] = ThreadingHTTPServer(("127.0.0.1", 0), Answer)
        threading.Thread(target=servers[name].serve_forever, daemon=True).start()
    try:
        yield {
            name: SandboxHandle(
                sandbox_id=f"{name}sandbox".ljust(20, "0"),
                template_id="base",
                host="127.0.0.1",
                node_id="test",
                started_at=datetime.now(UTC),
                port_overrides={ENVD_PORT: server.server_address[1]},
            )
            for name, server in servers.items()
        }
    finally:
        for server in servers.values():
            server.shutdown()
            server.server_close()


async def test_the_debug_id_follows_the_published_sandbox(proxy, sandboxes):
    _, settings = proxy
    path = debug.path_in(settings.data_dir)
    async with httpx.AsyncClient(headers=DEBUG_HEADERS) as client:
        response = await client.get(_url(settings))
        assert response.status_code == 502 and "was not found" in response.json()["message"]
        debug.publish(path, sandboxes["first"])
        assert (await client.get(_url(settings))).text == "first"
        debug.publish(path, sandboxes["second"])
        assert (await client.get(_url(settings))).text == "second"
        debug.withdraw(path)
        assert (await client.get(_url(settings))).status_code == 502


async def test_the_api_hints_routes_to_the_child_also_after_a_restart(tmp_path, sandboxes):
    """A sandbox the API hints at is routed before the catalog knows it (here it never does), until the
    hint's close; a child started again reads the hints on the same socket."""
    settings = _settings(tmp_path)
    await (await Catalog.open(settings.catalog_url)).close()  # migrated, as the main process does
    route_hints = RouteHints()
    process = ProxyProcess(settings, route_hints)
    await process.start()
    first = sandboxes["first"]
    row = SandboxRow(
        sandbox_id=first.sandbox_id,
        host=first.host,
        port_overrides={str(port): target for port, target in first.port_overrides.items()},
        traffic_access_token=None,
        mask_request_host=None,
    )
    headers = {"E2b-Sandbox-Id": first.sandbox_id, "E2b-Sandbox-Port": str(ENVD_PORT)}
    try:
        async with httpx.AsyncClient(headers=headers) as client:
            for _ in range(2):
                await route_hints.open(row)
                await asyncio.sleep(0.05)
                assert (await client.get(_url(settings))).text == "first"
                await route_hints.close(row.sandbox_id)
                await asyncio.sleep(0.1)
                assert (await client.get(_url(settings))).status_code == 502
                old = process.pid
                os.kill(old, signal.SIGKILL)
                async with asyncio.timeout(30):
                    while process.pid in (old, None):
                        await asyncio.sleep(0.05)
                    while True:
                        with contextlib.suppress(httpx.TransportError):
                            await client.get(_url(settings))
                            break
    finally:
        await process.stop()
        route_hints.shut()


@pytest.mark.parametrize("proxy", [False], ids=["default"], indirect=True)
async def test_the_debug_id_is_refused_outside_local_development(proxy, sandboxes):
    # Even with a development sandbox published (by a stack of another configuration), the child started
    # with the default settings serves no debug mode: no key, no root shell.
    _, settings = proxy
    debug.publish(debug.path_in(settings.data_dir), sandboxes["first"])
    async with httpx.AsyncClient(headers=DEBUG_HEADERS) as client:
        response = await client.get(_url(settings))
    assert response.status_code == 403
    body = response.json()
    assert body["code"] == 403 and "local development mode" in body["message"]


async def test_a_killed_proxy_is_started_again_on_the_same_socket(proxy):
    process, settings = proxy
    first = process.pid
    assert first is not None
    assert int((settings.data_dir / PID_FILE).read_text()) == first
    os.kill(first, signal.SIGKILL)
    # Sent while no proxy runs: it waits in the socket's backlog for the next one, however long that one
    # takes to start on a busy machine.
    async with httpx.AsyncClient(timeout=30) as client:
        response = await client.get(_url(settings), headers={"host": "probe"})
    assert response.status_code == 400
    assert process.pid != first and _alive(process.pid or 0)
    assert int((settings.data_dir / PID_FILE).read_text()) == process.pid


async def test_stop_leaves_no_process_and_frees_the_port(tmp_path):
    settings = _settings(tmp_path)
    process = ProxyProcess(settings)
    await process.start()
    pid = process.pid
    assert pid is not None
    await process.stop()
    assert not _alive(pid)
    assert not (settings.data_dir / PID_FILE).exists()
    again = ProxyProcess(settings)  # the port can be bound again
    await again.start()
    await again.stop()


def test_the_proxy_dies_with_its_parent(tmp_path):
    settings = _settings(tmp_path)
    parent = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import asyncio, sys\n"
            "from hutch.config import ProxySettings, Settings\n"
            "from hutch.proxy.supervisor import ProxyProcess\n"
            "async def main():\n"
            f"    settings = Settings(data_dir={str(tmp_path)!r},"
            f" proxy=ProxySettings(host='127.0.0.1', port={settings.proxy.port}))\n"
            "    await ProxyProcess(settings).start()\n"
            "    print('started', flush=True)\n"
            "    await asyncio.sleep(600)\n"
            "asyncio.run(main())\n",
        ],
        stdout=subprocess.PIPE,
    )
    try:
        assert parent.stdout is not None
        assert parent.stdout.readline() == b"started\n"
        child = int((tmp_path / PID_FILE).read_text())
        assert _alive(child)
    finally:
        parent.kill()
        parent.wait()
    deadline = time.monotonic() + 5
    while _alive(child):
        assert time.monotonic() < deadline, "the proxy outlived its parent"
        time.sleep(0.02)
    with pytest.raises(httpx.TransportError):
        httpx.get(_url(settings), timeout=1)


async def test_a_proxy_that_cannot_start_is_reported(tmp_path):
    # The catalog cannot be opened (its directory would be under a file): the child exits, and start()
    # says so instead of waiting forever.
    (tmp_path / "file").write_text("")
    settings = Settings(
        data_dir=tmp_path,
        catalog=CatalogSettings(url=f"sqlite+aiosqlite:///{tmp_path}/file/hutch.db"),
        proxy=ProxySettings(host="127.0.0.1", port=free_port()),
    )
    process = ProxyProcess(settings)
    with pytest.raises(RuntimeError, match="did not start"):
        await asyncio.wait_for(process.start(), 30)
    await process.stop()
