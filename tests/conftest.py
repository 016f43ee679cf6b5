"""Shared test helpers: free ports and waiting for servers."""

from __future__ import annotations

import socket
import time

import httpx


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
