"""Optional abilities of a runtime backend, apart from the core ``Runtime`` interface: a service checks for
one with ``isinstance`` and answers ``NotSupported`` when the backend lacks it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, runtime_checkable

if TYPE_CHECKING:
    from ..errors import HutchError
    from .types import EgressSettings, SandboxHandle, SandboxSpec


@dataclass(frozen=True)
class LogLine:
    """One line of a sandbox's log."""

    timestamp: datetime
    level: str
    message: str


@dataclass(frozen=True)
class MetricSample:
    """A sandbox's resource use at one moment: CPU over the interval before it, sizes in bytes."""

    timestamp: datetime
    cpu_count: int
    cpu_used_pct: float
    mem_used: int
    mem_total: int
    mem_cache: int
    disk_used: int
    disk_total: int


@dataclass(frozen=True)
class SandboxUsage:
    """A sandbox the node holds, and its latest sample (none yet, or none since the node started)."""

    sandbox_id: str
    template_id: str
    paused: bool
    latest: MetricSample | None


@dataclass(frozen=True)
class WarmPoolUsage:
    """One warm pool: its template and engine, and how many started sandboxes it holds of how many."""

    template_id: str
    engine: str
    ready: int
    target: int


@dataclass(frozen=True)
class NodeUsage:
    """What the node holds now: its sandboxes with their latest samples, its warm pools, and how long its
    last sampling pass took."""

    sandboxes: tuple[SandboxUsage, ...]
    warm_pools: tuple[WarmPoolUsage, ...]
    sampling_s: float


@dataclass(frozen=True)
class Reserved:
    """What a node's sandboxes were given, summed (vCPUs, MiB of memory and disk), and how many there are."""

    cpu_count: int
    memory_mb: int
    disk_mb: int
    sandboxes: int


@runtime_checkable
class SupportsCluster(Protocol):
    """Serving as one node of a cluster: telling what its sandboxes hold, and stopping for a restart without
    ending them."""

    def reserved(self) -> Reserved:
        """What the node's sandboxes were given, summed."""

    async def let_go(self) -> None:
        """Stop the node's own work and let go of its sandboxes as they are, for its next start to adopt."""


@runtime_checkable
class SupportsMove(Protocol):
    """Moving a sandbox paused with its files only to another node: the node it leaves tells how it was
    started and hands out its writable layer; the node it goes to starts it again, under the same id, over
    a copy of that layer."""

    def departure(self, sandbox_id: str) -> SandboxSpec:
        """The spec to start the paused sandbox from elsewhere (``Conflict`` when it cannot move)."""

    def files(self, sandbox_id: str) -> AbstractContextManager[Path]:
        """Its writable layer, unchanging within the block (``Conflict`` when it cannot move)."""

    async def arrive(
        self, sandbox_id: str, spec: SandboxSpec, fill: Callable[[Path], Awaitable[None]]
    ) -> SandboxHandle:
        """Start the sandbox ``sandbox_id`` here from ``spec``, ``fill`` writing its writable layer first."""


@runtime_checkable
class SupportsEgress(Protocol):
    """Changing a running sandbox's egress rules."""

    async def update_egress(
        self,
        sandbox_id: str,
        *,
        internet: bool | None,
        allow_out: tuple[str, ...],
        deny_out: tuple[str, ...],
        settings: EgressSettings | None = None,
    ) -> None:
        """Replace the sandbox's allow/deny lists (and its header rules, secrets, upstream proxy and name
        servers, unless ``settings`` is None); ``internet`` None keeps the current switch."""

    async def update_secrets(self, sandbox_id: str, secrets: dict[str, str]) -> None:
        """Replace the values of the secrets the sandbox's header rules name, running or paused: its next
        requests carry them."""


@dataclass(frozen=True)
class VolumeEntry:
    """A file, directory or symbolic link in a volume, as the volume content API describes it: its path
    from the volume's root (``/`` first), the ids a sandbox sees, times in UTC."""

    name: str
    type: str  # file | directory | symlink | unknown
    path: str
    size: int
    mode: int
    uid: int
    gid: int
    atime: datetime
    mtime: datetime
    ctime: datetime
    target: str | None = None


@runtime_checkable
class SupportsVolumes(Protocol):
    """Volumes: file systems that outlive sandboxes, mounted read-write at a path in any number of the
    node's sandboxes (``SandboxSpec.volumes``), and read and written with no sandbox running. Paths are from
    the volume's root; none leads out of it (``NotFound`` or ``InvalidRequest``). A volume that fills up
    answers ``OutOfSpace``."""

    async def create_volume(self, volume_id: str, *, size_mb: int) -> None:
        """Make an empty volume of ``size_mb`` MiB (its quota)."""

    async def delete_volume(self, volume_id: str) -> None:
        """Delete the volume and all it holds (``Conflict`` while a sandbox mounts it); unknown ids are
        ignored."""

    async def volume_used(self, volume_id: str) -> int:
        """Bytes its files take."""

    async def volume_stat(self, volume_id: str, path: str) -> VolumeEntry:
        """What ``path`` is (a link is described, not followed)."""

    async def volume_list(self, volume_id: str, path: str, *, depth: int) -> list[VolumeEntry]:
        """The entries under the directory ``path``, ``depth`` levels down."""

    async def volume_make_dir(
        self, volume_id: str, path: str, *, uid: int | None, gid: int | None, mode: int | None, force: bool
    ) -> VolumeEntry:
        """Make the directory ``path`` (with its missing parents when ``force``)."""

    def volume_read(self, volume_id: str, path: str) -> AsyncIterator[bytes]:
        """The file's content, in chunks."""

    async def volume_write(
        self,
        volume_id: str,
        path: str,
        chunks: AsyncIterator[bytes],
        *,
        uid: int | None,
        gid: int | None,
        mode: int | None,
        force: bool,
    ) -> VolumeEntry:
        """Write the file ``path`` from ``chunks`` (its missing parents made when ``force``); it replaces
        the old file only once all of it is written and synced, so an interrupted write loses nothing."""

    async def volume_change(
        self, volume_id: str, path: str, *, uid: int | None, gid: int | None, mode: int | None
    ) -> VolumeEntry:
        """Change the owner, group or mode of ``path``."""

    async def volume_remove(self, volume_id: str, path: str) -> None:
        """Remove the file, link or directory (with all under it) at ``path``."""


@runtime_checkable
class SupportsCommit(Protocol):
    """Keeping what a sandbox wrote to its root filesystem: how a template build makes a layer."""

    async def commit(self, sandbox_id: str, destination: Path) -> None:
        """Stop the sandbox, copy its writable layer (overlay upper directory, whiteouts included) to
        ``destination`` (which must not exist), and remove the sandbox."""


@runtime_checkable
class SupportsLogs(Protocol):
    """Reading what a sandbox's envd logged (its processes starting and ending, its errors)."""

    async def logs(self, sandbox_id: str) -> list[LogLine]:
        """The sandbox's log, oldest first."""


@runtime_checkable
class SupportsMetrics(Protocol):
    """Sampling each sandbox's CPU, memory and disk use every few seconds, for as long as it lives."""

    async def metrics(
        self, sandbox_id: str, *, start: datetime | None = None, end: datetime | None = None
    ) -> list[MetricSample]:
        """The sandbox's samples whose whole second lies in [``start``, ``end``] (either open), oldest first
        (none are taken while it is paused). ``NotFound`` for a sandbox the node does not hold."""

    async def usage(self) -> NodeUsage:
        """The latest sample of every sandbox the node holds, and its warm pools."""


@runtime_checkable
class SupportsPause(Protocol):
    """Pausing a sandbox and resuming it where it was (same id, address and tokens)."""

    async def pause(self, sandbox_id: str, *, memory: bool) -> str:
        """Pause: keeping its memory (``full``) when ``memory`` and the engine can, else only its files
        (``filesystem``: its processes end, and start again on resume). Returns the mode it got."""

    async def resume(self, sandbox_id: str, *, memory: bool = True) -> None:
        """Resume a paused sandbox; without ``memory`` it boots again from its files even after a full
        pause. Returns once its envd answers (and its template's ready command succeeded, after a boot)."""


@runtime_checkable
class SupportsSnapshot(Protocol):
    """Copying what a running sandbox wrote (snapshots, forks)."""

    async def snapshot(
        self, sandbox_id: str, destination: Path, *, memory: Path | None = None
    ) -> tuple[SandboxSpec, bool]:
        """Copy the sandbox's writable layer to ``destination`` (which must not exist) while its processes
        are frozen, so the copy is consistent; it then runs on. With ``memory`` (a directory that must not
        exist), its memory and processes are kept there too where the engine can (the template's
        ``checkpoint``). Returns the spec it was started with and whether its memory was kept."""


@runtime_checkable
class SupportsFork(Protocol):
    """Copying a running sandbox with its memory: each copy goes on where the sandbox was."""

    async def fork(
        self, sandbox_id: str, access_tokens: list[str | None]
    ) -> list[SandboxHandle | HutchError]:
        """One running copy per envd access token (the rest is the sandbox's own), or why that copy
        failed; ``NotSupported`` when this sandbox's engine cannot keep memory in a copy."""
