"""The ``fake`` backend: envd as a plain host process per sandbox, no isolation at all.

For unit tests of the API and proxy, and for development on machines without crun. Every sandbox is a
real envd on a free loopback port, so the official SDK works against it end to end.
"""

from __future__ import annotations

import asyncio
import os
import pwd
import signal
import socket
import subprocess
import sys
from datetime import UTC, datetime

import httpx

from . import envd_client
from .types import ENVD_PORT, SandboxHandle, SandboxSpec, new_sandbox_id


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _user_exists(name: str) -> bool:
    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True


class FakeRuntime:
    """Sandboxes as host processes running ``python -m hutch.envd``."""

    name = "fake"

    def __init__(self, *, node_id: str = "local") -> None:
        self.node_id = node_id
        self._procs: dict[str, subprocess.Popen] = {}
        self._handles: dict[str, SandboxHandle] = {}
        self._tokens: dict[str, str | None] = {}
        self._client = httpx.AsyncClient()

    async def start(self) -> None:
        return None

    async def create(self, spec: SandboxSpec) -> SandboxHandle:
        sandbox_id = new_sandbox_id()
        port = _free_port()
        process = subprocess.Popen(
            [sys.executable, "-m", "hutch.envd", "--port", str(port), "--host", "127.0.0.1"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            start_new_session=True,
        )
        self._procs[sandbox_id] = process
        base_url = f"http://127.0.0.1:{port}"
        try:
            await envd_client.wait_healthy(self._client, base_url)
            user = spec.template.default_user
            await envd_client.init(
                self._client, base_url, spec, default_user=user if _user_exists(user) else "root"
            )
        except BaseException:
            await self.kill(sandbox_id)
            raise
        handle = SandboxHandle(
            sandbox_id=sandbox_id,
            template_id=spec.template.template_id,
            host="127.0.0.1",
            node_id=self.node_id,
            started_at=datetime.now(UTC),
            port_overrides={ENVD_PORT: port},
        )
        self._handles[sandbox_id] = handle
        self._tokens[sandbox_id] = spec.access_token
        return handle

    async def kill(self, sandbox_id: str) -> None:
        process = self._procs.pop(sandbox_id, None)
        self._handles.pop(sandbox_id, None)
        self._tokens.pop(sandbox_id, None)
        if process is None:
            return
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        await asyncio.to_thread(process.wait)

    async def list(self) -> list[SandboxHandle]:
        return list(self._handles.values())

    async def metrics(self, sandbox_id: str) -> dict:
        handle = self._handles[sandbox_id]
        host, port = handle.address(ENVD_PORT)
        return await envd_client.metrics(self._client, f"http://{host}:{port}", self._tokens[sandbox_id])

    async def close(self) -> None:
        for sandbox_id in list(self._procs):
            await self.kill(sandbox_id)
        await self._client.aclose()
