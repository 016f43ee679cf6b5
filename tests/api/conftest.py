"""The control plane served for real: ``create_app`` over the fake runtime, a temporary SQLite catalog and
uvicorn on a free port, on its own event loop in a thread. Tests talk to it with the official SDK.

Each test gets a team of its own (a fresh API key), so listings never see another test's sandboxes.
"""

from __future__ import annotations

import asyncio
import os
import socket
import threading
import time
import uuid
from collections.abc import Coroutine, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

import httpx
import pytest
import uvicorn
from fastapi import FastAPI

from hutch.api import KEEP_ALIVE_S, create_app
from hutch.catalog import create_api_key, register_template
from hutch.config import Settings
from hutch.runtime.fake import FakeRuntime
from hutch.runtime.types import ENVD_PORT, SandboxHandle

T = TypeVar("T")

BASE_TEMPLATE_ID = "hutchbase00000000001"
OTHER_TEMPLATE_ID = "hutchother0000000001"


@dataclass
class Stack:
    """The running API: its URL, the app (and so its state) and the loop it runs on."""

    api_url: str
    app: FastAPI
    loop: asyncio.AbstractEventLoop

    def run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        """Run ``coroutine`` on the server's loop (where the catalog and runtime live)."""
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout=30)

    def new_key(self) -> str:
        return self.run(create_api_key(self.app.state.catalog, team_name=f"team-{uuid.uuid4().hex}"))

    def handles(self) -> dict[str, SandboxHandle]:
        """The sandboxes the runtime runs, by id."""
        return {handle.sandbox_id: handle for handle in self.run(self.app.state.runtime.list())}

    def envd_url(self, sandbox_id: str) -> str:
        host, port = self.handles()[sandbox_id].address(ENVD_PORT)
        return f"http://{host}:{port}"


@dataclass
class Caller:
    """One team's view of the API: the SDK options to pass to every call."""

    stack: Stack
    api_key: str

    @property
    def opts(self) -> dict[str, Any]:
        return {"api_key": self.api_key, "api_url": self.stack.api_url}

    def http(self) -> httpx.Client:
        """A raw client, for what the SDK cannot send (malformed bodies)."""
        return httpx.Client(base_url=self.stack.api_url, headers={"X-API-Key": self.api_key})


@contextmanager
def serving(app: FastAPI) -> Iterator[Stack]:
    """Serve ``app`` with uvicorn on a free loopback port, on an event loop in a thread of its own."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    host, port = sock.getsockname()
    config = uvicorn.Config(app, log_level="warning", lifespan="on", timeout_keep_alive=KEEP_ALIVE_S)
    server = uvicorn.Server(config)
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="hutch-api", daemon=True)
    thread.start()
    done = asyncio.run_coroutine_threadsafe(server.serve(sockets=[sock]), loop)
    try:
        while not server.started:
            if done.done():
                done.result()
                raise RuntimeError("the API server stopped before it started")
            time.sleep(0.01)
        yield Stack(api_url=f"http://{host}:{port}", app=app, loop=loop)
    finally:
        server.should_exit = True
        try:
            done.result(timeout=30)
        finally:
            loop.call_soon_threadsafe(loop.stop)
            thread.join(timeout=10)
            loop.close()
            sock.close()


def register_test_templates(stack: Stack) -> None:
    catalog = stack.app.state.catalog
    stack.run(register_template(catalog, template_id=BASE_TEMPLATE_ID, aliases=["base"], rootfs="/"))
    stack.run(register_template(catalog, template_id=OTHER_TEMPLATE_ID, aliases=["other"], rootfs="/"))


@pytest.fixture(scope="session", autouse=True)
def _no_e2b_environment() -> Iterator[None]:
    """The SDK reads E2B_* variables; the tests pass every option explicitly."""
    with pytest.MonkeyPatch.context() as env:
        for name in [name for name in os.environ if name.startswith("E2B_")]:
            env.delenv(name)
        yield


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    settings = Settings(data_dir=tmp_path_factory.mktemp("hutch-api"))
    with serving(create_app(settings, runtime=FakeRuntime(node_id=settings.runtime.node_id))) as stack:
        register_test_templates(stack)
        yield stack


@pytest.fixture()
def caller(stack: Stack) -> Caller:
    """A fresh team with its own API key."""
    return Caller(stack=stack, api_key=stack.new_key())
