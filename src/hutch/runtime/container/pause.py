"""Pause and resume. A ``full`` pause keeps a sandbox's memory: crun's processes are frozen in place by the
cgroup freezer, a gVisor sandbox is checkpointed to its directory and its Sentry goes. A ``filesystem``
pause ends its processes and keeps its files; resuming boots it again from them, as it was first started.
Either way its address, disk and egress rules stay, and the host's connections to it are cut, so that
streams in flight end at once rather than hang.

A gVisor sandbox started again (restored, or booted) gets a container of a new name (see ``sandbox``): the
container it replaces is still being removed (runsc takes ~1.5 s), and need not be gone first. The new name
is in its state file, and its cgroup in its ``config.json``, before the container exists.

Nothing here watches a sandbox's init: the caller does, once a resume returned.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import os
import shutil
from pathlib import Path

from ...errors import BackendUnavailable
from ...private_files import write_private
from .. import envd_client
from . import boot_id, cgroups, state
from .egress.authority import trust_env
from .host import Host
from .network import cut
from .root_files import real_tmp
from .sandbox import ContainerSandbox
from .start import run_container

log = logging.getLogger("hutch.runtime")


async def pause(host: Host, sandbox: ContainerSandbox, *, memory: bool) -> str:
    """Freeze the sandbox's processes in memory (``full``), or end them and keep its files
    (``filesystem``); returns the mode it got."""
    async with sandbox.changing:
        return await _pause(host, sandbox, memory=memory)


async def _pause(host: Host, sandbox: ContainerSandbox, *, memory: bool) -> str:
    if memory and sandbox.engine == "gvisor":
        # Its memory is on disk (``save_memory`` cuts the connections): the Sentry, and with it the
        # sandbox's memory, can go. If runsc cannot save it, the sandbox ran on untouched, and is paused
        # with its files only.
        saved = await save_memory(host, sandbox, sandbox.checkpoint_path)
        await _stop(host, sandbox)
        sandbox.paused = "full" if saved else "filesystem"
    elif memory:
        await cut(sandbox.network)
        await asyncio.to_thread(cgroups.freeze, sandbox.container_id, True)
        sandbox.paused = "full"
    else:
        await cut(sandbox.network)
        await _stop(host, sandbox)
        sandbox.paused = "filesystem"
    state.save(sandbox)
    return sandbox.paused


async def resume(host: Host, sandbox: ContainerSandbox, *, memory: bool = True) -> None:
    """Thaw a ``full`` pause; boot a ``filesystem`` one (or any, without ``memory``) from its files."""
    async with sandbox.changing:
        await _resume(host, sandbox, memory=memory)


async def _resume(host: Host, sandbox: ContainerSandbox, *, memory: bool) -> None:
    checkpointed = sandbox.engine == "gvisor" and sandbox.paused == "full"
    if checkpointed and memory:
        await _restore(host, sandbox)
    elif sandbox.paused == "full" and memory:
        await asyncio.to_thread(cgroups.freeze, sandbox.container_id, False)
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
        await runsc.pause(sandbox.container_id)
        try:
            image.mkdir(mode=0o700, parents=True, exist_ok=True)
            await runsc.checkpoint(sandbox.container_id, image, leave_running=True)
            return True
        except BackendUnavailable as err:
            await runsc.resume(sandbox.container_id)
            await asyncio.to_thread(shutil.rmtree, image, True)
            log.warning("sandbox %s: its memory cannot be saved: %s", sandbox.sandbox_id, err)
        if attempt == 0:
            await asyncio.sleep(0.1)
    return False


async def _restore(host: Host, sandbox: ContainerSandbox) -> None:
    """Start a checkpointed gVisor sandbox again where it stopped."""
    runsc = host.engines.gvisor()
    await host.networks.address(sandbox.network)
    real_tmp(sandbox)
    await _mount_volumes(host, sandbox)
    await asyncio.to_thread(_name_new_container, sandbox)
    pid = await runsc.restore(
        sandbox.container_id, sandbox.directory, sandbox.checkpoint_path, sandbox.log_path
    )
    sandbox.init_pidfd = os.pidfd_open(pid)
    await envd_client.wait_healthy(sandbox.envd_url)


async def _boot(host: Host, sandbox: ContainerSandbox) -> None:
    """Start the sandbox's container again over its files, as it was first started."""
    spec = sandbox.spec
    if spec is None:
        raise BackendUnavailable(f"sandbox {sandbox.sandbox_id} cannot boot: how it was made is unknown")
    if sandbox.engine == "gvisor":
        await host.networks.address(sandbox.network)
    else:
        await sandbox.container_removed()  # crun's is quick, and its container keeps the sandbox's id
    real_tmp(sandbox)
    await _mount_volumes(host, sandbox)
    boot_id.renew(sandbox.disk.mountpoint)
    if sandbox.engine == "gvisor":
        await asyncio.to_thread(_name_new_container, sandbox)
    await run_container(host, sandbox)
    await envd_client.wait_healthy(sandbox.envd_url)
    await envd_client.start_template(sandbox.envd_url, spec.template)
    # The variables that make TLS clients trust the sandbox's CA, as at its create.
    env_vars = {**trust_env(sandbox.directory), **spec.env_vars}
    await envd_client.init(
        sandbox.envd_url,
        dataclasses.replace(spec, env_vars=env_vars),
        default_user=spec.template.default_user,
    )


def _name_new_container(sandbox: ContainerSandbox) -> None:
    """Give the gVisor sandbox's next container a name and a cgroup of its own, both recorded (in its state
    file and ``config.json``) before it is made: a restarted node finds it, and its teardown removes it,
    whichever step it got to."""
    sandbox.container_id = sandbox.next_container_id()
    config_path = sandbox.directory / "config.json"
    config = json.loads(config_path.read_text())
    config["linux"]["cgroupsPath"] = f"/{cgroups.PARENT}/{sandbox.container_id}"
    write_private(config_path, json.dumps(config))  # it holds the env vars
    state.save(sandbox)


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
            await asyncio.to_thread(cgroups.freeze, sandbox.container_id, False)
        sandbox.release_init()
    container_id = sandbox.container_id  # the next start of a gVisor sandbox names another

    async def remove() -> None:
        await host.engines.get(sandbox.engine).delete(container_id)
        await asyncio.to_thread(cgroups.remove_sandbox, container_id)

    removal = host.in_background(remove())
    sandbox.removing.add(removal)
    removal.add_done_callback(sandbox.removing.discard)
