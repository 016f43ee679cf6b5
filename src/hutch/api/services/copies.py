"""Copies of a running sandbox's files: its writable layer, copied while its processes are frozen for a
moment, becomes a new layer of the node's cache, over the layers the sandbox started from; where its engine
can and the caller asks, its memory is kept too. A snapshot keeps such a copy as a template; a fork on an
engine that cannot copy memory boots its sandboxes from one. In a cluster the node that holds the sandbox
makes the layer in its own cache (the files only: a cluster keeps no memory in a copy yet), from which
other nodes copy it when they start a sandbox of the snapshot.
"""

from __future__ import annotations

import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path

from ...catalog.models import SandboxRow
from ...errors import Conflict, NodeUnavailable
from ...runtime.node_client import Nodes, RemoteNode, SandboxSpec
from ...templates import garbage, layers
from ...templates.layers import LayerStore
from .locks import SandboxLocks


@dataclass(frozen=True)
class SandboxCopy:
    """A copy's layers (top first, joined as a template's ``rootfs``), the spec its sandbox was started
    with, and whether its memory was kept."""

    rootfs: str
    spec: SandboxSpec
    memory_kept: bool


class SandboxCopier:
    """Copies sandboxes on ``node`` into the layer cache in ``cache_dir``, marked as used by the installation
    of ``data_dir`` (so that the cache collects them once nothing uses them)."""

    def __init__(self, *, nodes: Nodes, locks: SandboxLocks, cache_dir: Path, data_dir: Path) -> None:
        self._nodes = nodes
        self._locks = locks
        self._layers = LayerStore(cache_dir)
        self._cache_dir = cache_dir
        self._data_dir = data_dir

    @property
    def keeps_memory(self) -> bool:
        """Whether a copy may keep the sandbox's memory (not in a cluster, yet)."""
        return self._nodes.local() is not None

    async def copy(self, source: SandboxRow, *, memory: Path | None = None) -> SandboxCopy:
        """Copy the running sandbox ``source`` (and its memory to ``memory``, a directory that must not
        exist, where its engine can). A paused one is a ``Conflict``; a failed copy leaves nothing behind."""
        if source.state != "running":
            raise Conflict(f"sandbox {source.sandbox_id} is paused; resume it first")
        if not self.keeps_memory:
            async with self._locks.of(source.sandbox_id):
                node = await self._nodes.holding(source.node_id)
                if not isinstance(node, RemoteNode):
                    raise NodeUnavailable(f"node {source.node_id} is lost: it stopped answering")
                spec, layer = await node.copy_files(source.sandbox_id)
            rootfs = layers.join([Path(layer), *layers.split(str(spec.template.rootfs))])
            return SandboxCopy(rootfs=rootfs, spec=spec, memory_kept=False)
        partial = self._layers.partial()
        try:
            async with self._locks.of(source.sandbox_id):
                node = await self._nodes.holding(source.node_id)
                spec, kept = await node.snapshot(source.sandbox_id, partial, memory=memory)
            layer = self._layers.publish(partial, f"snapshot-{uuid.uuid4().hex}")
            garbage.mark(self._cache_dir, self._data_dir, str(layer))
        except BaseException:
            self._layers.discard(partial)
            if memory is not None:
                shutil.rmtree(memory, ignore_errors=True)
            raise
        rootfs = layers.join([layer, *layers.split(str(spec.template.rootfs))])
        return SandboxCopy(rootfs=rootfs, spec=spec, memory_kept=kept)
