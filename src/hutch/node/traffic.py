"""A node's sandbox traffic listener: what a cluster's proxies forward to. It serves only callers that
show the cluster secret, takes the sandbox and port from the routing headers the proxy set (the proxy has
checked the client's tokens and masked the host already), strips the secret, and forwards to the sandbox
on this node as the proxy does on one machine (:mod:`hutch.proxy.app`)."""

from __future__ import annotations

import hmac
import time

from ..config import ProxySettings
from ..proxy import responses
from ..proxy.app import CLUSTER_KEY, ProxyApp
from ..proxy.asgi import Receive, Scope, Send
from ..proxy.routing import SANDBOX_ID_HEADER, SANDBOX_PORT_HEADER, SandboxRoute, Target, route_headers
from ..runtime.base import Runtime
from ..runtime.types import SandboxHandle

# How long the node's list of sandboxes is reused between requests.
TTL_S = 0.25


class LocalSandboxes:
    """``await resolver(sandbox_id)`` → the route of a sandbox running on this node, or None."""

    def __init__(self, runtime: Runtime) -> None:
        self._runtime = runtime
        self._handles: dict[str, SandboxHandle] = {}
        self._until = 0.0

    async def __call__(self, sandbox_id: str) -> SandboxRoute | None:
        handle = await self._find(sandbox_id)
        return SandboxRoute(handle) if handle is not None else None

    async def is_running(self, sandbox_id: str) -> bool:
        return await self._find(sandbox_id) is not None

    def forget(self, sandbox_id: str) -> None:
        self._until = 0.0

    async def _find(self, sandbox_id: str) -> SandboxHandle | None:
        """The sandbox's handle: from the cached list while it is fresh and has it, else from a new one (a
        sandbox created a moment ago is found at once)."""
        handle = self._handles.get(sandbox_id) if time.monotonic() < self._until else None
        if handle is None:
            self._handles = {handle.sandbox_id: handle for handle in await self._runtime.list()}
            self._until = time.monotonic() + TTL_S
            handle = self._handles.get(sandbox_id)
        return handle


class NodeTrafficApp(ProxyApp):
    """The proxy app with the cluster secret checked and removed, and the target read from the headers."""

    def __init__(self, resolve: LocalSandboxes, settings: ProxySettings, *, key: str) -> None:
        super().__init__(resolve, settings)
        self._key = key.encode("latin-1")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket"):
            given = b""
            for name, value in scope["headers"]:
                if name == CLUSTER_KEY:
                    given = value
            if not hmac.compare_digest(given, self._key):
                await self._refuse(scope, receive, send)
                return
            scope = {**scope, "headers": [(n, v) for n, v in scope["headers"] if n != CLUSTER_KEY]}
        await super().__call__(scope, receive, send)

    def _route(self, scope: Scope) -> Target:
        wanted = {SANDBOX_ID_HEADER.encode(), SANDBOX_PORT_HEADER.encode()}
        headers = {n.decode(): v.decode("latin-1") for n, v in scope["headers"] if n in wanted}
        return route_headers(headers)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        answer = (
            401,
            {"code": 401, "message": "this is a node's traffic listener: the cluster key is wrong"},
        )
        if scope["type"] == "http":
            await responses.send_json(send, answer)
            return
        if (await receive())["type"] == "websocket.connect":
            await self._deny(scope, send, answer)
