"""What the container backend holds for one sandbox: its directory, disk, overlay and network, the engine it
runs on, pidfds of its container's init (and of its envd, when forked in), its egress policy, and how it was
started and paused.

Its container (and the container's cgroup, ``/hutch/<container id>``) is named after the sandbox. A gVisor
sandbox gets a container of a new name, ``<sandbox id>-<n>``, each time it is started again after a pause:
runsc's removal of the container it replaces takes more than a second (it waits until the stopped Sentry has
been reaped), and the new one need not wait for it.

A sandbox's directory (``<data_dir>/sandboxes/<id>``) holds its ``config.json``, ``sandbox.json`` (see
``state``), its disk image and overlay, and while it is paused with its memory on gVisor its checkpoint. Its
envd log (the output of its init, which root in the sandbox can write to through ``/proc/1/fd/1``) is on
the sandbox's own disk, so that it counts against the sandbox's quota rather than the host's free space.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
from dataclasses import dataclass, field
from pathlib import Path

from ..types import ENVD_PORT, Engine, SandboxHandle, SandboxSpec, TemplateImage
from . import cgroups
from .disk import Disk
from .egress.firewall import EgressPolicy
from .network import SandboxNetwork
from .oci_cli import OciCli
from .rootfs import Overlay

# Where a gVisor sandbox paused with its memory keeps its checkpoint (in its directory).
CHECKPOINT = "checkpoint"
# ``<sandbox id>`` or ``<sandbox id>-<n>``: the names a sandbox's containers get.
_CONTAINER_ID = re.compile(r"(?P<sandbox>[A-Za-z0-9]+)(?:-(?P<boot>[1-9][0-9]{0,8}))?")


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
    # A pidfd of its envd when envd is not the init but forked into the container (``envd_fork``).
    envd_pidfd: int | None = None
    egress: EgressPolicy = field(default_factory=EgressPolicy)
    # Whether ``egress`` is what the firewall and the egress proxy hold for it (a pooled sandbox may have
    # the default policy before it is handed out).
    egress_applied: bool = False
    # What it was started with (a boot after a filesystem pause starts it the same way).
    spec: SandboxSpec | None = None
    # ``full`` (frozen in memory) or ``filesystem`` (processes ended, files kept) while paused.
    paused: str | None = None
    # Its current container's id (see above); the sandbox's id until a gVisor sandbox is started again.
    container_id: str = ""
    # The removals of its stopped containers, left to run after a pause returned (runsc takes ~1.5 s). One
    # a pause: as each ends within seconds, only the few of the last seconds' pauses are ever here.
    removing: set[asyncio.Task[None]] = field(default_factory=set)
    # Held while it is paused or resumed, and by its teardown: a kill during a resume tears down what
    # the resume made, once it is done.
    changing: asyncio.Lock = field(default_factory=asyncio.Lock)

    def __post_init__(self) -> None:
        self.container_id = self.container_id or self.sandbox_id

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
        """SIGTERM its envd (the init, or forked into the container, whose init then ends), which stops
        listening, ends its open streams with an error their clients see, and exits; wait for the init's
        end up to ``grace_s``. The caller kills what is left."""
        if self.init_pidfd is None:
            return
        pidfd = self.init_pidfd
        loop = asyncio.get_running_loop()
        loop.remove_reader(pidfd)  # the watch for a death of its own: this one is asked for
        exited = loop.create_future()
        loop.add_reader(pidfd, lambda: exited.done() or exited.set_result(None))
        try:
            envd = pidfd if self.envd_pidfd is None else self.envd_pidfd
            signal.pidfd_send_signal(envd, signal.SIGTERM)
            await asyncio.wait_for(exited, grace_s)
        except (ProcessLookupError, TimeoutError):
            pass
        finally:
            loop.remove_reader(pidfd)

    def release_init(self) -> None:
        """Stop watching its init and close the pidfds (the processes are left as they are)."""
        if self.init_pidfd is not None:
            asyncio.get_running_loop().remove_reader(self.init_pidfd)
            os.close(self.init_pidfd)
            self.init_pidfd = None
        if self.envd_pidfd is not None:
            os.close(self.envd_pidfd)
            self.envd_pidfd = None

    def next_container_id(self) -> str:
        """The id its next container gets: ``<sandbox id>-<n>``, ``n`` one more than its current one's."""
        boot = container_boot(self.sandbox_id, self.container_id) or 0
        return f"{self.sandbox_id}-{boot + 1}"

    async def container_removed(self) -> None:
        """Wait for the removals stops or checkpoints left running (before a container id is used again,
        or the sandbox is torn down)."""
        while self.removing:
            with contextlib.suppress(Exception):
                await self.removing.pop()


async def remove_containers(engine: OciCli, sandbox: ContainerSandbox) -> None:
    """Remove every container of the sandbox (its current one; on gVisor also those of its earlier starts
    that are left, as after a restart cut their removal short) and their cgroups."""
    names = {sandbox.container_id}
    if sandbox.engine == "gvisor":
        known = await engine.list()
        names.update(name for name in known if container_boot(sandbox.sandbox_id, name) is not None)
    for container_id in sorted(names):
        await engine.delete(container_id)
    # A crun sandbox's one container keeps its name: no need to read every sandbox's cgroups for others.
    cgroup_names = {sandbox.sandbox_id} if sandbox.engine == "crun" else None
    await asyncio.to_thread(_remove_cgroups, sandbox.sandbox_id, cgroup_names)


def _remove_cgroups(sandbox_id: str, names: set[str] | None) -> None:
    """Remove the cgroups ``names`` (None: every one the sandbox's containers have)."""
    for container_id in sorted(cgroups.containers_of(sandbox_id) if names is None else names):
        cgroups.remove_sandbox(container_id)


def container_boot(sandbox_id: str, container_id: str) -> int | None:
    """``n`` of a container ``<sandbox_id>-<n>``, 0 of ``<sandbox_id>``; None of another sandbox's."""
    found = _CONTAINER_ID.fullmatch(container_id)
    if found is None or found["sandbox"] != sandbox_id:
        return None
    return int(found["boot"] or 0)
