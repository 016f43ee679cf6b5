"""After a restart of the node: which sandboxes it takes back, and the teardown of the rest.

Every directory under ``sandboxes/`` is a sandbox the node made; its state file says how far it got. A
sandbox that was handed out is adopted when it can go on as it was: running and answering, frozen with its
container still there, or paused to disk (its files, or a gVisor checkpoint) with no container left (one
that stopped, whose removal the restart cut short, is removed first). Everything else (pooled sandboxes,
half-made ones, dead ones) is torn down, and so is any container of the node's engines that is no
sandbox's current one (the earlier containers of a gVisor sandbox, too), with its cgroup.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

from ...errors import BackendUnavailable
from .. import envd_client
from ..types import SandboxHandle, TemplateImage
from . import cgroups, envd_fork, state
from .disk import Disk
from .host import Host
from .rootfs import Overlay
from .sandbox import ContainerSandbox
from .start import destroy

log = logging.getLogger("hutch.runtime")

# How a sandbox found after a restart is taken back (or None: it is torn down).
ON_DISK = "on disk"  # paused to its files or a gVisor checkpoint: it has no container
IN_CONTAINER = "in its container"  # running or frozen: its container must still be there


async def recover(host: Host, node_id: str, keep: Callable[[ContainerSandbox], None]) -> None:
    """Adopt what can be adopted, tear down the rest. Each adopted sandbox (its egress rules applied
    again) goes to ``keep`` at once."""
    known = {(name, cid) for name, engine in host.engines.available() for cid in await engine.list()}
    for directory in sorted(host.sandboxes_dir.iterdir()):
        found = state.load(directory)
        sandbox = _sandbox_of(host, directory, found)
        known.discard((sandbox.engine, sandbox.container_id))
        if sandbox.network.index:
            host.networks.used.add(sandbox.network.index)
        if found.get("claimed") and await _adopt(host, sandbox, found, node_id):
            log.info("sandbox %s: adopted after a restart", sandbox.sandbox_id)
            keep(sandbox)
            continue
        await destroy(host, sandbox)
    for name, container_id in known:
        await host.engines.get(name).delete(container_id)
        await asyncio.to_thread(cgroups.remove_sandbox, container_id)


def adoption(paused: str | None, has_spec: bool, checkpoint_kept: bool, engine_state: dict) -> str | None:
    """How a handed-out sandbox can be taken back, from what its state file says (how it is paused,
    whether its spec is known), whether its gVisor checkpoint is on disk, and its engine's state of its
    container: ``ON_DISK``, ``IN_CONTAINER`` (if it also answers) or None."""
    if paused == "filesystem" or (paused == "full" and checkpoint_kept):
        return ON_DISK if has_spec and not engine_state else None
    return IN_CONTAINER if engine_state.get("status") in ("running", "paused") else None


def _sandbox_of(host: Host, directory: Path, found: dict) -> ContainerSandbox:
    """The sandbox in ``directory`` as its state file describes it (defaults where it says nothing)."""
    engine = state.engine_of(found)
    disk = Disk(directory, int(found.get("disk_mb", 0)))
    rootfs = Path(found.get("rootfs", "/"))
    return ContainerSandbox(
        directory.name,
        directory,
        disk,
        Overlay(directory, rootfs, disk.mountpoint, host.engines.ids_of(engine)),
        host.networks.plan(directory.name, int(found.get("index", 0))),
        TemplateImage(found.get("template", ""), rootfs),
        engine=engine,
        access_token=found.get("token"),
        container_id=state.container_of(directory, found),
    )


async def _adopt(host: Host, sandbox: ContainerSandbox, found: dict, node_id: str) -> bool:
    """Take a handed-out sandbox back, if ``adoption`` allows and, in its container, its init is there
    and its envd answers (unless it is frozen)."""
    sandbox.paused = found.get("paused")
    sandbox.spec = state.spec_of(found)
    if sandbox.spec is not None:
        sandbox.template = sandbox.spec.template
    engine = host.engines.get(sandbox.engine)
    engine_state = await engine.state(sandbox.container_id)
    checkpoint_kept = sandbox.checkpoint_path.is_dir()
    on_disk = adoption(sandbox.paused, True, checkpoint_kept, {}) == ON_DISK
    if on_disk and engine_state.get("status") == "stopped":
        await engine.delete(sandbox.container_id)  # its removal, cut short by the restart
        await asyncio.to_thread(cgroups.remove_sandbox, sandbox.container_id)
        engine_state = {}
    how = adoption(sandbox.paused, sandbox.spec is not None, checkpoint_kept, engine_state)
    if how is None:
        return False
    for container_id in await asyncio.to_thread(cgroups.containers_of, sandbox.sandbox_id):
        if how == ON_DISK or container_id != sandbox.container_id:  # those its earlier containers left
            await asyncio.to_thread(cgroups.remove_sandbox, container_id)
    if how == IN_CONTAINER:
        try:
            sandbox.init_pidfd = os.pidfd_open(int(engine_state["pid"]))
            sandbox.envd_pidfd = envd_fork.find_envd(sandbox.directory, int(engine_state["pid"]))
            if sandbox.paused is None:
                await envd_client.wait_healthy(sandbox.envd_url, timeout_s=3)
        except (OSError, KeyError, ValueError, BackendUnavailable):
            return False
    sandbox.handle = SandboxHandle(
        sandbox_id=sandbox.sandbox_id,
        template_id=sandbox.template.template_id,
        host=sandbox.network.sandbox_ip,
        node_id=node_id,
        started_at=datetime.fromisoformat(found["started_at"]),
    )
    sandbox.egress = state.egress_of(found)
    await host.apply_egress(sandbox)
    return True
