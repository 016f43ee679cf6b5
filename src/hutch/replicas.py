"""A cluster's stateless replicas: ``hutch api`` (the REST API over the nodes registered in the catalog)
and ``hutch proxy`` (the data plane, through the node that holds each sandbox). Any number of each run
behind a load balancer; PostgreSQL is all they share. Both need the cluster secret."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import signal
from collections.abc import Iterator

import uvicorn

from .api import KEEP_ALIVE_S, create_app
from .catalog import Catalog
from .config import Settings
from .proxy.__main__ import serve


class _Server(uvicorn.Server):
    """uvicorn without its own signal handling: :func:`run_api` decides when it stops."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


async def run_api(settings: Settings) -> None:
    """Serve the API on ``api.host``/``api.port`` until SIGINT or SIGTERM."""
    settings.cluster.key()  # refuse to start without the cluster secret
    catalog = await Catalog.open(settings.catalog_url)
    server = _Server(
        uvicorn.Config(
            create_app(settings, runtime=None, catalog=catalog),
            host=settings.api.host,
            port=settings.api.port,
            log_config=None,
            access_log=False,
            lifespan="on",
            timeout_graceful_shutdown=10,
            timeout_keep_alive=KEEP_ALIVE_S,
            proxy_headers=True,
            forwarded_allow_ips=settings.api.forwarded_allow_ips,
        )
    )
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, lambda: setattr(server, "should_exit", True))
    gc.freeze()  # what lives as long as the process is out of the collector's way
    try:
        await server.serve()
    finally:
        await catalog.close()


async def run_proxy(settings: Settings) -> None:
    """Serve the data plane on ``proxy.host``/``proxy.port`` until SIGINT or SIGTERM."""
    await serve(settings, cluster=True)
