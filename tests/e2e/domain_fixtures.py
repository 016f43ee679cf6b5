"""What the tests of E2B's self-hosting path share: a client environment with only ``E2B_DOMAIN`` and
``E2B_API_KEY``, the tests' certificate authority as an SSL context, and a server started in a sandbox."""

from __future__ import annotations

import os
import ssl
import time
from pathlib import Path

import pytest
from e2b import Sandbox

from tests import edge_ca
from tests.stack import Stack


def use_only_domain(stack: Stack, monkeypatch: pytest.MonkeyPatch) -> Stack:
    """Make the process environment that of a client given ``E2B_DOMAIN`` and ``E2B_API_KEY``, nothing
    else."""
    for name in list(os.environ):
        if name.startswith("E2B_"):
            monkeypatch.delenv(name)
    assert stack.domain is not None
    monkeypatch.setenv("E2B_DOMAIN", stack.domain)
    monkeypatch.setenv("E2B_API_KEY", stack.api_key)
    return stack


def node_environment(stack: Stack, home: Path) -> dict[str, str]:
    """What a Node client of ``stack`` is given: the domain, the key and the CA to trust, nothing else."""
    return {
        "PATH": os.environ["PATH"],
        "HOME": str(home),
        "E2B_DOMAIN": str(stack.domain),
        "E2B_API_KEY": stack.api_key,
        "NODE_EXTRA_CA_CERTS": str(edge_ca.ca_path()),
    }


def ca_context() -> ssl.SSLContext:
    """An SSL context that trusts the tests' certificate authority only."""
    return ssl.create_default_context(cafile=str(edge_ca.ca_path()))


def serve(sandbox: Sandbox, command: str, port: int) -> str:
    """Start ``command`` in the background and wait until the port answers; the port's host name."""
    sandbox.commands.run(command, background=True)
    host = sandbox.get_host(port)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        probe = sandbox.commands.run(f"curl -s -o /dev/null -w '%{{http_code}}' localhost:{port}/ || true")
        if probe.stdout.strip() not in ("", "000"):
            return host
        time.sleep(0.2)
    pytest.fail(f"nothing answers on port {port} in the sandbox")
