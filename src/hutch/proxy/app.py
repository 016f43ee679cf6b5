"""The data-plane proxy: a raw ASGI app that routes each request to a sandbox port (spec §2).

It reads the target from the request (:mod:`.routing`), asks the injected resolver where that sandbox
runs, checks the sandbox's traffic access token if it has one and whether the SDK's debug mode may be
served (:mod:`.access`), and forwards: HTTP through a keep-alive pool per sandbox port (:mod:`.upstreams`)
with both bodies streamed (:mod:`.forward`), WebSockets through a bridge (:mod:`.websocket`), both bounded
in time and size. Every request is routed on its own, so consecutive requests on one client connection may
go to different sandboxes. Failures answer with the JSON the SDK understands (:mod:`.responses`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from websockets import InvalidStatus

from ..config import ProxySettings
from ..errors import InvalidRequest
from . import access, forward, responses, websocket
from .asgi import Message, Receive, Scope, Send
from .race import cut_short
from .routing import (
    CLUSTER_KEY_HEADER,
    SANDBOX_ID_HEADER,
    SANDBOX_PORT_HEADER,
    NodeHop,
    SandboxRoute,
    Target,
    route,
)
from .upstreams import Upstreams

Resolver = Callable[[str], Awaitable[SandboxRoute | None]]
"""Where a sandbox runs and the traffic token it wants, by id; ``None`` when there is no such sandbox (or
it is not running). Called once per request (WebSocket: per handshake), so it should be cached; it may wake
a paused sandbox before answering."""

StillRunning = Callable[[str], Awaitable[bool]]
"""Whether a sandbox still runs, by id, without waking it (a resolver's ``is_running``)."""

log = logging.getLogger(__name__)
# While an answer is awaited, the sandbox's state is checked first after this (a route cached before a
# pause or a kill has expired by then), then at every interval.
FIRST_CHECK_S = 0.3
CHECK_INTERVAL_S = 1.0
STOPPED = "The sandbox stopped running before it answered"
# The answer to ``/health`` on a host that names no sandbox.
HEALTHY: responses.Answer = (200, {"status": "ok", "message": "the proxy serves"})

_ROUTING_HEADERS = {SANDBOX_ID_HEADER.encode(), SANDBOX_PORT_HEADER.encode()}
CLUSTER_KEY = CLUSTER_KEY_HEADER.encode()


class ProxyApp:
    """The ASGI app; build it with :func:`create_proxy_app`."""

    def __init__(self, resolve: Resolver, settings: ProxySettings) -> None:
        self._resolve = resolve
        self._settings = settings
        self._upstreams = Upstreams()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http":
            await self._http(scope, receive, send)
        elif kind == "websocket":
            await self._websocket(scope, receive, send)
        elif kind == "lifespan":
            await self._lifespan(receive, send)

    async def aclose(self) -> None:
        """Close the pooled connections to sandboxes."""
        await self._upstreams.aclose()

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            target, address, scope = await self._locate(scope)
        except responses.Refusal as refusal:
            await responses.send_json(send, refusal.answer)
            return
        answer = _Answer(send)
        try:
            stopped = await self._forward(target, scope, receive, answer, address)
            if stopped and not answer.started and not forward.has_body(scope):
                target, address, scope = await self._locate(scope)
                stopped = await self._forward(target, scope, receive, answer, address)
            if stopped and answer.started:
                raise forward.UpstreamBroken(f"sandbox {target.sandbox_id} stopped running while it answered")
            if stopped:
                await responses.send_json(send, await self._stopped(target.sandbox_id))
        except responses.Refusal as refusal:
            await responses.send_json(send, refusal.answer)
        except (forward.PortClosed, forward.UpstreamFailed) as err:
            await responses.send_json(send, await self._unreachable(target, err))
        except forward.ClientGone:
            pass

    async def _forward(
        self, target: Target, scope: Scope, receive: Receive, send: Send, address: tuple[str, int]
    ) -> bool:
        """Forward the request; True if the sandbox stopped running before its answer was complete (the
        exchange is then cancelled)."""
        async with self._upstreams.pool(target.sandbox_id, address) as transport:
            exchange = forward.forward(
                transport, scope, receive, send, address, idle_timeout_s=self._settings.idle_timeout_s
            )
            is_running: StillRunning | None = getattr(self._resolve, "is_running", None)
            if is_running is None:
                await exchange
                return False
            return await cut_short(exchange, _until_stopped(is_running, target.sandbox_id))

    async def _stopped(self, sandbox_id: str) -> responses.Answer:
        """The answer to a request whose sandbox stopped running before it answered: "not found" unless
        the sandbox runs again (woken for this request), when the request cannot be sent twice."""
        if await self._resolve(sandbox_id) is None:
            return responses.sandbox_error(sandbox_id, responses.SANDBOX_NOT_FOUND)
        return responses.sandbox_error(sandbox_id, STOPPED)

    async def _websocket(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (await receive())["type"] != "websocket.connect":
            return
        try:
            target, address, scope = await self._locate(scope)
        except responses.Refusal as refusal:
            await self._deny(scope, send, refusal.answer)
            return
        try:
            upstream = await websocket.open_upstream(
                scope, address, max_message_bytes=self._settings.max_websocket_message_mb << 20
            )
        except (forward.PortClosed, forward.UpstreamFailed) as err:
            await self._deny(scope, send, await self._unreachable(target, err))
            return
        except InvalidStatus as err:
            await websocket.refuse_with(send, scope, err)
            return
        await websocket.bridge(upstream, receive, send)

    async def _locate(self, scope: Scope) -> tuple[Target, tuple[str, int], Scope]:
        """The target of the request, where it is reached, and the request as it goes there (its ``Host``
        masked if the sandbox asked so); :class:`responses.Refusal` if there is no such sandbox, or if the
        request lacks the sandbox's traffic access token, or asks for the debug sandbox where it is not
        served."""
        try:
            target = self._route(scope)
        except InvalidRequest as err:
            if _is_health_probe(scope):
                raise responses.Refusal(HEALTHY) from err
            raise responses.Refusal(responses.bad_request(err.message)) from err
        access.check_debug_mode(target, scope, enabled=self._settings.local_development)
        found = await self._resolve(target.sandbox_id)
        if found is None:
            raise responses.Refusal(responses.sandbox_error(target.sandbox_id, responses.SANDBOX_NOT_FOUND))
        if found.unavailable is not None:
            raise responses.Refusal(responses.sandbox_error(target.sandbox_id, found.unavailable, 503))
        access.check(found, target, scope)
        host = found.host_for(target.port)
        if host is not None:
            headers = [(name, value) for name, value in scope["headers"] if name != b"host"]
            scope = {**scope, "headers": [(b"host", host.encode("latin-1")), *headers]}
        if found.hop is not None:
            return target, found.hop.address, _through(scope, target, found.hop)
        return target, found.address(target.port), scope

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.aclose()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _unreachable(self, target: Target, err: Exception) -> responses.Answer:
        """The answer when the sandbox's port did not answer. A sandbox killed a moment ago may still be in
        the resolver's cache: asked afresh, the catalog tells "not found" (the SDK then knows it is gone)
        from "port not open"."""
        sandbox_id = target.sandbox_id
        forget = getattr(self._resolve, "forget", None)
        if forget is not None:
            forget(sandbox_id)
            if await self._resolve(sandbox_id) is None:
                return responses.sandbox_error(sandbox_id, responses.SANDBOX_NOT_FOUND)
        if isinstance(err, forward.PortClosed):
            return responses.sandbox_error(sandbox_id, responses.PORT_NOT_OPEN)
        log.warning("sandbox %s: no response from its port: %s", sandbox_id, err)
        return responses.sandbox_error(sandbox_id, f"The sandbox closed the connection: {err}")

    def _route(self, scope: Scope) -> Target:
        host = ""
        routing: dict[str, str] = {}
        for name, value in scope["headers"]:
            if name == b"host":
                host = value.decode("latin-1")
            elif name in _ROUTING_HEADERS:
                routing[name.decode()] = value.decode("latin-1")
        return route(host, routing, domain=self._settings.domain)

    @staticmethod
    async def _deny(scope: Scope, send: Send, answer: responses.Answer) -> None:
        if "websocket.http.response" in scope.get("extensions", {}):
            await responses.send_json(send, answer, prefix="websocket.http")
        else:
            await send({"type": "websocket.close", "code": 1008})


def _is_health_probe(scope: Scope) -> bool:
    """``GET /health`` naming no sandbox (a load balancer's probe of the proxy itself)."""
    routed = any(name in _ROUTING_HEADERS for name, _ in scope["headers"])
    return scope["type"] == "http" and scope["path"] == "/health" and not routed


def _through(scope: Scope, target: Target, hop: NodeHop) -> Scope:
    """The request as it goes to the node's traffic listener: the routing headers and the cluster secret
    set by the proxy (any the client sent are dropped), the rest as it was."""
    kept = [(n, v) for n, v in scope["headers"] if n not in _ROUTING_HEADERS and n != CLUSTER_KEY]
    hop_headers = [
        (SANDBOX_ID_HEADER.encode(), target.sandbox_id.encode()),
        (SANDBOX_PORT_HEADER.encode(), str(target.port).encode()),
        (CLUSTER_KEY, hop.key.encode("latin-1")),
    ]
    return {**scope, "headers": [*kept, *hop_headers]}


class _Answer:
    """``send``, remembering whether the response has started."""

    def __init__(self, send: Send) -> None:
        self._send = send
        self.started = False

    async def __call__(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            self.started = True
        await self._send(message)


async def _until_stopped(is_running: StillRunning, sandbox_id: str) -> None:
    """Return when the sandbox no longer runs."""
    await asyncio.sleep(FIRST_CHECK_S)
    while True:
        try:
            if not await is_running(sandbox_id):
                return
        except Exception as error:  # the catalog unavailable for a moment: the request goes on
            log.warning("sandbox %s: could not check that it runs: %s", sandbox_id, error)
        await asyncio.sleep(CHECK_INTERVAL_S)


def create_proxy_app(resolve: Resolver, settings: ProxySettings) -> ProxyApp:
    """The proxy as an ASGI app. ``resolve`` maps a sandbox id to a :class:`SandboxRoute`, where it runs
    and its traffic token (the control plane passes a cached catalog lookup; it also decides what the SDK's
    ``debug_sandbox_id`` maps to, which is asked only in local development mode and from loopback);
    ``settings.domain`` is the base of host routing, ``{port}-{sandboxId}.{domain}``."""
    return ProxyApp(resolve, settings)
