"""Copies of what a sandbox wrote: a commit (a template build's layer: the sandbox stops and goes), a
snapshot (its writable layer, and on gVisor its memory too, while it runs on) and the checkpoint a fork's
copies are restored from.

A copy is consistent: the sandbox's processes are frozen (crun) or held paused by its Sentry (gVisor)
while its writable layer is copied, and what its kernel still held in memory went to its files first.
"""

from __future__ import annotations

import asyncio
import secrets
import shutil
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from ...errors import BackendUnavailable, HutchError, NotSupported
from .. import envd_client
from ..safe_path import copy_tree
from ..types import SandboxHandle
from . import boot_id, cgroups
from .checkpoints import Checkpoint
from .host import Host
from .pause import save_memory
from .sandbox import ContainerSandbox
from .start import destroy


async def commit(host: Host, sandbox: ContainerSandbox, destination: Path) -> None:
    """Stop the sandbox, copy its writable layer to ``destination`` and remove the sandbox."""
    try:
        await host.engines.get(sandbox.engine).delete(sandbox.container_id)
        with sandbox.overlay.stored_upper() as upper:
            await copy_tree(upper, destination)
    finally:
        await destroy(host, sandbox)


async def snapshot(host: Host, sandbox: ContainerSandbox, destination: Path, *, memory: Path | None) -> bool:
    """Copy a running sandbox's writable layer to ``destination`` while its processes are frozen; it then
    runs on. With ``memory``, a gVisor sandbox is also checkpointed there (its memory and processes, taken
    just before the copy). Returns whether its memory was kept."""
    # What the sandbox's kernel (gVisor's, too) still holds in memory goes to its files first.
    await envd_client.run(
        sandbox.envd_url, "sync", user="root", shell=("/bin/sh", "-c"),
        access_token=sandbox.access_token, timeout_s=60,
    )  # fmt: skip
    if memory is not None and sandbox.engine == "gvisor":
        if await _capture(host, sandbox, Checkpoint(memory), destination):
            return True
        await asyncio.to_thread(shutil.rmtree, memory, True)  # its files, then, as on crun
    await asyncio.to_thread(cgroups.freeze, sandbox.container_id, True)
    try:
        with sandbox.overlay.stored_upper() as upper:
            await copy_tree(upper, destination)
    finally:
        await asyncio.to_thread(cgroups.freeze, sandbox.container_id, False)
    return False


@asynccontextmanager
async def fork_checkpoint(host: Host, parent: ContainerSandbox) -> AsyncIterator[tuple[Checkpoint, Path]]:
    """A checkpoint of a running gVisor sandbox and a copy of its writable layer that match (taken while
    it is held paused; it then goes on), for the block: a fork's copies are restored from them.
    ``NotSupported`` when its memory cannot be saved now (a connection gVisor cannot save)."""
    checkpoint = Checkpoint(parent.directory / f"fork-{secrets.token_hex(4)}")
    upper = checkpoint.directory / "upper"
    try:
        if not await _capture(host, parent, checkpoint, upper):
            raise NotSupported(f"the memory of sandbox {parent.sandbox_id} cannot be saved now")
        yield checkpoint, upper
    finally:
        await asyncio.to_thread(shutil.rmtree, checkpoint.directory, True)


def as_result(outcome: SandboxHandle | BaseException) -> SandboxHandle | HutchError:
    """One copy's outcome for the caller: its handle, or why it failed (a cancellation goes on up)."""
    if isinstance(outcome, SandboxHandle | HutchError):
        return outcome
    if not isinstance(outcome, Exception):
        raise outcome
    return BackendUnavailable(f"the copy could not be restored: {outcome}")


async def _capture(host: Host, sandbox: ContainerSandbox, checkpoint: Checkpoint, upper: Path) -> bool:
    """Checkpoint a running gVisor sandbox and copy its writable layer to ``upper`` while it is held
    paused, so that the files match the memory; it then runs on. False (nothing taken) when its memory
    cannot be saved now."""
    checkpoint.create(sandbox.access_token)
    if not await save_memory(host, sandbox, checkpoint.image):
        return False
    try:
        await copy_tree(sandbox.overlay.upper, upper)
        checkpoint.boot_id.write_text(boot_id.read(sandbox.disk.mountpoint))
    finally:
        await host.engines.gvisor().resume(sandbox.container_id)
    return True
