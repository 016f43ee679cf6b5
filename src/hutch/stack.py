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
import logging
import signal
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import uvicorn

from .api import create_app
from .catalog import Catalog, create_api_key, ensure_api_key, register_template
from .catalog.keys import mask_key
from .config import Settings
from .dotenv import read_env_file
from .private_files import narrow, private_directory, write_private
from .proxy import access, debug, trust
from .proxy.certificates import EdgeCertificate
from .proxy.edge import EdgeProcess, EdgeUnavailable, haproxy_binary
from .proxy.routes import EdgeRoutes
from .proxy.supervisor import ProxyProcess
from .runtime import registry
from .runtime.types import SandboxSpec, TemplateImage
from .templates import base, code_interpreter, desktop, envd_python
from .templates.envd_zipapp import build as build_envd

log = logging.getLogger("hutch")
BASE_CPU, BASE_MEMORY_MB = 2, 512
# Jupyter, a warm kernel and the data libraries need more room than a bare sandbox.
INTERPRETER_CPU, INTERPRETER_MEMORY_MB = 2, 1024
# The X server, the session and a browser.
DESKTOP_CPU, DESKTOP_MEMORY_MB = 2, 2048


@dataclass(frozen=True)
class Builtin:
    """A template the stack builds and registers itself, with the limits its sandboxes get."""

    image: TemplateImage
    cpu_count: int
    memory_mb: int


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


def _runtime_options(settings: Settings, envd_path: Path) -> dict:
    if settings.runtime.backend == "fake":
        return {
            "node_id": settings.runtime.node_id,
            "metrics_interval_s": settings.runtime.metrics_interval_s,
        }
    cache = settings.templates.cache_dir
    return {
        "data_dir": settings.data_dir,
        "cache_dir": cache,
        "envd_path": envd_path,
        "envd_python": envd_python.path(cache, base.rootfs_path(cache)),  # built by ``prepare``
        "node_id": settings.runtime.node_id,
        "metrics_interval_s": settings.runtime.metrics_interval_s,
        "subnet": settings.runtime.subnet,
        "egress_interface": settings.runtime.egress_interface,
        "egress_name_servers": tuple(settings.runtime.egress_name_servers),
        "egress_private_networks": tuple(settings.runtime.egress_private_networks),
    }


async def prepare(
    settings: Settings, env_file: Path, say: Callable[[str], None]
) -> tuple[Catalog, str, list[Builtin], Path]:
    """Everything the stack needs before it serves: envd and the Python it runs on, the built-in templates,
    the catalog and an API key. The templates are built once and cached (the fake backend needs none)."""
    # Sandboxes, checkpoints, keys and the catalog's tokens: root's alone, as is the client settings file.
    private_directory(settings.data_dir)
    private_directory(settings.templates.cache_dir)
    narrow(env_file)
    envd_dir = private_directory(settings.data_dir / "envd")
    envd_path = await asyncio.to_thread(build_envd, envd_dir / "envd.pyz")
    cache = settings.templates.cache_dir
    real = settings.runtime.backend != "fake"
    rootfs = await asyncio.to_thread(base.build, cache, log=say) if real else base.rootfs_path(cache)
    if real:  # the Python envd runs on in every sandbox, from the base image's packages
        await asyncio.to_thread(envd_python.build, cache, rootfs)
    builtins = [
        Builtin(
            TemplateImage(base.TEMPLATE_ID, rootfs, default_user=base.DEFAULT_USER), BASE_CPU, BASE_MEMORY_MB
        )
    ]
    if real and settings.templates.code_interpreter:
        interpreter_rootfs = await asyncio.to_thread(code_interpreter.build, cache, log=say)
        image = TemplateImage(
            code_interpreter.TEMPLATE_ID,
            interpreter_rootfs,
            default_user=base.DEFAULT_USER,
            start_cmd=code_interpreter.START_CMD,
            ready_cmd=code_interpreter.READY_CMD,
            start_user=code_interpreter.START_USER,
        )
        builtins.append(Builtin(image, INTERPRETER_CPU, INTERPRETER_MEMORY_MB))
    if real and settings.templates.desktop:
        desktop_rootfs = await asyncio.to_thread(desktop.build, cache, log=say)
        image = TemplateImage(desktop.TEMPLATE_ID, desktop_rootfs, default_user=base.DEFAULT_USER)
        builtins.append(Builtin(image, DESKTOP_CPU, DESKTOP_MEMORY_MB))
    catalog = await Catalog.open(settings.catalog_url)
    aliases = {
        base.TEMPLATE_ID: base.ALIASES,
        code_interpreter.TEMPLATE_ID: code_interpreter.ALIASES,
        desktop.TEMPLATE_ID: desktop.ALIASES,
    }
    for builtin in builtins:
        await register_template(
            catalog,
            template_id=builtin.image.template_id,
            rootfs=str(builtin.image.rootfs),
            aliases=aliases[builtin.image.template_id],
            default_user=builtin.image.default_user,
            cpu_count=builtin.cpu_count,
            memory_mb=builtin.memory_mb,
            start_cmd=builtin.image.start_cmd,
            ready_cmd=builtin.image.ready_cmd,
            start_user=builtin.image.start_user,
        )
    existing = read_env_file(env_file).get("E2B_API_KEY")
    key = await ensure_api_key(catalog, key=existing) if existing else None
    if key is None:
        key = await ensure_api_key(catalog) or await create_api_key(catalog)
    return catalog, key, builtins, envd_path


def _keep_warm(runtime: object, settings: Settings, builtins: list[Builtin]) -> None:
    """Ask the runtime (if it has pools) to keep the configured number of each built-in template ready."""
    keep_warm = getattr(runtime, "keep_warm", None)
    if keep_warm is None:
        return
    for builtin in builtins:
        template_id = builtin.image.template_id
        for engine, sizes in (
            ("crun", settings.runtime.warm_pool),
            ("gvisor", settings.runtime.gvisor_warm_pool),
        ):
            if sizes.get(template_id, 0):
                keep_warm(
                    builtin.image, sizes[template_id], builtin.cpu_count, builtin.memory_mb, engine=engine
                )


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
    check_local_development(settings)
    catalog, api_key, builtins, envd_path = await prepare(settings, env_file, say)
    runtime = registry.load(settings.runtime.backend, **_runtime_options(settings, envd_path))
    _keep_warm(runtime, settings, builtins)
    template = builtins[0].image  # base: the development sandbox's
    # The edge routes running sandboxes itself; without it (no TLS port) nothing reads the table.
    routes = EdgeRoutes(settings.data_dir / "edge")
    api = _Server(
        uvicorn.Config(
            create_app(settings, runtime=runtime, catalog=catalog, routes=routes),
            host=settings.api.host,
            port=settings.api.port,
            log_config=None,
            access_log=False,
            lifespan="on",
        )
    )
    debug_file = debug.path_in(settings.data_dir)
    debug.withdraw(debug_file)  # a crashed run's sandbox is gone
    proxy = ProxyProcess(settings)
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
                SandboxSpec(template=template, cpu_count=BASE_CPU, memory_mb=BASE_MEMORY_MB)
            )
            debug.publish(debug_file, dev)
        write_private(env_file, client_env(settings, api_key, certificate))
        # What is said may end up in a log: the key itself only in the file.
        shown = client_env(settings, mask_key(api_key), certificate)
        say(f"Hutch is up. Client settings (in full in {env_file}, readable by root only):\n\n{shown}")
        await stop.wait()
        say("stopping")
        if dev is not None:
            await runtime.kill(dev.sandbox_id)
    finally:
        debug.withdraw(debug_file)
        api.should_exit = True
        stopping = [proxy.stop(), server, *([edge.stop()] if edge is not None else [])]
        await asyncio.gather(*stopping, return_exceptions=True)
        await catalog.close()
