"""Making a sandbox and unmaking it: disk (the sandbox's own file system, its quota) → overlay (template
below, the sandbox's layer above) → network namespace + veth → ``crun run``/``runsc run`` with envd as init
(or ``runsc restore`` from a checkpoint; on crun, with the node's fork server, an init that waits while the
server forks envd in: ``envd_fork``) → envd answering → the template's start command. Everything a step
made is undone if a later step fails, and ``destroy`` undoes it all, also after a start that failed
halfway.

A sandbox started for the warm pool runs at a low CPU weight until it is handed out (``cgroups``), so that
refilling the pool never slows down the sandboxes in use.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
from collections.abc import Awaitable, Callable, Coroutine
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

from ...errors import BackendUnavailable
from ...private_files import write_private
from .. import envd_client
from ..safe_path import copy_tree
from ..types import SandboxSpec, TemplateImage, new_sandbox_id
from . import boot_id, cgroups, envd_fork, oci, state
from .checkpoints import Checkpoint
from .disk import Disk
from .egress.authority import prepare_trust
from .host import Host
from .root_files import real_tmp, write_identity, write_resolv_conf
from .rootfs import Overlay, remove_tree
from .sandbox import ContainerSandbox, remove_containers

log = logging.getLogger("hutch.runtime")


async def start_sandbox(
    host: Host,
    template: TemplateImage,
    spec: SandboxSpec,
    *,
    pooled: bool = False,
    checkpoint: Checkpoint | None = None,
    upper: Path | None = None,
    sandbox_id: str | None = None,
    fill: Callable[[Path], Awaitable[None]] | None = None,
    egress: Callable[[ContainerSandbox], Awaitable[None]] | None = None,
) -> ContainerSandbox:
    """Root filesystem, network, container, envd answering; all undone if any step fails. A ``pooled``
    sandbox gets the pool's CPU weight. From a ``checkpoint`` (gVisor), the container is restored instead
    of booted, with ``upper`` (if any) as the start of its writable layer: it goes on where the
    checkpointed sandbox was, with its host name and boot id. A sandbox that moved from another node keeps
    its ``sandbox_id``, and ``fill`` writes its writable layer (on its disk, within its quota) before it
    boots. ``egress`` gives it its egress policy while its container starts. Any other start that is not
    ``pooled`` takes a network made ahead, when one is ready."""
    spare = None if pooled or sandbox_id is not None else host.spares.take()
    if spare is None:
        sandbox_id = sandbox_id or new_sandbox_id()
        network = host.networks.allocate(sandbox_id)
    else:
        sandbox_id, network = spare
    directory = host.sandboxes_dir / sandbox_id
    directory.mkdir(parents=True)
    disk = Disk(directory, spec.disk_mb)
    overlay = Overlay(directory, template.rootfs, disk.mountpoint, host.engines.ids_of(spec.engine))
    sandbox = ContainerSandbox(sandbox_id, directory, disk, overlay, network, template, engine=spec.engine)
    async with AsyncExitStack() as undo:
        undo.push_async_callback(destroy, host, sandbox)
        state.save(sandbox)  # first, so that a restart can undo whatever follows
        if spare is not None:
            host.spares.handed_over(sandbox_id)
            undo.callback(host.spares.fill)  # made again once this start is over (here: has failed)

        async def make_root() -> None:
            await asyncio.to_thread(disk.create, host.disk_blanks)
            if upper is not None:
                await copy_tree(upper, overlay.upper)
            if fill is not None:
                overlay.upper.mkdir()
                await fill(overlay.upper)
            if checkpoint is not None:
                boot_id.write(disk.mountpoint, checkpoint.boot_id.read_text())
            overlay.mount()
            if checkpoint is None:
                write_identity(overlay.merged, sandbox_id)
            if host.firewall.uplink:
                write_resolv_conf(overlay.merged, host.firewall.name_servers)
            overlay.hand_over("etc/hostname", "etc/hosts", "etc/resolv.conf")
            real_tmp(sandbox)

        if spare is None:
            await _all(make_root(), host.networks.create(network))  # neither needs the other
        else:
            await make_root()
        config = oci.config(
            sandbox_id=sandbox_id,
            rootfs=overlay.merged,
            netns_path=network.netns_path,
            spec=spec,
            envd=host.envd_path,
            envd_python=host.envd_python,
            seccomp_bpf=host.seccomp,
            engine=spec.engine,
            forked_envd=host.envd_fork.init if host.envd_fork and spec.engine == "crun" else None,
        )
        config["mounts"] += await asyncio.to_thread(
            host.volumes.prepare, sandbox_id, directory, spec.engine, list(spec.volumes)
        )
        if checkpoint is None:
            boot_id.renew(disk.mountpoint)
        boot_id.mount(config, disk.mountpoint)
        if host.egress_proxy is not None:  # its own CA, which header rules' interception uses
            config["mounts"] += await asyncio.to_thread(prepare_trust, directory, overlay.merged)
        write_private(directory / "config.json", json.dumps(config))  # it holds the env vars
        if egress is None:
            await _boot(host, sandbox, checkpoint)
        else:
            await _together(_boot(host, sandbox, checkpoint), egress(sandbox))
        if pooled:
            cgroups.set_cpu_shares(sandbox_id, cgroups.POOL_CPU_SHARES)
        # A forked envd answered ``ready`` once it listened. A pooled one answers a first request now all
        # the same, which costs it the most (it copies the pages it touches), off a create's path: the
        # start of a process where the runtime is there to start, else ``/health``.
        rehearsed = pooled and host.envd_python is not None
        if sandbox.envd_pidfd is None or (pooled and not rehearsed):
            await envd_client.wait_healthy(sandbox.envd_url)
        if rehearsed:
            await _rehearse_process_start(host, sandbox, template)
        if checkpoint is None:
            await envd_client.start_template(sandbox.envd_url, template)
        undo.pop_all()
    if spare is not None:
        host.spares.fill()
    return sandbox


async def _rehearse_process_start(host: Host, sandbox: ContainerSandbox, template: TemplateImage) -> None:
    """A pooled sandbox's envd starts one process before it is handed out: the runtime's loader, which
    prints its version, as the template's default user. What envd's first start copies and makes once,
    and the sandbox's first ``exec``, are then paid off a create's path rather than in its first command.
    Nothing of the template runs. Failing it (a template without that user) costs only the head start."""
    try:
        await envd_client.run(
            sandbox.envd_url,
            "--version",
            user=template.default_user,
            shell=(f"{oci.ENVD_PYTHON}/ld.so",),
            timeout_s=10.0,
        )
    except BackendUnavailable as error:
        log.info("sandbox %s: no process start rehearsed: %s", sandbox.sandbox_id, error)


async def _all(*works: Coroutine[Any, Any, None]) -> None:
    """Run ``works`` at once and wait for every one of them; the first failure is raised once all have
    ended, so that none is cut short halfway and the undo finds what each made whole."""
    for outcome in await asyncio.gather(*works, return_exceptions=True):
        if isinstance(outcome, BaseException):
            raise outcome


async def _together(*works: Coroutine[Any, Any, None]) -> None:
    """Run ``works`` at once; the first to fail cancels the others, waits for them, and is raised."""
    try:
        async with asyncio.TaskGroup() as group:
            for work in works:
                group.create_task(work)
    except BaseExceptionGroup as failed:
        raise failed.exceptions[0] from None


async def _boot(host: Host, sandbox: ContainerSandbox, checkpoint: Checkpoint | None) -> None:
    """Run the sandbox's container, or restore it from ``checkpoint``."""
    if checkpoint is None:
        await run_container(host, sandbox)
        return
    pid = await host.engines.gvisor().restore(
        sandbox.sandbox_id, sandbox.directory, checkpoint.image, sandbox.log_path
    )
    sandbox.init_pidfd = os.pidfd_open(pid)


async def run_container(host: Host, sandbox: ContainerSandbox) -> None:
    """Run its container as its ``config.json`` says and keep a pidfd of its init; if the init is one
    that waits for envd, the node's fork server makes its envd, whose pidfd it keeps too."""
    engine = host.engines.get(sandbox.engine)
    if not oci.forks_envd(json.loads((sandbox.directory / "config.json").read_bytes())):
        pid = await engine.run_detached(sandbox.container_id, sandbox.directory, sandbox.log_path)
        sandbox.init_pidfd = os.pidfd_open(pid)
        return
    if host.envd_fork is None:
        raise BackendUnavailable(f"sandbox {sandbox.sandbox_id} needs envd's fork server; this node has none")
    sandbox.init_pidfd, sandbox.envd_pidfd = await envd_fork.run_container(
        host.envd_fork, engine, sandbox.container_id, sandbox.directory, sandbox.log_path
    )


async def destroy(host: Host, sandbox: ContainerSandbox) -> None:
    """Stop the container and release its network, overlay and directory; safe on partial state. A pause or
    resume in progress ends first (what a resume made is torn down too)."""
    async with sandbox.changing:
        await sandbox.container_removed()
        sandbox.release_init()
        errors = []
        for step in (
            lambda: remove_containers(host.engines.get(sandbox.engine), sandbox),
            lambda: host.remove_egress(sandbox),
            lambda: host.networks.delete(sandbox.network, cut_connections=sandbox.engine == "gvisor"),
            lambda: asyncio.to_thread(host.volumes.release, sandbox.sandbox_id, sandbox.directory),
            lambda: asyncio.to_thread(sandbox.overlay.unmount),
            lambda: asyncio.to_thread(sandbox.disk.remove),
        ):
            try:
                await step()
            except Exception as err:
                errors.append(err)
    if not errors:
        await asyncio.to_thread(remove_tree, sandbox.directory)
        return
    log.error("sandbox %s: cleanup incomplete: %s", sandbox.sandbox_id, errors)
    raise BackendUnavailable(f"cleanup of sandbox {sandbox.sandbox_id} incomplete: {errors[0]}")
