"""The interfaces the API reaches sandboxes through: :class:`Nodes`, every node it may use (where a new
sandbox starts, which node holds a sandbox), and :class:`NodeClient`, one node. :class:`LocalNode` is both
on one machine: the node in the API's own process, over this machine's :class:`~.base.Runtime`.

A node reached over the network (:mod:`.remote_node`) is a second implementation of ``NodeClient``; a
cluster's ``Nodes`` lives with the API, which reads the nodes from the catalog. The API's services see
only the protocols. A node that lacks an optional ability (pause, snapshot, fork, logs, metrics, egress)
answers ``NotSupported``, naming its runtime. The data types the two sides exchange are re-exported here,
so that the API imports nothing else of the runtime.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path
from typing import Protocol

from ..errors import HutchError, NotSupported
from .base import Runtime
from .capabilities import (
    LogLine,
    MetricSample,
    NodeUsage,
    SandboxUsage,
    SupportsCommit,
    SupportsEgress,
    SupportsFork,
    SupportsLogs,
    SupportsMetrics,
    SupportsPause,
    SupportsSnapshot,
    SupportsVolumes,
    VolumeEntry,
    WarmPoolUsage,
)
from .node_wire import CLUSTER_KEY_HEADER
from .remote_node import RemoteNode
from .types import (
    ENGINES,
    EgressSettings,
    Engine,
    HeaderRule,
    SandboxHandle,
    SandboxSpec,
    TemplateImage,
    UpstreamProxy,
    VolumeMount,
    engine_named,
)

__all__ = [
    "CLUSTER_KEY_HEADER",
    "ENGINES",
    "EgressSettings",
    "Engine",
    "HeaderRule",
    "LocalNode",
    "LogLine",
    "MetricSample",
    "NodeClient",
    "NodeUsage",
    "Nodes",
    "RemoteNode",
    "Runtime",
    "SandboxHandle",
    "SandboxSpec",
    "SandboxUsage",
    "SupportsCommit",
    "TemplateImage",
    "UpstreamProxy",
    "VolumeEntry",
    "VolumeMount",
    "WarmPoolUsage",
    "engine_named",
]


class NodeClient(Protocol):
    """A node that runs sandboxes, as the API uses it."""

    async def start(self) -> None:
        """Get the node ready (in process: start the runtime, which re-adopts what still runs)."""

    async def close(self) -> None:
        """Let go of the node (in process: stop the runtime's background work)."""

    async def create(self, spec: SandboxSpec) -> SandboxHandle:
        """Start a sandbox from ``spec``; returns once its envd is initialised and answering."""

    async def kill(self, sandbox_id: str) -> None:
        """Stop a sandbox and release all it holds; unknown ids are ignored."""

    async def list(self) -> list[SandboxHandle]:
        """The sandboxes the node runs."""

    async def metrics(
        self, sandbox_id: str, *, start: datetime | None = None, end: datetime | None = None
    ) -> list[MetricSample]:
        """The samples of one sandbox's CPU, memory and disk use whose whole second lies in [``start``,
        ``end``] (either open), oldest first; none are taken while it is paused."""

    async def usage(self) -> NodeUsage:
        """The latest sample of each sandbox the node holds, and its warm pools."""

    async def logs(self, sandbox_id: str) -> list[LogLine]:
        """The sandbox's log (what its envd wrote), oldest first."""

    async def pause(self, sandbox_id: str, *, memory: bool) -> str:
        """Pause, keeping the memory where asked and the engine can; returns the mode, ``full`` or
        ``filesystem``."""

    async def resume(self, sandbox_id: str, *, memory: bool = True) -> None:
        """Resume a paused sandbox (without ``memory``, boot it again from its files)."""

    async def snapshot(
        self, sandbox_id: str, destination: Path, *, memory: Path | None = None
    ) -> tuple[SandboxSpec, bool]:
        """Copy a running sandbox's writable layer to ``destination`` (and its memory to ``memory``, where
        the engine can); returns the spec it was started with and whether its memory was kept."""

    async def fork(
        self, sandbox_id: str, access_tokens: list[str | None]
    ) -> list[SandboxHandle | HutchError]:
        """One running copy of the sandbox, memory included, per envd access token, or why that copy
        failed; ``NotSupported`` when the sandbox's engine cannot copy memory."""

    async def update_egress(
        self,
        sandbox_id: str,
        *,
        internet: bool | None,
        allow_out: tuple[str, ...],
        deny_out: tuple[str, ...],
        settings: EgressSettings | None = None,
    ) -> None:
        """Replace a running sandbox's egress rules; ``internet`` None keeps the current switch, ``settings``
        None the current header rules, secrets, upstream proxy and name servers."""

    async def update_secrets(self, sandbox_id: str, secrets: dict[str, str]) -> None:
        """Replace the values of the secrets a running or paused sandbox's header rules name."""

    async def create_volume(self, volume_id: str, *, size_mb: int) -> None:
        """Make an empty volume on this node (:class:`~.capabilities.SupportsVolumes` says the rest)."""

    async def delete_volume(self, volume_id: str) -> None:
        """Delete a volume and all it holds."""

    async def volume_used(self, volume_id: str) -> int:
        """Bytes a volume's files take."""

    async def volume_stat(self, volume_id: str, path: str) -> VolumeEntry:
        """What ``path`` in the volume is."""

    async def volume_list(self, volume_id: str, path: str, *, depth: int) -> list[VolumeEntry]:
        """The entries under a directory of the volume."""

    async def volume_make_dir(
        self, volume_id: str, path: str, *, uid: int | None, gid: int | None, mode: int | None, force: bool
    ) -> VolumeEntry:
        """Make a directory in the volume."""

    def volume_read(self, volume_id: str, path: str) -> AsyncIterator[bytes]:
        """A file of the volume, in chunks."""

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
        """Write a file of the volume, replacing it once all is written and synced."""

    async def volume_change(
        self, volume_id: str, path: str, *, uid: int | None, gid: int | None, mode: int | None
    ) -> VolumeEntry:
        """Change the owner, group or mode of a path in the volume."""

    async def volume_remove(self, volume_id: str, path: str) -> None:
        """Remove a path (a directory with all under it) from the volume."""


class Nodes(Protocol):
    """Every node the API may use."""

    async def start(self) -> None:
        """Get ready (in process: start the runtime)."""

    async def close(self) -> None:
        """Let go of the nodes."""

    async def place(self, spec: SandboxSpec) -> SandboxHandle:
        """Start a sandbox from ``spec`` on a node with room for it (``QuotaExceeded`` when none has)."""

    async def holding(self, node_id: str) -> NodeClient:
        """The node ``node_id``, which holds a sandbox; one that is lost answers ``NodeUnavailable``."""

    async def move(self, node_id: str, sandbox_id: str) -> SandboxHandle | None:
        """Start ``sandbox_id``, paused with its files only on ``node_id``, on another node if ``node_id``
        is being drained; None when it stays, to resume where it is. The caller records the move, then
        kills it on ``node_id``."""

    def local(self) -> NodeClient | None:
        """The node in this process (one machine), whose sandboxes the API reconciles; None in a cluster."""

    async def usage(self) -> NodeUsage:
        """What every node holds: its sandboxes with their latest samples, and its warm pools."""


class LocalNode:
    """The node the API runs on: calls go straight to ``runtime``, which it checks for each optional
    ability. It is all of :class:`Nodes` as well: every sandbox is on it."""

    def __init__(self, runtime: Runtime) -> None:
        self._runtime = runtime

    async def place(self, spec: SandboxSpec) -> SandboxHandle:
        return await self._runtime.create(spec)

    async def holding(self, node_id: str) -> NodeClient:
        return self

    async def move(self, node_id: str, sandbox_id: str) -> SandboxHandle | None:
        return None

    def local(self) -> NodeClient | None:
        return self

    async def start(self) -> None:
        await self._runtime.start()

    async def close(self) -> None:
        await self._runtime.close()

    async def create(self, spec: SandboxSpec) -> SandboxHandle:
        return await self._runtime.create(spec)

    async def kill(self, sandbox_id: str) -> None:
        await self._runtime.kill(sandbox_id)

    async def list(self) -> list[SandboxHandle]:
        return await self._runtime.list()

    async def metrics(
        self, sandbox_id: str, *, start: datetime | None = None, end: datetime | None = None
    ) -> list[MetricSample]:
        return await self._metered().metrics(sandbox_id, start=start, end=end)

    async def usage(self) -> NodeUsage:
        return await self._metered().usage()

    async def logs(self, sandbox_id: str) -> list[LogLine]:
        runtime = self._runtime
        if not isinstance(runtime, SupportsLogs):
            raise NotSupported(f"the {runtime.name} runtime keeps no sandbox logs")
        return await runtime.logs(sandbox_id)

    async def pause(self, sandbox_id: str, *, memory: bool) -> str:
        return await self._pauser().pause(sandbox_id, memory=memory)

    async def resume(self, sandbox_id: str, *, memory: bool = True) -> None:
        await self._pauser().resume(sandbox_id, memory=memory)

    async def snapshot(
        self, sandbox_id: str, destination: Path, *, memory: Path | None = None
    ) -> tuple[SandboxSpec, bool]:
        runtime = self._runtime
        if not isinstance(runtime, SupportsSnapshot):
            raise NotSupported(f"the {runtime.name} runtime cannot snapshot sandboxes")
        return await runtime.snapshot(sandbox_id, destination, memory=memory)

    async def fork(
        self, sandbox_id: str, access_tokens: list[str | None]
    ) -> list[SandboxHandle | HutchError]:
        runtime = self._runtime
        if not isinstance(runtime, SupportsFork):
            raise NotSupported(f"the {runtime.name} runtime cannot copy a sandbox's memory")
        return await runtime.fork(sandbox_id, access_tokens)

    async def update_egress(
        self,
        sandbox_id: str,
        *,
        internet: bool | None,
        allow_out: tuple[str, ...],
        deny_out: tuple[str, ...],
        settings: EgressSettings | None = None,
    ) -> None:
        runtime = self._runtime
        if not isinstance(runtime, SupportsEgress):
            raise NotSupported(f"the {runtime.name} runtime cannot change a sandbox's network")
        await runtime.update_egress(
            sandbox_id, internet=internet, allow_out=allow_out, deny_out=deny_out, settings=settings
        )

    async def update_secrets(self, sandbox_id: str, secrets: dict[str, str]) -> None:
        runtime = self._runtime
        if not isinstance(runtime, SupportsEgress):
            raise NotSupported(f"the {runtime.name} runtime cannot change a sandbox's network")
        await runtime.update_secrets(sandbox_id, secrets)

    async def create_volume(self, volume_id: str, *, size_mb: int) -> None:
        await self._volumes().create_volume(volume_id, size_mb=size_mb)

    async def delete_volume(self, volume_id: str) -> None:
        await self._volumes().delete_volume(volume_id)

    async def volume_used(self, volume_id: str) -> int:
        return await self._volumes().volume_used(volume_id)

    async def volume_stat(self, volume_id: str, path: str) -> VolumeEntry:
        return await self._volumes().volume_stat(volume_id, path)

    async def volume_list(self, volume_id: str, path: str, *, depth: int) -> list[VolumeEntry]:
        return await self._volumes().volume_list(volume_id, path, depth=depth)

    async def volume_make_dir(
        self, volume_id: str, path: str, *, uid: int | None, gid: int | None, mode: int | None, force: bool
    ) -> VolumeEntry:
        volumes = self._volumes()
        return await volumes.volume_make_dir(volume_id, path, uid=uid, gid=gid, mode=mode, force=force)

    def volume_read(self, volume_id: str, path: str) -> AsyncIterator[bytes]:
        return self._volumes().volume_read(volume_id, path)

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
        return await self._volumes().volume_write(
            volume_id, path, chunks, uid=uid, gid=gid, mode=mode, force=force
        )

    async def volume_change(
        self, volume_id: str, path: str, *, uid: int | None, gid: int | None, mode: int | None
    ) -> VolumeEntry:
        return await self._volumes().volume_change(volume_id, path, uid=uid, gid=gid, mode=mode)

    async def volume_remove(self, volume_id: str, path: str) -> None:
        await self._volumes().volume_remove(volume_id, path)

    def _volumes(self) -> SupportsVolumes:
        runtime = self._runtime
        if not isinstance(runtime, SupportsVolumes):
            raise NotSupported(f"the {runtime.name} runtime has no volumes")
        return runtime

    def _metered(self) -> SupportsMetrics:
        runtime = self._runtime
        if not isinstance(runtime, SupportsMetrics):
            raise NotSupported(f"the {runtime.name} runtime keeps no sandbox metrics")
        return runtime

    def _pauser(self) -> SupportsPause:
        runtime = self._runtime
        if not isinstance(runtime, SupportsPause):
            raise NotSupported(f"the {runtime.name} runtime cannot pause sandboxes")
        return runtime
