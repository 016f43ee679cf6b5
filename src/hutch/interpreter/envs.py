"""The sandbox-level environment variables, from envd's ``GET /envs``, which also checks a request's token.

envd answers ``/envs`` only to the sandbox's current access token (set by ``/init``, renewed when a sandbox
is restored or forked), or to anyone when the sandbox has none (``secure=False``). Asking it with the token
that came with ``/execute`` is therefore the interpreter's check of that token: envd compares in constant
time, and no copy of the token exists anywhere else in the sandbox.
"""

from __future__ import annotations

import logging

import httpx

log = logging.getLogger(__name__)

DEFAULT_ENVD_URL = "http://127.0.0.1:49983"


class AccessDenied(Exception):
    """envd refused the request's access token."""


class EnvdUnavailable(Exception):
    """envd answered, but neither with the variables nor with a refusal."""


class SandboxEnv:
    def __init__(self, envd_url: str = DEFAULT_ENVD_URL) -> None:
        self._url = envd_url.rstrip("/") + "/envs"
        self._client = httpx.AsyncClient(timeout=5.0, trust_env=False)

    async def fetch(self, access_token: bytes | None) -> dict[str, str]:
        """The variables, if ``access_token`` (a header's raw bytes) is the sandbox's; ``AccessDenied`` if
        envd refuses it. Empty when nothing listens at envd's address (a server run outside a sandbox)."""
        headers = {"X-Access-Token": access_token} if access_token is not None else {}
        try:
            response = await self._client.get(self._url, headers=headers)
        except httpx.ConnectError as exc:
            log.warning("GET %s failed (%s): no sandbox-level variables", self._url, exc)
            return {}
        except httpx.HTTPError as exc:
            raise EnvdUnavailable(f"envd did not answer: {type(exc).__name__}") from exc
        if response.status_code == 401:
            raise AccessDenied(response.text)
        try:
            data = response.json() if response.status_code == 200 else None
        except ValueError:
            data = None
        if not isinstance(data, dict):
            raise EnvdUnavailable(f"envd answered {response.status_code}")
        return {str(name): str(value) for name, value in data.items()}

    async def close(self) -> None:
        await self._client.aclose()
