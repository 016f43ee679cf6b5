"""``hutch node``: one machine of a cluster. It prepares envd and the built-in templates (registering them
in the catalog), starts the runtime (which adopts the sandboxes a previous run left), joins the cluster
(:mod:`.membership`), and serves the node API (:mod:`.api`) and the sandbox traffic listener
(:mod:`.traffic`) until SIGINT or SIGTERM. On the way out it ends the sandboxes no row knows and lets go of
the others without ending them, so that a restart (an upgrade) loses none: until it is back they are
reported lost."""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import shutil
import signal
from collections.abc import Callable
from importlib.metadata import PackageNotFoundError, version

import uvicorn

from ..catalog import Catalog
from ..config import Settings
from ..prepare import keep_warm, prepare_node, register_builtins, runtime_options
from ..runtime import registry
from ..runtime.base import Runtime
from ..runtime.capabilities import SupportsCluster, SupportsCommit
from ..runtime.linux import watch_subprocesses_by_pidfd
from ..templates.builder import configured_builder
from ..templates.uploads import UploadStore
from .api import Admission, Capacity, Templates, create_node_app
from .archives import ArchiveFetcher
from .layers import CacheCollector, LayerCopier
from .membership import Membership
from .traffic import LocalSandboxes, NodeTrafficApp

log = logging.getLogger("hutch.node")
# Left to the machine itself: memory and disk that sandboxes are not offered.
KEPT_MEMORY_MB = 1024
KEPT_DISK_MB = 2048
_WILDCARDS = ("0.0.0.0", "::", "")


def capacity_of(settings: Settings) -> Capacity:
    """What the node offers: the configured amounts, or what the machine has less what it keeps."""
    node = settings.node
    with open("/proc/meminfo") as meminfo:
        total_kb = next(int(line.split()[1]) for line in meminfo if line.startswith("MemTotal:"))
    free_disk_mb = shutil.disk_usage(settings.data_dir).free >> 20
    return Capacity(
        cpu_count=node.cpu_count or os.cpu_count() or 1,
        memory_mb=node.memory_mb or max(0, (total_kb >> 10) - KEPT_MEMORY_MB),
        disk_mb=node.disk_mb or max(0, free_disk_mb - KEPT_DISK_MB),
    )


def advertised(settings: Settings, port: int) -> str:
    """``host:port`` at which the API and proxies reach the node's listener on ``port``."""
    host = settings.node.advertise_host or settings.node.host
    if host in _WILDCARDS:
        raise ValueError("a node that binds every address needs HUTCH_NODE__ADVERTISE_HOST")
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _server(app: object, host: str, port: int) -> uvicorn.Server:
    config = uvicorn.Config(
        app,  # type: ignore[arg-type]
        host=host,
        port=port,
        http="h11",
        ws="websockets-sansio",
        log_config=None,
        access_log=False,
        lifespan="off",
        server_header=False,
        date_header=False,
        timeout_keep_alive=620,
        timeout_graceful_shutdown=5,
    )
    server = uvicorn.Server(config)
    server.install_signal_handlers = lambda: None  # type: ignore[method-assign]
    return server


def _hutch_version() -> str:
    try:
        return version("hutch")
    except PackageNotFoundError:
        return "unknown"


async def run(settings: Settings, *, say: Callable[[str], None] = print) -> None:
    """Serve as a node until SIGINT or SIGTERM."""
    watch_subprocesses_by_pidfd()
    key = settings.cluster.key()
    api_address = advertised(settings, settings.node.port)
    traffic_address = advertised(settings, settings.node.traffic_port)
    builtins, envd_path = await prepare_node(settings, say)
    catalog = await Catalog.open(settings.catalog_url)
    try:
        await register_builtins(catalog, builtins)
        runtime = registry.load(settings.runtime.backend, **runtime_options(settings, envd_path))
        keep_warm(runtime, settings, builtins)
        await runtime.start()
        try:
            await _serve(settings, catalog, runtime, key, api_address, traffic_address, say)
        finally:
            if isinstance(runtime, SupportsCluster):
                await runtime.let_go()
            else:
                await runtime.close()
    finally:
        await catalog.close()


async def _serve(
    settings: Settings,
    catalog: Catalog,
    runtime: Runtime,
    key: str,
    api_address: str,
    traffic_address: str,
    say: Callable[[str], None],
) -> None:
    admission = Admission(runtime, capacity_of(settings), settings.cluster.cpu_overcommit)
    membership = Membership(
        catalog,
        runtime,
        admission,
        node_id=settings.runtime.node_id,
        api_address=api_address,
        traffic_address=traffic_address,
        heartbeat_s=settings.cluster.heartbeat_s,
        version=_hutch_version(),
    )
    await membership.join()
    traffic = NodeTrafficApp(LocalSandboxes(runtime), settings.proxy, key=key)
    cache_dir = settings.templates.cache_dir
    fetcher = ArchiveFetcher(key)
    copier = LayerCopier(
        catalog,
        node_id=settings.runtime.node_id,
        cache_dir=cache_dir,
        data_dir=settings.data_dir,
        fetcher=fetcher,
    )
    collector = CacheCollector(catalog, cache_dir=cache_dir, data_dir=settings.data_dir)
    uploads = UploadStore(settings.data_dir, max_bytes=settings.templates.max_upload_mb << 20)
    builder = configured_builder(settings, runtime, uploads) if isinstance(runtime, SupportsCommit) else None
    templates = Templates(catalog, cache_dir, settings.data_dir, copier, fetcher, builder)
    app = create_node_app(runtime, key=key, admission=admission, templates=templates)
    servers = [
        _server(app, settings.node.host, settings.node.port),
        _server(traffic, settings.node.host, settings.node.traffic_port),
    ]
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    tasks = [asyncio.ensure_future(server.serve()) for server in servers]
    try:
        while not all(server.started for server in servers):
            if any(task.done() for task in tasks):
                raise RuntimeError("the node's listeners stopped while starting (is the port taken?)")
            await asyncio.sleep(0.05)
        gc.freeze()  # what lives as long as the process is out of the collector's way
        membership.start()
        collector.start()
        capacity = admission.capacity
        say(
            f"node {membership.node_id} serves: node API on {api_address}, sandbox traffic on "
            f"{traffic_address}; offers {capacity.cpu_count} vCPUs, {capacity.memory_mb} MiB of memory, "
            f"{capacity.disk_mb} MiB of disk"
        )
        waiter = asyncio.ensure_future(stop.wait())
        await asyncio.wait([waiter, *tasks], return_when=asyncio.FIRST_COMPLETED)
        waiter.cancel()
    finally:
        await membership.stop()
        await collector.stop()
        for server in servers:
            server.should_exit = True
        await asyncio.gather(*tasks, return_exceptions=True)
        await traffic.aclose()
        await fetcher.close()
        if builder is not None:
            await builder.close()
        # Served no more: a sandbox no row knows now (its create's answer never reached the API) is ended,
        # not left for a next start that would not know it either.
        try:
            await membership.reconcile(orphan_grace_s=0)
        except Exception:
            log.exception("could not check the node's sandboxes against the catalog on the way out")
