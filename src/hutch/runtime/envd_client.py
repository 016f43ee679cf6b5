"""The runtime's side of envd: wait for ``/health``, send ``/init``, read ``/metrics``."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime

import httpx

from ..errors import BackendUnavailable
from .types import SandboxSpec


async def wait_healthy(client: httpx.AsyncClient, base_url: str, timeout_s: float = 10.0) -> None:
    """Poll envd's ``/health`` until it answers 204."""
    deadline = time.monotonic() + timeout_s
    delay = 0.001
    while True:
        try:
            response = await client.get(f"{base_url}/health", timeout=1.0)
            if response.status_code == 204:
                return
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            raise BackendUnavailable(f"envd at {base_url} did not become healthy within {timeout_s} s")
        await asyncio.sleep(delay)
        delay = min(delay * 2, 0.02)


async def init(client: httpx.AsyncClient, base_url: str, spec: SandboxSpec, *, default_user: str) -> None:
    """Configure a fresh envd for ``spec`` (env vars, access token, default user and workdir, clock)."""
    body: dict = {
        "envVars": {**spec.template.env, **spec.env_vars},
        "defaultUser": default_user,
        "timestamp": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
    }
    if spec.access_token:
        body["accessToken"] = spec.access_token
    if spec.template.default_workdir:
        body["defaultWorkdir"] = spec.template.default_workdir
    response = await client.post(f"{base_url}/init", json=body, timeout=5.0)
    if response.status_code != 204:
        raise BackendUnavailable(f"envd /init failed: {response.status_code} {response.text}")


async def metrics(client: httpx.AsyncClient, base_url: str, access_token: str | None) -> dict:
    headers = {"X-Access-Token": access_token} if access_token else {}
    response = await client.get(f"{base_url}/metrics", headers=headers, timeout=5.0)
    response.raise_for_status()
    return response.json()
