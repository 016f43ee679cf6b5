"""Waking a paused sandbox for the proxy: the API resumes it, asked with the node key (over loopback, on
one machine) or the cluster secret (a cluster's API replicas). Concurrent requests for one sandbox share
one call."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

import httpx

log = logging.getLogger("hutch.proxy")
# A resume boots the sandbox again at worst (a filesystem pause), with its template's ready command.
WAKE_TIMEOUT_S = 120.0


class Waker:
    """``await waker(sandbox_id)`` → whether the sandbox runs now."""

    def __init__(self, api_url: str, credentials: Callable[[], dict[str, str]]) -> None:
        self.api_url = api_url.rstrip("/")
        self._credentials = credentials
        self._client = httpx.AsyncClient(trust_env=False, timeout=WAKE_TIMEOUT_S)
        self._pending: dict[str, asyncio.Future[bool]] = {}

    async def __call__(self, sandbox_id: str) -> bool:
        pending = self._pending.get(sandbox_id)
        if pending is None:
            pending = asyncio.ensure_future(self._wake(sandbox_id))
            self._pending[sandbox_id] = pending
            pending.add_done_callback(lambda _: self._pending.pop(sandbox_id, None))
        return await asyncio.shield(pending)

    async def _wake(self, sandbox_id: str) -> bool:
        try:
            response = await self._client.post(
                f"{self.api_url}/internal/sandboxes/{sandbox_id}/wake",
                headers=self._credentials(),
            )
        except httpx.HTTPError as error:
            log.warning("could not wake sandbox %s: %s", sandbox_id, error)
            return False
        if response.status_code != 204:
            log.info("sandbox %s was not woken: %s %s", sandbox_id, response.status_code, response.text)
        return response.status_code == 204

    async def aclose(self) -> None:
        await self._client.aclose()
