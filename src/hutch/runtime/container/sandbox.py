"""What the container backend holds for one sandbox: its directory, disk, overlay and network, the engine it
runs on, a pidfd of its container's init, its egress policy, and how it was started and paused.

A sandbox's directory (``<data_dir>/sandboxes/<id>``) holds its ``config.json``, ``sandbox.json`` (see
``state``), its disk image and overlay, and while it is paused with its memory on gVisor its checkpoint. Its
envd log (the output of its init, which root in the sandbox can write to through ``/proc/1/fd/1``) is on
the sandbox's own disk, so that it counts against the sandbox's quota rather than the host's free space.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from dataclasses import dataclass, field
from pathlib import Path

from ..types import ENVD_PORT, Engine, SandboxHandle, SandboxSpec, TemplateImage
from .disk import Disk
from .egress.firewall import EgressPolicy
from .network import SandboxNetwork
from .rootfs import Overlay

# Where a gVisor sandbox paused with its memory keeps its checkpoint (in its directory).
CHECKPOINT = "checkpoint"


@dataclass
class ContainerSandbox:
    """One sandbox of the container backend, from its first step of creation to its removal."""

    sandbox_id: str
    directory: Path
    disk: Disk
    overlay: Overlay
    network: SandboxNetwork
    template: TemplateImage
    engine: Engine = "crun"
    access_token: str | None = None
    # Set once the sandbox is a user's (a pooled one has none).
    handle: SandboxHandle | None = None
    # A pidfd of the container's init: signalling it cannot hit a recycled pid.
    init_pidfd: int | None = None
    egress: EgressPolicy = field(default_factory=EgressPolicy)
    # What it was started with (a boot after a filesystem pause starts it the same way).
    spec: SandboxSpec | None = None
    # ``full`` (frozen in memory) or ``filesystem`` (processes ended, files kept) while paused.
    paused: str | None = None
    # The removal of its stopped container, left to run after a pause returned (runsc takes ~1 s).
    removing: asyncio.Task[None] | None = None

    @property
    def envd_url(self) -> str:
        return f"http://{self.network.sandbox_ip}:{ENVD_PORT}"

    @property
    def log_path(self) -> Path:
        """Where its envd log is: on its own disk, beside its overlay's layers."""
        return self.disk.mountpoint / "envd.log"

    @property
    def checkpoint_path(self) -> Path:
        """Where its memory is kept while it is paused with it on gVisor."""
        return self.directory / CHECKPOINT

    def kill_init(self) -> None:
        """SIGKILL its init: every process of its pid namespace dies with it, at once."""
        if self.init_pidfd is not None:
            with contextlib.suppress(ProcessLookupError):
                signal.pidfd_send_signal(self.init_pidfd, signal.SIGKILL)

    async def stop_init(self, grace_s: float) -> None:
        """SIGTERM its init, envd, which stops listening, ends its open streams with an error their
        clients see, and exits; wait for that up to ``grace_s``. The caller kills what is left."""
        if self.init_pidfd is None:
            return
        pidfd = self.init_pidfd
        loop = asyncio.get_running_loop()
        loop.remove_reader(pidfd)  # the watch for a death of its own: this one is asked for
        exited = loop.create_future()
        loop.add_reader(pidfd, lambda: exited.done() or exited.set_result(None))
        try:
            signal.pidfd_send_signal(pidfd, signal.SIGTERM)
            await asyncio.wait_for(exited, grace_s)
        except (ProcessLookupError, TimeoutError):
            pass
        finally:
            loop.remove_reader(pidfd)

    def release_init(self) -> None:
        """Stop watching its init and close the pidfd (the init itself is left as it is)."""
        if self.init_pidfd is not None:
            asyncio.get_running_loop().remove_reader(self.init_pidfd)
            os.close(self.init_pidfd)
            self.init_pidfd = None

    async def container_removed(self) -> None:
        """Wait for the removal a stop or a checkpoint left running (before its id is used again)."""
        if self.removing is not None:
            with contextlib.suppress(Exception):
                await self.removing
            self.removing = None
