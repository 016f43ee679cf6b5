"""The sandbox-level environment variables, from envd's ``GET /envs``."""

from __future__ import annotations

import logging

import httpx

log = logging.getLogger(__name__)

DEFAULT_ENVD_URL = "http://127.0.0.1:49983"


class SandboxEnv:
    def __init__(self, envd_url: str = DEFAULT_ENVD_URL) -> None:
        self._url = envd_url.rstrip("/") + "/envs"
        self._client = httpx.AsyncClient(timeout=5.0)

    async def fetch(self, access_token: str | None) -> dict[str, str] | None:
        """The variables; None when envd refused (the caller asks again next time); empty when there is
        no envd to ask (a server run outside a sandbox)."""
        headers = {"X-Access-Token": access_token} if access_token else {}
        try:
            response = await self._client.get(self._url, headers=headers)
        except httpx.HTTPError as exc:
            log.warning("GET %s failed (%s): no sandbox-level variables", self._url, exc)
            return {}
        try:
            data = response.json() if response.status_code == 200 else None
        except ValueError:
            data = None
        if not isinstance(data, dict):
            log.warning("GET %s answered %s: %s", self._url, response.status_code, response.text[:200])
            return None
        return {str(name): str(value) for name, value in data.items()}

    async def close(self) -> None:
        await self._client.aclose()
