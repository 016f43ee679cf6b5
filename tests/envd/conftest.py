"""Fixtures for envd: a real envd process on a free port, and the official SDK pointed at it.

The SDK runs in debug mode (no control plane) with ``sandbox_url`` set to the envd under test. Commands run
as a dedicated Unix user (``/init``'s ``defaultUser``), created for the session with ``useradd``.
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest
from e2b import AsyncSandbox, ConnectionConfig, Sandbox
from packaging.version import Version

from hutch.envd.version import VERSION
from tests.conftest import free_port, wait_http


@dataclass
class Envd:
    url: str
    port: int
    process: subprocess.Popen
    user: str
    home: str

    def init(self, **body) -> httpx.Response:
        headers = body.pop("headers", {})
        return httpx.post(f"{self.url}/init", json=body, headers=headers)


def start_envd(user: str, home: str, *, command: list[str] | None = None, **init) -> Envd:
    port = free_port()
    argv = command or [sys.executable, "-m", "hutch.envd"]
    process = subprocess.Popen(
        [*argv, "--port", str(port), "--host", "127.0.0.1"],
        stdin=subprocess.DEVNULL,
        env={**os.environ, "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"},
    )
    envd = Envd(f"http://127.0.0.1:{port}", port, process, user, home)
    wait_http(f"{envd.url}/health")
    response = envd.init(defaultUser=user, envVars={"HUTCH_SANDBOX_VAR": "sandbox-level"}, **init)
    assert response.status_code == 204, response.text
    return envd


def stop_envd(envd: Envd) -> None:
    envd.process.send_signal(signal.SIGTERM)
    try:
        envd.process.wait(5)
    except subprocess.TimeoutExpired:
        envd.process.kill()
        envd.process.wait()


@pytest.fixture(scope="session")
def test_user() -> Iterator[tuple[str, str]]:
    """A fresh Unix user with its home in a temporary directory: (name, home)."""
    base = tempfile.mkdtemp(prefix="hutch-envd-")
    os.chmod(base, 0o755)
    home = os.path.join(base, "home")
    name = f"hutch-t{uuid.uuid4().hex[:10]}"
    subprocess.run(["useradd", "-m", "-d", home, "-s", "/bin/bash", name], check=True)
    try:
        yield name, home
    finally:
        subprocess.run(["userdel", "-f", "-r", name], check=False, capture_output=True)
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="session")
def envd(test_user) -> Iterator[Envd]:
    server = start_envd(*test_user)
    yield server
    stop_envd(server)


@pytest.fixture()
def workdir(envd: Envd) -> Iterator[str]:
    """A fresh directory owned by the test user, removed afterwards."""
    path = os.path.join(envd.home, f"t-{uuid.uuid4().hex[:10]}")
    os.mkdir(path)
    entry = pwd.getpwnam(envd.user)
    os.chown(path, entry.pw_uid, entry.pw_gid)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture()
def sandbox(envd: Envd) -> Sandbox:
    """The official sync SDK in debug mode, talking to the envd under test."""
    return Sandbox.create(debug=True, sandbox_url=envd.url)


@pytest.fixture()
async def async_sandbox(envd: Envd) -> AsyncSandbox:
    return await AsyncSandbox.create(debug=True, sandbox_url=envd.url)


def sdk_sandbox(cls, url: str, token: str | None = None, version: str = VERSION):
    """The SDK's public constructor, as ``Sandbox.create`` builds it after the control plane answered:
    used where debug mode cannot express the case (an access token, the version envd reports)."""
    headers = {"E2b-Sandbox-Id": "envdtest", "E2b-Sandbox-Port": "49983"}
    if token is not None:
        headers["X-Access-Token"] = token
    return cls(
        sandbox_id="envdtest",
        sandbox_domain=None,
        envd_version=Version(version),
        envd_access_token=token,
        connection_config=ConnectionConfig(sandbox_url=url, extra_sandbox_headers=headers, debug=True),
    )
