"""Shared test helpers: free ports and waiting for servers; no stack of the tests has egress unless it
asks for a test-made uplink."""

from __future__ import annotations

import os
import socket
import time

import httpx
import pytest

# Every ``hutch up`` and ``Settings()`` of the tests, children included, inherits this: a test stack never
# reaches the outside through the machine's own uplink (``auto``, the default, would find it).
EGRESS_OFF = {"HUTCH_RUNTIME__EGRESS_INTERFACE": "off"}


def pytest_configure(config: pytest.Config) -> None:
    os.environ.update(EGRESS_OFF)
    from tests import edge_ca  # the stacks' TLS edge: off unless asked; its authority trusted

    os.environ.update(edge_ca.EDGE_OFF)
    os.environ.update(edge_ca.trust())


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_http(url: str, timeout: float = 10.0) -> None:
    """Poll ``url`` until it answers with a status below 500."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if httpx.get(url, timeout=1).status_code < 500:
                return
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            raise TimeoutError(f"{url} did not answer within {timeout} s")
        time.sleep(0.02)


# The real stack (``hutch up`` on free ports) and a sandbox in it, shared by tests/e2e and tests/security;
# registries on loopback and images to push to them.
pytest_plugins = ["tests.stack", "tests.registry"]
