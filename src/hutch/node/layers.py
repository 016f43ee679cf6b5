"""Template images between a cluster's nodes: a template built on one node is made of layer directories
in that node's cache. Another node that starts a sandbox of it copies the layers it lacks from a node
that holds the template (:func:`LayerCopier.ensure`), over the node API, as a tar stream
(:mod:`.archives`), unpacked beside the final place and renamed into it, and marked as the node's, so
that :class:`CacheCollector` deletes it once no template, build or sandbox uses it.

A node serves only a directory inside its cache that some template or build in the catalog names as a
layer: nothing else of the node is readable this way, whatever path is asked for.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import subprocess
import uuid
from pathlib import Path

import httpx

from ..catalog import Catalog
from ..catalog.repos import nodes, template_builds, templates
from ..errors import NodeUnavailable, NotFound
from ..templates import garbage
from .archives import ArchiveFetcher

log = logging.getLogger("hutch.node")
# How often a node collects its template cache, and how long a layer it marked lately is spared.
COLLECT_EVERY_S = 600.0
SPARED_S = 600.0


async def named_layers(catalog: Catalog) -> set[str]:
    """Every directory a template or a build names in its root filesystem."""
    async with catalog.transaction() as session:
        rows = await template_builds.rootfs_in_use(session)
    return {part for rootfs in rows if rootfs for part in rootfs.split(":") if part}


async def held_templates(catalog: Catalog) -> list[str]:
    """The templates whose every layer this node has."""
    async with catalog.transaction() as session:
        found = await templates.all_templates(session)
    return sorted(
        t.template_id for t in found if t.rootfs and all(Path(p).is_dir() for p in t.rootfs.split(":") if p)
    )


async def checked(catalog: Catalog, cache_dir: Path, path: str) -> Path:
    """``path`` if it is a layer this node may hand out: named by a template or build, inside the cache,
    a real directory (no link anywhere on the way); ``NotFound`` otherwise."""
    found = Path(path)
    root = cache_dir.resolve()
    if (
        not found.is_absolute()
        or path not in await named_layers(catalog)
        or found.resolve() != found
        or root not in found.parents
        or not found.is_dir()
    ):
        raise NotFound(f"no layer {path!r} on this node")
    return found


class LayerCopier:
    """Copies the layers a sandbox's template needs onto this node from the nodes that hold it."""

    def __init__(
        self, catalog: Catalog, *, node_id: str, cache_dir: Path, data_dir: Path, fetcher: ArchiveFetcher
    ) -> None:
        self._catalog = catalog
        self._node_id = node_id
        self._cache_dir = cache_dir
        self._data_dir = data_dir
        self._fetcher = fetcher
        self._locks: dict[str, asyncio.Lock] = {}

    async def ensure(self, rootfs: Path | str, template_id: str | None = None) -> list[str]:
        """Copy each layer of ``rootfs`` that this node lacks from another node: those that hold
        ``template_id`` first, then the others; returns the paths copied. ``NodeUnavailable`` when none
        could give one."""
        copied = []
        for part in str(rootfs).split(":"):
            if not part or Path(part).exists():
                continue
            async with self._locks.setdefault(part, asyncio.Lock()):
                if not Path(part).exists():
                    await self._copy(template_id, part)
                    copied.append(part)
        return copied

    async def _copy(self, template_id: str | None, path: str) -> None:
        target = Path(path)
        root = self._cache_dir.resolve()
        if not target.is_absolute() or root not in target.parents or ".." in target.parts:
            raise NotFound(f"layer {path!r} is outside this node's template cache")
        async with self._catalog.transaction() as session:
            others = [
                row
                for row in await nodes.all_nodes(session)
                if row.node_id != self._node_id and row.state == "ready"
            ]
        holders = sorted(others, key=lambda row: template_id not in row.templates)
        errors = []
        for holder in holders:
            try:
                await self._fetch(holder.api_address, path, target)
                log.info("copied layer %s of template %s from node %s", path, template_id, holder.node_id)
                return
            except (httpx.HTTPError, OSError, subprocess.CalledProcessError, NotFound) as error:
                errors.append(f"{holder.node_id}: {error}")
        raise NodeUnavailable(
            f"no node could give this node the layer {path}"
            + (f" ({'; '.join(errors)})" if errors else ": no other node is ready")
        )

    async def _fetch(self, address: str, path: str, target: Path) -> None:
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(f".copy-{uuid.uuid4().hex}")
        partial.mkdir(mode=0o755)
        try:
            await self._fetcher.unpack(address, "/layers", partial, {"path": path})
            garbage.mark(
                self._cache_dir, self._data_dir, str(target)
            )  # first: the cache's collector weighs it
            os.rename(partial, target)
        finally:
            if partial.exists():
                shutil.rmtree(partial, ignore_errors=True)


class CacheCollector:
    """Every ``every_s``, deletes the layers of the node's cache that this node marked (copied, built or
    snapshotted here) and that no template, build or sandbox of the cluster uses any more, sparing what it
    marked in the last ``spared_s`` (a snapshot's layer whose template row the API is writing)."""

    def __init__(
        self,
        catalog: Catalog,
        *,
        cache_dir: Path,
        data_dir: Path,
        every_s: float = COLLECT_EVERY_S,
        spared_s: float = SPARED_S,
    ) -> None:
        self._catalog = catalog
        self._cache_dir = cache_dir
        self._data_dir = data_dir
        self._every_s = every_s
        self._spared_s = spared_s
        self._task: asyncio.Task[None] | None = None

    async def collect(self) -> garbage.Collected:
        async with self._catalog.transaction() as session:
            referenced = await template_builds.rootfs_in_use(session)
        collected = await asyncio.to_thread(
            garbage.collect, self._cache_dir, self._data_dir, referenced, min_age_s=self._spared_s
        )
        if collected.layers or collected.images:
            log.info("deleted %d unused layers and %d unused images", collected.layers, collected.images)
        return collected

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="hutch-node-cache")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self._every_s)
            try:
                await self.collect()
            except Exception:
                log.exception("collecting the template cache failed")
