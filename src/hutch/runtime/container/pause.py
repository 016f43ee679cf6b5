"""Pause and resume. A ``full`` pause keeps a sandbox's memory: crun's processes are frozen in place by the
cgroup freezer, a gVisor sandbox is checkpointed to its directory and its Sentry goes. A ``filesystem``
pause ends its processes and keeps its files; resuming boots it again from them, as it was first started.
Either way its address, disk and egress rules stay, and the host's connections to it are cut, so that
streams in flight end at once rather than hang.

Nothing here watches a sandbox's init: the caller does, once a resume returned.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
import shutil
from pathlib import Path

from ...errors import BackendUnavailable
from .. import envd_client
from . import boot_id, cgroups, state
from .egress.authority import trust_env
from .host import Host
from .network import cut
from .root_files import real_tmp
from .sandbox import ContainerSandbox

log = logging.getLogger("hutch.runtime")


async def pause(host: Host, sandbox: ContainerSandbox, *, memory: bool) -> str:
    """Freeze the sandbox's processes in memory (``full``), or end them and keep its files
    (``filesystem``); returns the mode it got."""
    if memory and sandbox.engine == "gvisor":
        # Its memory is on disk (``save_memory`` cuts the connections): the Sentry, and with it the
        # sandbox's memory, can go. If runsc cannot save it, the sandbox ran on untouched, and is paused
        # with its files only.
        saved = await save_memory(host, sandbox, sandbox.checkpoint_path)
        await _stop(host, sandbox)
        sandbox.paused = "full" if saved else "filesystem"
    elif memory:
        await cut(sandbox.network)
        await asyncio.to_thread(cgroups.freeze, sandbox.sandbox_id, True)
        sandbox.paused = "full"
    else:
        await cut(sandbox.network)
        await _stop(host, sandbox)
        sandbox.paused = "filesystem"
    state.save(sandbox)
    return sandbox.paused


async def resume(host: Host, sandbox: ContainerSandbox, *, memory: bool = True) -> None:
    """Thaw a ``full`` pause; boot a ``filesystem`` one (or any, without ``memory``) from its files."""
    checkpointed = sandbox.engine == "gvisor" and sandbox.paused == "full"
    if checkpointed and memory:
        await _restore(host, sandbox)
    elif sandbox.paused == "full" and memory:
        await asyncio.to_thread(cgroups.freeze, sandbox.sandbox_id, False)
    else:
        if sandbox.paused == "full" and not checkpointed:
            await _stop(host, sandbox)
        await _boot(host, sandbox)
    if checkpointed:
        await asyncio.to_thread(shutil.rmtree, sandbox.checkpoint_path, True)
    sandbox.paused = None
    state.save(sandbox)


async def save_memory(host: Host, sandbox: ContainerSandbox, image: Path) -> bool:
    """Checkpoint a gVisor sandbox whole (memory, processes, its kernel's state) to ``image`` while its
    Sentry holds every task stopped (``runsc pause``); it stays paused so, and its files no longer
    change. False, with the sandbox running on untouched, when runsc cannot save it: gVisor saves no
    open TCP connection, and the host's are cut first (a second try lets their ends settle), but one
    the sandbox opened itself, to outside, stays."""
    runsc = host.engines.gvisor()
    for attempt in range(2):
        await cut(sandbox.network)
        await runsc.pause(sandbox.sandbox_id)
        try:
            image.mkdir(mode=0o700, parents=True, exist_ok=True)
            await runsc.checkpoint(sandbox.sandbox_id, image, leave_running=True)
            return True
        except BackendUnavailable as err:
            await runsc.resume(sandbox.sandbox_id)
            await asyncio.to_thread(shutil.rmtree, image, True)
            log.warning("sandbox %s: its memory cannot be saved: %s", sandbox.sandbox_id, err)
        if attempt == 0:
            await asyncio.sleep(0.1)
    return False


async def _restore(host: Host, sandbox: ContainerSandbox) -> None:
    """Start a checkpointed gVisor sandbox again where it stopped."""
    runsc = host.engines.gvisor()
    await sandbox.container_removed()
    await host.networks.address(sandbox.network)
    real_tmp(sandbox)
    await _mount_volumes(host, sandbox)
    pid = await runsc.restore(
        sandbox.sandbox_id, sandbox.directory, sandbox.checkpoint_path, sandbox.log_path
    )
    sandbox.init_pidfd = os.pidfd_open(pid)
    await envd_client.wait_healthy(host.client, sandbox.envd_url)


async def _boot(host: Host, sandbox: ContainerSandbox) -> None:
    """Start the sandbox's container again over its files, as it was first started."""
    spec = sandbox.spec
    if spec is None:
        raise BackendUnavailable(f"sandbox {sandbox.sandbox_id} cannot boot: how it was made is unknown")
    engine = host.engines.get(sandbox.engine)
    await sandbox.container_removed()
    if sandbox.engine == "gvisor":
        await host.networks.address(sandbox.network)
    real_tmp(sandbox)
    await _mount_volumes(host, sandbox)
    boot_id.renew(sandbox.disk.mountpoint)
    pid = await engine.run_detached(sandbox.sandbox_id, sandbox.directory, sandbox.log_path)
    sandbox.init_pidfd = os.pidfd_open(pid)
    await envd_client.wait_healthy(host.client, sandbox.envd_url)
    await envd_client.start_template(host.client, sandbox.envd_url, spec.template)
    # The variables that make TLS clients trust the sandbox's CA, as at its create.
    env_vars = {**trust_env(sandbox.directory), **spec.env_vars}
    await envd_client.init(
        host.client,
        sandbox.envd_url,
        dataclasses.replace(spec, env_vars=env_vars),
        default_user=spec.template.default_user,
    )


async def _mount_volumes(host: Host, sandbox: ContainerSandbox) -> None:
    """Make sure the volumes its configuration names are mounted on the node (and its views attached)
    again, as they may not be after the host restarted."""
    mounts = list(sandbox.spec.volumes) if sandbox.spec is not None else []
    await asyncio.to_thread(
        host.volumes.prepare, sandbox.sandbox_id, sandbox.directory, sandbox.engine, mounts
    )


async def _stop(host: Host, sandbox: ContainerSandbox) -> None:
    """End every process of the sandbox at once; its container is removed in the background. Its files,
    address and rules stay."""
    if sandbox.init_pidfd is not None:
        asyncio.get_running_loop().remove_reader(sandbox.init_pidfd)  # its end is no death to notice
        sandbox.kill_init()
        if sandbox.paused == "full":
            await asyncio.to_thread(cgroups.freeze, sandbox.sandbox_id, False)
        sandbox.release_init()

    async def remove() -> None:
        await host.engines.get(sandbox.engine).delete(sandbox.sandbox_id)
        await asyncio.to_thread(cgroups.remove_sandbox, sandbox.sandbox_id)

    sandbox.removing = host.in_background(remove())
