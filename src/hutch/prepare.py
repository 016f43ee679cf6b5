"""What a node prepares before it serves, on one machine (``hutch up``) as in a cluster (``hutch node``):
envd and the Python it runs on, the built-in templates (built once and cached; the fake backend needs
none), their rows in the catalog, the runtime's options and its warm pools of them."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.exc import IntegrityError

from .catalog import Catalog, register_template
from .config import Settings
from .private_files import private_directory
from .runtime.types import TemplateImage
from .templates import base, code_interpreter, desktop, envd_python, mcp_gateway
from .templates.envd_zipapp import build as build_envd

BASE_CPU, BASE_MEMORY_MB = 2, 512
# Jupyter, a warm kernel and the data libraries need more room than a bare sandbox.
INTERPRETER_CPU, INTERPRETER_MEMORY_MB = 2, 1024
# The X server, the session and a browser.
DESKTOP_CPU, DESKTOP_MEMORY_MB = 2, 2048
# What every process of a desktop sandbox sees: xdg-open (the SDK's ``open``) then hands a file to Xfce's
# own opener from the start, instead of guessing the desktop from the root window, which the session marks
# only a while after the SDK's create has returned (before that, a text file opened in a terminal's pager).
DESKTOP_ENV = {"XDG_CURRENT_DESKTOP": "XFCE"}
ALIASES = {
    base.TEMPLATE_ID: base.ALIASES,
    code_interpreter.TEMPLATE_ID: code_interpreter.ALIASES,
    desktop.TEMPLATE_ID: desktop.ALIASES,
    mcp_gateway.TEMPLATE_ID: mcp_gateway.ALIASES,
}


@dataclass(frozen=True)
class Builtin:
    """A template the node builds and registers itself, with the limits its sandboxes get."""

    image: TemplateImage
    cpu_count: int
    memory_mb: int


async def prepare_node(settings: Settings, say: Callable[[str], None]) -> tuple[list[Builtin], Path]:
    """envd (packed) and the built-in templates, built where missing: the templates (``base`` first) and
    the path of envd's archive."""
    # Sandboxes, checkpoints, keys and the catalog's tokens: root's alone.
    private_directory(settings.data_dir)
    private_directory(settings.templates.cache_dir)
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
        image = TemplateImage(
            desktop.TEMPLATE_ID, desktop_rootfs, default_user=base.DEFAULT_USER, env=dict(DESKTOP_ENV)
        )
        builtins.append(Builtin(image, DESKTOP_CPU, DESKTOP_MEMORY_MB))
    if real and settings.templates.mcp_gateway:
        gateway_rootfs = await asyncio.to_thread(mcp_gateway.build, cache, log=say)
        image = TemplateImage(mcp_gateway.TEMPLATE_ID, gateway_rootfs, default_user=base.DEFAULT_USER)
        builtins.append(Builtin(image, BASE_CPU, BASE_MEMORY_MB))
    return builtins, envd_path


async def register_builtins(catalog: Catalog, builtins: list[Builtin]) -> None:
    """Create or refresh the built-in templates' rows. Nodes of a cluster starting together register the
    same rows: one that loses a race for a new row tries again, and then updates it."""
    for builtin in builtins:
        for attempt in range(3):
            try:
                await register_template(
                    catalog,
                    template_id=builtin.image.template_id,
                    rootfs=str(builtin.image.rootfs),
                    aliases=ALIASES[builtin.image.template_id],
                    default_user=builtin.image.default_user,
                    env=builtin.image.env,
                    cpu_count=builtin.cpu_count,
                    memory_mb=builtin.memory_mb,
                    start_cmd=builtin.image.start_cmd,
                    ready_cmd=builtin.image.ready_cmd,
                    start_user=builtin.image.start_user,
                )
                break
            except IntegrityError:
                if attempt == 2:
                    raise


def runtime_options(settings: Settings, envd_path: Path) -> dict:
    """The keyword arguments of the configured runtime backend."""
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
        "egress_upstream_ca_file": settings.runtime.egress_upstream_ca_file,
        "favor_cgroup_moves": settings.runtime.favor_cgroup_moves,
        "merge_envd_memory": settings.runtime.merge_envd_memory,
        "spare_networks": settings.runtime.spare_networks,
    }


def keep_warm(runtime: object, settings: Settings, builtins: list[Builtin]) -> None:
    """Ask the runtime (if it has pools) to keep the configured number of each built-in template ready."""
    keep = getattr(runtime, "keep_warm", None)
    if keep is None:
        return
    for builtin in builtins:
        template_id = builtin.image.template_id
        for engine, sizes in (
            ("crun", settings.runtime.warm_pool),
            ("gvisor", settings.runtime.gvisor_warm_pool),
        ):
            if sizes.get(template_id, 0):
                keep(builtin.image, sizes[template_id], builtin.cpu_count, builtin.memory_mb, engine=engine)
