"""The SDK's debug mode (``E2B_DEBUG=true``: no API key, no sandbox id, root in one shared development
sandbox) is served only in local development mode (``hutch up --dev``), and then only to clients on
loopback.

The stack started with the defaults creates no development sandbox and refuses the debug id whatever key
comes with it. The session's stack runs in local development mode: the SDK in debug mode works there from
loopback, and a proxy serving its development sandbox on an address of a veth refuses a client in a network
namespace made here (its only way to the host), and a client of the host that reaches it on that address.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator

import httpx
import pytest
from e2b import Sandbox

from hutch.config import ProxySettings
from hutch.proxy import SandboxRoute
from hutch.proxy.access import DEBUG_MODE_OFF, DEBUG_MODE_REMOTE
from hutch.proxy.debug import DebugSandbox, path_in
from hutch.proxy.routing import DEBUG_SANDBOX_ID
from hutch.runtime.types import ENVD_PORT
from tests.netns import joined_namespace
from tests.proxy.conftest import serving
from tests.stack import WORKER, Stack, start_stack, stop_stack

DEBUG_HEADERS = {"E2b-Sandbox-Id": DEBUG_SANDBOX_ID, "E2b-Sandbox-Port": str(ENVD_PORT)}
# A subnet of its own for the second stack, and a /30 for the veth to the client's namespace.
DEFAULT_SUBNET = f"10.{70 + WORKER}.0.0/16"
HOST_IP, CLIENT_IP = f"10.253.{WORKER}.1", f"10.253.{WORKER}.2"


@pytest.fixture(scope="module")
def default_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    if os.geteuid() != 0:
        pytest.fail("the debug mode tests need root")
    settings = {"HUTCH_PROXY__LOCAL_DEVELOPMENT": "false", "HUTCH_RUNTIME__WARM_POOL": "{}"}
    stack = start_stack(tmp_path_factory.mktemp("default"), subnet=DEFAULT_SUBNET, settings=settings)
    yield stack
    stop_stack(stack)


def test_the_default_stack_serves_no_debug_mode(default_stack: Stack) -> None:
    assert not path_in(default_stack.data_dir).exists()
    sandboxes = default_stack.data_dir / "sandboxes"
    assert not sandboxes.exists() or not any(sandboxes.iterdir()), "a sandbox runs that nobody created"
    for key in ({}, {"X-API-Key": default_stack.api_key}, {"X-API-Key": "e2b_" + "0" * 40}):
        response = httpx.get(f"{default_stack.sandbox_url}/health", headers={**DEBUG_HEADERS, **key})
        assert response.status_code == 403
        assert response.json() == {"sandboxId": DEBUG_SANDBOX_ID, "message": DEBUG_MODE_OFF, "code": 403}
    host = {"Host": f"{ENVD_PORT}-{DEBUG_SANDBOX_ID}.localhost:{default_stack.proxy_port}"}
    response = httpx.get(f"http://127.0.0.1:{default_stack.proxy_port}/health", headers=host)
    assert response.status_code == 403


def test_the_sdk_in_debug_mode_is_refused_by_the_default_stack(
    default_stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("E2B_DEBUG", "true")
    monkeypatch.delenv("E2B_API_KEY", raising=False)
    sandbox = Sandbox.create(sandbox_url=default_stack.sandbox_url)
    with pytest.raises(Exception, match="local development mode"):
        sandbox.files.read("/etc/hostname")


def test_the_sdk_in_debug_mode_works_from_loopback_in_local_development(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("E2B_DEBUG", "true")
    monkeypatch.delenv("E2B_API_KEY", raising=False)
    sandbox = Sandbox.create(sandbox_url=stack.sandbox_url)
    assert sandbox.sandbox_id == DEBUG_SANDBOX_ID
    assert sandbox.commands.run("whoami").stdout.strip() == "user"


@pytest.fixture()
def client_netns() -> Iterator[str]:
    """A network namespace whose only link is a veth to the host: ``CLIENT_IP`` there, ``HOST_IP`` here."""
    with joined_namespace("dbg", HOST_IP, CLIENT_IP, 30) as joined:
        yield joined.netns


def test_a_client_off_loopback_is_refused_in_local_development(stack: Stack, client_netns: str) -> None:
    development = DebugSandbox(path_in(stack.data_dir))

    async def resolve(sandbox_id: str) -> SandboxRoute | None:
        handle = development.get() if sandbox_id == DEBUG_SANDBOX_ID else None
        return SandboxRoute(handle) if handle is not None else None

    settings = ProxySettings(local_development=True)
    with serving(settings, resolve, hosts=("127.0.0.1", HOST_IP)) as port:
        # From loopback, the development sandbox answers (the official SDK, in debug mode).
        sandbox = Sandbox.create(debug=True, sandbox_url=f"http://127.0.0.1:{port}")
        assert sandbox.commands.run("whoami", user="root").stdout.strip() == "root"
        # From the namespace, over the veth: refused, before anything reaches the sandbox.
        fetch = (
            "import httpx, json; "
            f"r = httpx.get('http://{HOST_IP}:{port}/health', headers={DEBUG_HEADERS!r}, timeout=10); "
            "print(r.status_code, r.text)"
        )
        done = subprocess.run(
            ["ip", "netns", "exec", client_netns, sys.executable, "-c", fetch],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0, done.stderr
        status, body = done.stdout.split(" ", 1)
        assert status == "403"
        assert DEBUG_MODE_REMOTE in body
        # The host itself, on the veth's address, is no loopback peer either.
        response = httpx.get(f"http://{HOST_IP}:{port}/health", headers=DEBUG_HEADERS)
        assert response.status_code == 403


def test_local_development_on_a_public_address_is_refused(tmp_path) -> None:
    env = {
        **os.environ,
        "HUTCH_DATA_DIR": str(tmp_path / "data"),
        "HUTCH_PROXY__HOST": "0.0.0.0",
        "HUTCH_PROXY__PORT": "1",  # never bound: `hutch up` stops before
    }
    done = subprocess.run(
        [sys.executable, "-m", "hutch.cli.main", "up", "--dev", "--env-file", str(tmp_path / "env")],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert "loopback" in done.stdout + done.stderr
    assert not (tmp_path / "data").exists()
