"""The whole Hutch stack in one process: runtime, control plane (API) and data plane (proxy).

``run`` prepares what is missing (the packed envd, the ``base`` template, the catalog and a first API key),
starts the API and the proxy on one event loop, keeps a development sandbox for the SDK's debug mode
(``debug_sandbox_id``), writes the client settings to ``.env.local``, and serves until SIGINT/SIGTERM.
On the way out it stops the servers and the runtime, which removes every sandbox it started.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Callable, Iterator
from pathlib import Path

import uvicorn

from .api import create_app
from .catalog import Catalog, create_api_key, ensure_api_key, register_template
from .config import Settings
from .proxy.resolver import CatalogResolver
from .proxy.server import create_server
from .runtime import registry
from .runtime.types import SandboxSpec, TemplateImage
from .templates import base
from .templates.envd_zipapp import build as build_envd

log = logging.getLogger("hutch")
DEBUG_SANDBOX_ID = "debug_sandbox_id"
BASE_CPU, BASE_MEMORY_MB = 2, 512


class _Server(uvicorn.Server):
    """uvicorn without its own signal handling: the stack stops both servers together."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def read_env_file(path: Path) -> dict[str, str]:
    values: dict[str, str] = {}
    if path.exists():
        for line in path.read_text().splitlines():
            key, sep, value = line.partition("=")
            if sep and not line.lstrip().startswith("#"):
                values[key.strip()] = value.strip()
    return values


def client_env(settings: Settings, api_key: str) -> str:
    """The ``.env.local`` that points the official SDKs at this stack."""
    return (
        f"E2B_API_URL=http://localhost:{settings.api.port}\n"
        f"E2B_SANDBOX_URL=http://localhost:{settings.proxy.port}\n"
        f"E2B_API_KEY={api_key}\n"
    )


def _runtime_options(settings: Settings, envd_path: Path) -> dict:
    if settings.runtime.backend == "fake":
        return {"node_id": settings.runtime.node_id}
    return {
        "data_dir": settings.data_dir,
        "cache_dir": settings.templates.cache_dir,
        "envd_path": envd_path,
        "node_id": settings.runtime.node_id,
        "subnet": settings.runtime.subnet,
        "egress_interface": settings.runtime.egress_interface,
    }


async def prepare(
    settings: Settings, env_file: Path, say: Callable[[str], None]
) -> tuple[Catalog, str, TemplateImage, Path]:
    """Everything the stack needs before it serves: envd, the base template, the catalog and an API key."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    envd_path = await asyncio.to_thread(build_envd, settings.data_dir / "envd" / "envd.pyz")
    rootfs = base.rootfs_path(settings.templates.cache_dir)
    if settings.runtime.backend != "fake":
        rootfs = await asyncio.to_thread(base.build, settings.templates.cache_dir, log=say)
    catalog = await Catalog.open(settings.catalog_url)
    await register_template(
        catalog,
        template_id=base.TEMPLATE_ID,
        rootfs=str(rootfs),
        aliases=base.ALIASES,
        default_user=base.DEFAULT_USER,
        cpu_count=BASE_CPU,
        memory_mb=BASE_MEMORY_MB,
    )
    existing = read_env_file(env_file).get("E2B_API_KEY")
    key = await ensure_api_key(catalog, key=existing) if existing else None
    if key is None:
        key = await ensure_api_key(catalog) or await create_api_key(catalog)
    template = TemplateImage(base.TEMPLATE_ID, rootfs, default_user=base.DEFAULT_USER)
    return catalog, key, template, envd_path


async def run(settings: Settings, *, env_file: Path, say: Callable[[str], None] = print) -> None:
    """Serve the stack until SIGINT or SIGTERM."""
    catalog, api_key, template, envd_path = await prepare(settings, env_file, say)
    runtime = registry.load(settings.runtime.backend, **_runtime_options(settings, envd_path))
    keep_warm = getattr(runtime, "keep_warm", None)
    if keep_warm is not None:
        size = settings.runtime.warm_pool.get(template.template_id, 0)
        keep_warm(template, size, BASE_CPU, BASE_MEMORY_MB)
        gvisor_size = settings.runtime.gvisor_warm_pool.get(template.template_id, 0)
        if gvisor_size:
            keep_warm(template, gvisor_size, BASE_CPU, BASE_MEMORY_MB, engine="gvisor")
    resolver = CatalogResolver(catalog)
    api = _Server(
        uvicorn.Config(
            create_app(settings, runtime=runtime, catalog=catalog),
            host=settings.api.host,
            port=settings.api.port,
            log_config=None,
            access_log=False,
            lifespan="on",
        )
    )
    proxy = _Server(create_server(settings.proxy, resolver).config)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    servers = [asyncio.ensure_future(api.serve()), asyncio.ensure_future(proxy.serve())]
    try:
        while not (api.started and proxy.started):
            if any(task.done() for task in servers):
                await asyncio.gather(*servers)
                raise RuntimeError("a server stopped while starting")
            await asyncio.sleep(0.05)
        dev = await runtime.create(
            SandboxSpec(template=template, cpu_count=BASE_CPU, memory_mb=BASE_MEMORY_MB)
        )
        resolver.fixed[DEBUG_SANDBOX_ID] = dev
        env_file.write_text(client_env(settings, api_key))
        say(f"Hutch is up. Client settings (written to {env_file}):\n\n{client_env(settings, api_key)}")
        await stop.wait()
        say("stopping")
        await runtime.kill(dev.sandbox_id)
    finally:
        api.should_exit = proxy.should_exit = True
        await asyncio.gather(*servers, return_exceptions=True)
        await catalog.close()
