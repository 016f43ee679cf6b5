"""Running the proxy: uvicorn with the h11 HTTP implementation on ``settings.proxy.host``/``port``."""

from __future__ import annotations

import uvicorn

from ..config import ProxySettings
from .app import Resolver, create_proxy_app

# Longer than the SDK's 300 s pool idle timeout, so that the client closes an idle connection first and
# never sends a request on one the proxy is closing.
KEEP_ALIVE_S = 620
GRACEFUL_SHUTDOWN_S = 5


def create_server(settings: ProxySettings, resolve: Resolver, *, access_log: bool = False) -> uvicorn.Server:
    """A uvicorn server for the proxy app, not yet started."""
    config = uvicorn.Config(
        create_proxy_app(resolve, settings),
        host=settings.host,
        port=settings.port,
        http="h11",
        ws="websockets-sansio",
        # A client's message over the cap closes its WebSocket with 1009.
        ws_max_size=settings.max_websocket_message_mb << 20,
        lifespan="on",
        access_log=access_log,
        # Logging is the host process's to configure (the proxy may run inside ``hutch up``).
        log_config=None,
        # The sandbox's own Server and Date headers are passed through.
        server_header=False,
        date_header=False,
        # The client address is the peer's; X-Forwarded-For is appended to, not trusted.
        proxy_headers=False,
        timeout_keep_alive=KEEP_ALIVE_S,
        # Open streams (a running command, a watch) may last for hours: on shutdown, wait this long, then
        # cut them; the SDK sees a broken stream and checks the sandbox's health.
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_S,
    )
    return uvicorn.Server(config)


async def serve(settings: ProxySettings, resolve: Resolver, *, access_log: bool = False) -> None:
    """Serve the proxy until the server is told to exit (SIGINT/SIGTERM when run in the main thread)."""
    await create_server(settings, resolve, access_log=access_log).serve()
