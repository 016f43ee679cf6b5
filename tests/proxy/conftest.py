"""Fixtures for the proxy: two real envd processes as two sandboxes, and the proxy in front of them.

Each sandbox runs as its own Unix user with its own home, so a relative path names a different file in
each. The proxy serves in a thread (uvicorn on a socket bound to port 0) with a resolver that maps fake
sandbox ids to the envds; any other port of a sandbox is that port on 127.0.0.1. ``SANDBOX_SECURED`` is
sandbox A's envd behind a traffic access token (``TRAFFIC_TOKEN``).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime

import pytest
from e2b import ConnectionConfig
from packaging.version import Version

from hutch.config import ProxySettings
from hutch.envd.version import VERSION
from hutch.proxy import Resolver, SandboxRoute, create_server
from hutch.proxy.routing import DEBUG_SANDBOX_ID
from hutch.runtime.types import ENVD_PORT, SandboxHandle
from tests.conftest import free_port
from tests.envd.conftest import Envd, start_envd, stop_envd

SANDBOX_A = "sbxaaaaaaaaaaaaaaaaa"
SANDBOX_B = "sbxbbbbbbbbbbbbbbbbb"
# Known to the resolver, but nothing listens on its envd port.
SANDBOX_CLOSED = "sbxclosedport000000"
UNKNOWN_SANDBOX = "sbxnosuchsandbox0000"
# Sandbox A again, created with ``allowPublicTraffic: false``.
SANDBOX_SECURED = "sbxsecured0000000000"
TRAFFIC_TOKEN = "traffic-token-of-the-secured-sandbox"


@dataclass
class Proxy:
    url: str
    port: int
    envds: dict[str, Envd]
    resolved: list[str]


@pytest.fixture(scope="session")
def sandbox_users() -> Iterator[list[tuple[str, str]]]:
    """Two fresh Unix users, (name, home) each, with homes in a temporary directory."""
    base = tempfile.mkdtemp(prefix="hutch-proxy-")
    os.chmod(base, 0o755)
    users = []
    try:
        for suffix in ("a", "b"):
            name = f"hutch-p{os.getpid() % 100000}{suffix}"
            home = os.path.join(base, name)
            subprocess.run(["useradd", "-m", "-d", home, "-s", "/bin/bash", name], check=True)
            users.append((name, home))
        yield users
    finally:
        for name, _ in users:
            subprocess.run(["userdel", "-f", "-r", name], check=False, capture_output=True)
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="session")
def proxy(sandbox_users) -> Iterator[Proxy]:
    envds: dict[str, Envd] = {}
    # Bound but not listening: connections to it are refused, and no other process can take the port.
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    try:
        for sandbox_id, user in zip((SANDBOX_A, SANDBOX_B), sandbox_users, strict=True):
            envds[sandbox_id] = start_envd(*user)
        routes = {
            sandbox_id: SandboxRoute(handle(sandbox_id, envd.port)) for sandbox_id, envd in envds.items()
        }
        routes[SANDBOX_CLOSED] = SandboxRoute(handle(SANDBOX_CLOSED, closed.getsockname()[1]))
        # As `hutch up` does: the SDK's debug mode reaches one long-lived sandbox.
        routes[DEBUG_SANDBOX_ID] = routes[SANDBOX_A]
        routes[SANDBOX_SECURED] = SandboxRoute(
            handle(SANDBOX_SECURED, envds[SANDBOX_A].port), traffic_access_token=TRAFFIC_TOKEN
        )
        resolved: list[str] = []

        async def resolve(sandbox_id: str) -> SandboxRoute | None:
            resolved.append(sandbox_id)
            return routes.get(sandbox_id)

        with serving(ProxySettings(local_development=True), resolve) as port:
            yield Proxy(f"http://127.0.0.1:{port}", port, envds, resolved)
    finally:
        for envd in envds.values():
            stop_envd(envd)
        closed.close()


@contextmanager
def serving(
    settings: ProxySettings, resolve: Resolver, hosts: tuple[str, ...] = ("127.0.0.1",)
) -> Iterator[int]:
    """Serve a proxy with ``settings`` on a free port of each of ``hosts``, in a thread; yields the port."""
    port = free_port()
    sockets = []
    for host in hosts:
        sock = socket.socket()
        sock.bind((host, port))
        sockets.append(sock)
    server = create_server(settings.model_copy(update={"host": hosts[0], "port": port}), resolve)
    thread = threading.Thread(target=asyncio.run, args=(server.serve(sockets=sockets),), daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the proxy did not start"
        time.sleep(0.01)
    try:
        yield port
    finally:
        server.should_exit = True
        thread.join(10)
        for sock in sockets:
            sock.close()


def handle(sandbox_id: str, envd_port: int) -> SandboxHandle:
    return SandboxHandle(
        sandbox_id=sandbox_id,
        template_id="base",
        host="127.0.0.1",
        node_id="test",
        started_at=datetime.now(UTC),
        port_overrides={ENVD_PORT: envd_port},
    )


def sdk_sandbox(cls, proxy: Proxy, sandbox_id: str):
    """The official SDK's sandbox object as ``Sandbox.create`` builds it with ``E2B_SANDBOX_URL`` set: every
    call goes to the proxy with the ``E2b-Sandbox-Id``/``E2b-Sandbox-Port`` headers."""
    headers = {"E2b-Sandbox-Id": sandbox_id, "E2b-Sandbox-Port": str(ENVD_PORT)}
    return cls(
        sandbox_id=sandbox_id,
        sandbox_domain=None,
        envd_version=Version(VERSION),
        envd_access_token=None,
        connection_config=ConnectionConfig(sandbox_url=proxy.url, extra_sandbox_headers=headers, debug=True),
    )
