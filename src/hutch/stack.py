"""The whole Hutch stack on one node: runtime and control plane (API) in this process, the data plane
(proxy) and the TLS edge (HAProxy) in child processes it supervises.

``run`` prepares what is missing (the packed envd, the built-in templates ``base`` and
``code-interpreter-v1``, the catalog and a first API key), keeps warm pools of them,
starts the proxy (``python -m hutch.proxy``, restarted whenever it dies, killed by the kernel if this process
dies), the API and the TLS edge in front of both (supervised the same way; the local certificate authority
it needs is made once and added to the system's trust store), in local development mode only
(``proxy.local_development``, ``hutch up --dev``) keeps a development sandbox for the SDK's debug mode
(``debug_sandbox_id``) and publishes it to the proxy, writes the client settings to ``.env.local``, and
serves until SIGINT/SIGTERM.
On the way out it stops the API, the proxy, the edge and the runtime, which removes every running sandbox
(paused ones stay, for the next start to adopt).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import signal
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import uvicorn

from .api import KEEP_ALIVE_S, create_app
from .api.services.routes import EveryRoutes
from .catalog import Catalog, create_api_key, ensure_api_key
from .catalog.keys import mask_key
from .config import Settings
from .dotenv import read_env_file
from .prepare import Builtin, keep_warm, prepare_node, register_builtins, runtime_options
from .private_files import narrow, write_private
from .proxy import access, debug, trust
from .proxy.certificates import EdgeCertificate
from .proxy.edge import EdgeProcess, EdgeUnavailable, haproxy_binary
from .proxy.hints import RouteHints
from .proxy.routes import EdgeRoutes
from .proxy.supervisor import ProxyProcess
from .runtime import registry
from .runtime.linux import watch_subprocesses_by_pidfd
from .runtime.types import SandboxSpec

log = logging.getLogger("hutch")


class _Server(uvicorn.Server):
    """uvicorn without its own signal handling: the stack decides when the API stops."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def client_env(settings: Settings, api_key: str, edge: EdgeCertificate | None) -> str:
    """The ``.env.local`` that points the official SDKs at this stack: its domain when the TLS edge serves
    (with the authority Node must trust, which is in the system store for everything else), the plain-HTTP
    API and proxy URLs otherwise."""
    if edge is None:
        return (
            f"E2B_API_URL=http://{_reachable(settings.api.host)}:{settings.api.port}\n"
            f"E2B_SANDBOX_URL=http://{_reachable(settings.proxy.host)}:{settings.proxy.port}\n"
            f"E2B_API_KEY={api_key}\n"
        )
    trust = f"NODE_EXTRA_CA_CERTS={edge.ca_path}\n" if edge.ca_path is not None else ""
    return f"E2B_DOMAIN={settings.edge_domain}\nE2B_API_KEY={api_key}\n{trust}"


def _reachable(host: str) -> str:
    """How a client on this machine names a listener bound to ``host``: ``localhost`` for loopback and the
    wildcard addresses, the address itself otherwise."""
    if host in ("0.0.0.0", "::") or access.is_loopback(host):
        return "localhost"
    return f"[{host}]" if ":" in host else host


async def prepare(
    settings: Settings, env_file: Path, say: Callable[[str], None]
) -> tuple[Catalog, str, list[Builtin], Path]:
    """Everything the stack needs before it serves: envd, the built-in templates (:mod:`.prepare`), the
    catalog with them registered, and an API key."""
    narrow(env_file)
    builtins, envd_path = await prepare_node(settings, say)
    catalog = await Catalog.open(settings.catalog_url)
    await register_builtins(catalog, builtins)
    existing = read_env_file(env_file).get("E2B_API_KEY")
    key = await ensure_api_key(catalog, key=existing) if existing else None
    if key is None:
        key = await ensure_api_key(catalog) or await create_api_key(catalog)
    return catalog, key, builtins, envd_path


async def start_edge(
    settings: Settings, routes: EdgeRoutes, say: Callable[[str], None]
) -> tuple[EdgeProcess | None, EdgeCertificate | None]:
    """The TLS edge, started; none (with a warning) when it is turned off, not installed or fails to start:
    then only the plain-HTTP API and proxy ports serve."""
    if settings.proxy.tls_port == 0:
        return None, None
    binary = haproxy_binary()
    if binary is None:
        log.warning(
            "haproxy is not installed (apt-get install haproxy): no TLS edge, so E2B_DOMAIN does not "
            "work; clients use E2B_API_URL and E2B_SANDBOX_URL"
        )
        return None, None
    edge = EdgeProcess(settings, binary, routes)
    try:
        certificate = await edge.start()
    except EdgeUnavailable as err:
        log.warning("no TLS edge: %s", err)
        return None, None
    if certificate.ca_path is not None and settings.proxy.trust_local_ca:
        try:
            installed = await asyncio.to_thread(trust.install, certificate.ca_path)
        except (OSError, subprocess.CalledProcessError) as err:
            log.warning("could not add the local certificate authority to the system's trust store: %s", err)
        else:
            if installed is not None:
                say(
                    f"Added Hutch's local certificate authority to the system's trust store ({installed}). "
                    f"Browsers keep their own: import {certificate.ca_path} as an authority (Firefox: "
                    f"Settings, Certificates, View Certificates, Authorities, Import; Chromium: Settings, "
                    f"Security, Manage certificates, Authorities, Import)."
                )
    return edge, certificate


def check_local_development(settings: Settings) -> None:
    """Refuse local development mode on a proxy that listens beyond loopback: the debug sandbox takes
    requests without a key, and gives its client root in it."""
    if settings.proxy.local_development and not access.is_loopback(settings.proxy.host):
        raise ValueError(
            f"local development mode (the SDK's debug mode, no API key) needs the proxy on loopback, "
            f"not on {settings.proxy.host}"
        )


async def run(settings: Settings, *, env_file: Path, say: Callable[[str], None] = print) -> None:
    """Serve the stack until SIGINT or SIGTERM."""
    watch_subprocesses_by_pidfd()
    check_local_development(settings)
    catalog, api_key, builtins, envd_path = await prepare(settings, env_file, say)
    runtime = registry.load(settings.runtime.backend, **runtime_options(settings, envd_path))
    keep_warm(runtime, settings, builtins)
    base = builtins[0]  # the development sandbox's template
    # The edge routes running sandboxes itself; without it (no TLS port) nothing reads the table.
    routes = EdgeRoutes(settings.data_dir / "edge")
    hints = RouteHints()  # the proxy child learns of new sandboxes without reading the catalog
    api = _Server(
        uvicorn.Config(
            create_app(settings, runtime=runtime, catalog=catalog, routes=EveryRoutes(routes, hints)),
            host=settings.api.host,
            port=settings.api.port,
            log_config=None,
            access_log=False,
            lifespan="on",
            timeout_keep_alive=KEEP_ALIVE_S,
        )
    )
    debug_file = debug.path_in(settings.data_dir)
    debug.withdraw(debug_file)  # a crashed run's sandbox is gone
    proxy = ProxyProcess(settings, hints)
    edge: EdgeProcess | None = None
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    server = asyncio.ensure_future(api.serve())
    try:
        await proxy.start()
        while not api.started:
            if server.done():
                await server
                raise RuntimeError("the API stopped while starting")
            await asyncio.sleep(0.05)
        edge, certificate = await start_edge(settings, routes, say)
        dev = None
        if settings.proxy.local_development:
            dev = await runtime.create(
                SandboxSpec(template=base.image, cpu_count=base.cpu_count, memory_mb=base.memory_mb)
            )
            debug.publish(debug_file, dev)
        # What is made by now lives as long as the process: the collector no longer walks it (a full
        # collection of the ~200,000 objects took ~100 ms of the event loop).
        gc.freeze()
        write_private(env_file, client_env(settings, api_key, certificate))
        # What is said may end up in a log: the key itself only in the file.
        shown = client_env(settings, mask_key(api_key), certificate)
        say(f"Hutch is up. Client settings (in full in {env_file}, readable by root only):\n\n{shown}")
        if edge is not None:
            say(f"Dashboard: https://api.{settings.edge_domain}/dashboard (log in with the API key)")
        await stop.wait()
        say("stopping")
        if dev is not None:
            await runtime.kill(dev.sandbox_id)
    finally:
        debug.withdraw(debug_file)
        api.should_exit = True
        stopping = [proxy.stop(), server, *([edge.stop()] if edge is not None else [])]
        await asyncio.gather(*stopping, return_exceptions=True)
        hints.shut()
        await catalog.close()
