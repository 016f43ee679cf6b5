"""The gateway on this machine: started by ``python -m hutch.mcp_gateway --config`` as the template's
command is, on a free loopback port, its servers run as ``nobody``; custom servers are cloned from local
repositories through git's ``url.<base>.insteadOf``, so nothing leaves the machine."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from mcp import ClientSession
from mcp.client.streamable_http import streamable_http_client

from tests.conftest import free_port

ECHO_SERVER = Path(__file__).with_name("echo_server.py")
SITE_PACKAGES = next(path for path in sys.path if path.endswith("site-packages"))


@dataclass
class Gateway:
    url: str
    token: str
    state_dir: Path
    log_file: Path

    @asynccontextmanager
    async def session(self, token: str | None = None):
        headers = {"Authorization": f"Bearer {token or self.token}"}
        async with (
            httpx.AsyncClient(headers=headers, timeout=httpx.Timeout(30, read=300)) as http,
            streamable_http_client(self.url, http_client=http) as (read, write, _),
            ClientSession(read, write) as session,
        ):
            await session.initialize()
            yield session


@dataclass
class Place:
    """A world-readable directory (the servers run as ``nobody``) with the test's repositories."""

    root: Path

    def run_cmd(self, mode: str = "") -> str:
        """The echo server's command, on the system's Python 3.11 (the tests' lives in root's home, which
        ``nobody`` cannot reach) with the tests' packages."""
        prefix = f"ECHO_SERVER_MODE={mode} " if mode else ""
        return f"{prefix}PYTHONPATH={SITE_PACKAGES} exec /usr/bin/python3.11 echo_server.py"

    def options(self, port: int) -> list[str]:
        return [
            "--host", "127.0.0.1", "--port", str(port), "--state-dir", str(self.root / "state"),
            "--log-file", str(self.root / "log" / "gateway.log"), "--servers-dir", str(self.root / "servers"),
            "--user", "nobody", "--start-timeout", "20",
        ]  # fmt: skip

    def env(self, token: str) -> dict[str, str]:
        return {
            **os.environ,
            "GATEWAY_ACCESS_TOKEN": token,
            "GIT_CONFIG_COUNT": "1",
            "GIT_CONFIG_KEY_0": f"url.file://{self.root}/repos/.insteadOf",
            "GIT_CONFIG_VALUE_0": "https://github.com/",
        }


def make_repository(path: Path) -> None:
    """A git repository holding the echo server, as ``github/<owner>/<name>`` would be."""
    path.mkdir(parents=True)
    shutil.copy(ECHO_SERVER, path / "echo_server.py")
    git = ["git", "-C", str(path), "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run(["git", "init", "-q", str(path)], check=True)
    subprocess.run([*git, "add", "."], check=True)
    subprocess.run([*git, "commit", "-q", "-m", "echo"], check=True)
    # git serves a repository only to its owner (safe.directory is read from no variable).
    subprocess.run(["chown", "-R", "nobody:nogroup", str(path)], check=True)


@pytest.fixture()
def place() -> Iterator[Place]:
    root = Path(tempfile.mkdtemp(prefix="mcp-gateway-"))
    root.chmod(0o755)
    for owner, name in (("test", "echo"), ("test", "other")):
        make_repository(root / "repos" / owner / name)
    yield Place(root)
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture()
def start(place: Place) -> Iterator[Any]:
    """``start(config)``: the launcher's run (``subprocess.CompletedProcess``) and, when it succeeded, the
    ``Gateway``; every gateway started is stopped afterwards."""
    started: list[Path] = []

    def run(config: dict, token: str | None = None) -> tuple[subprocess.CompletedProcess, Gateway]:
        token = token or str(uuid.uuid4())
        port = free_port()
        command = [
            sys.executable,
            "-m",
            "hutch.mcp_gateway",
            "--config",
            json.dumps(config),
            *place.options(port),
        ]
        done = subprocess.run(command, env=place.env(token), capture_output=True, text=True, timeout=60)
        started.append(place.root / "state" / "gateway.pid")
        gateway = Gateway(
            f"http://127.0.0.1:{port}/mcp", token, place.root / "state", place.root / "log" / "gateway.log"
        )
        return done, gateway

    yield run
    for pid_file in started:
        if pid_file.exists():
            try:
                os.kill(int(pid_file.read_text()), signal.SIGTERM)
            except ProcessLookupError:
                pass
