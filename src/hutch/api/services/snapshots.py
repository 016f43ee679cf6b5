"""Snapshots of running sandboxes: a sandbox's files, copied while its processes are frozen for a moment,
become a private template of its team (usable as ``templateID`` in a create, removed with
``DELETE /templates/{id}``); and forks: copies of a running sandbox started from such a copy.

A snapshot keeps files, not memory: a sandbox made from one boots afresh over the copied files. A fork of a
gVisor sandbox keeps its memory too (its processes go on in every copy); a fork of a crun sandbox, which
has no way to copy memory, boots over the copied files like a sandbox from a snapshot.
"""

from __future__ import annotations

import asyncio
import secrets
import shutil
import uuid
from dataclasses import dataclass, replace
from pathlib import Path

from ...catalog import Catalog
from ...catalog.models import Sandbox, Template
from ...catalog.repos import sandboxes, templates
from ...errors import Conflict, HutchError, NotSupported, QuotaExceeded
from ...runtime.base import Runtime
from ...runtime.capabilities import SupportsSnapshot
from ...runtime.types import SandboxSpec
from ...templates import garbage, layers
from ...templates.layers import LayerStore
from . import quotas
from .sandboxes import SandboxService
from .template_builds import split_name

MAX_FORKS = 20


@dataclass(frozen=True)
class Fork:
    """One fork's outcome: the new sandbox, or why it could not be made."""

    sandbox: Sandbox | None = None
    error: HutchError | None = None


class SnapshotService:
    def __init__(
        self,
        *,
        catalog: Catalog,
        runtime: Runtime,
        sandboxes: SandboxService,
        cache_dir: Path,
        data_dir: Path,
        min_free_disk_mb: int = 2048,
    ) -> None:
        self._min_free_disk_mb = min_free_disk_mb
        self._count_holds = quotas.Holds("snapshots")
        self._disk_holds = quotas.Holds("snapshot_disk_mb")
        self._catalog = catalog
        self._runtime = runtime
        self._sandboxes = sandboxes
        self._layers = LayerStore(cache_dir)
        self._cache_dir = cache_dir
        self._data_dir = data_dir

    async def create(self, *, team_id: str, sandbox_id: str, name: str | None = None) -> Template:
        """Snapshot a running sandbox of the team into a new private template (named ``name`` too), within
        the team's ``snapshots`` and ``snapshot_disk_mb`` quotas."""
        alias = None if name is None else split_name(name)[0]
        async with self._catalog.transaction() as session:
            source = await sandboxes.get_or_raise(session, team_id=team_id, sandbox_id=sandbox_id)
            taken = None if alias is None else await templates.find(session, alias)
            if taken is not None and (taken.team_id != team_id or taken.snapshot_of is None):
                raise Conflict(f"the name {alias!r} is taken by another template")
        worst_mb = source.disk_mb + source.memory_mb
        async with (
            self._count_holds.hold(self._catalog, team_id, 1, templates.count_snapshots),
            self._disk_holds.hold(self._catalog, team_id, worst_mb, templates.snapshot_disk_mb),
        ):
            return await self._snapshot(source, alias)

    async def _snapshot(self, source: Sandbox, alias: str | None) -> Template:
        team_id, sandbox_id = source.team_id, source.sandbox_id
        self._ensure_space(source)
        template_id = _new_id()
        memory = self._checkpoint_of(template_id)
        rootfs, spec, kept = await self._copy(source, memory=memory)
        async with self._catalog.transaction() as session:
            snapshot = Template(
                template_id=template_id,
                aliases=[],
                rootfs=rootfs,
                default_user=spec.template.default_user,
                default_workdir=spec.template.default_workdir,
                env={**spec.template.env, **spec.env_vars},
                cpu_count=source.cpu_count,
                memory_mb=source.memory_mb,
                disk_mb=source.disk_mb,
                start_cmd=spec.template.start_cmd,
                ready_cmd=spec.template.ready_cmd,
                start_user=spec.template.start_user,
                runtime=spec.runtime,
                public=False,
                team_id=team_id,
                build_status="ready",
                snapshot_of=sandbox_id,
                checkpoint=str(memory) if kept else None,
            )
            session.add(snapshot)
            await session.flush()
            if alias is not None:  # taken from the team's earlier snapshot of that name, if any
                await templates.upsert(session, template_id=snapshot.template_id, aliases=[alias])
            return snapshot

    async def list(
        self, *, team_id: str, sandbox_id: str | None = None, name: str | None = None
    ) -> list[Template]:
        """The team's snapshots (of one sandbox, or with one name), oldest first."""
        async with self._catalog.transaction() as session:
            rows = await templates.snapshots(session, team_id, sandbox_id=sandbox_id)
        return [row for row in rows if name is None or name in row.aliases]

    async def fork(
        self, *, team_id: str, sandbox_id: str, count: int = 1, timeout_s: int | None = None
    ) -> list[Fork]:
        """``count`` new sandboxes, each with its own id, address and tokens. Where the engine can (gVisor),
        each goes on where the sandbox was, memory and processes included; elsewhere (crun) each boots
        over a copy of the sandbox's files, as the sandbox did (its template's start command, env vars).
        Only as many as the team's ``concurrent_sandboxes`` leaves room for are made: each of the others is
        a ``QuotaExceeded``, and with no room at all the call is."""
        async with self._catalog.transaction() as session:
            source = await sandboxes.get_or_raise(session, team_id=team_id, sandbox_id=sandbox_id)
        if source.state != "running":
            raise Conflict(f"sandbox {source.sandbox_id} is paused; resume it first")
        self._sandboxes.count_creates(team_id, count)
        async with self._sandboxes.starting(team_id, count) as room:
            forks = await self._fork(source, room, timeout_s)
        if room < count:
            async with self._catalog.transaction() as session:
                allowed = await quotas.limit(session, team_id, "concurrent_sandboxes")
            forks += [Fork(error=quotas.exceeded("concurrent_sandboxes", allowed))] * (count - room)
        return forks

    async def _fork(self, source: Sandbox, count: int, timeout_s: int | None) -> list[Fork]:
        try:
            children = await self._sandboxes.fork_running(source, count, timeout_s=timeout_s)
        except NotSupported:
            rootfs, spec, _ = await self._copy(source)
            child = replace(spec, template=replace(spec.template, rootfs=Path(rootfs)))
            children = await asyncio.gather(
                *(self._sandboxes.replicate(source, child, timeout_s=timeout_s) for _ in range(count)),
                return_exceptions=True,
            )
        results = []
        for child in children:
            if isinstance(child, HutchError):
                results.append(Fork(error=child))
            elif isinstance(child, BaseException):
                raise child
            else:
                results.append(Fork(sandbox=child))
        return results

    def _ensure_space(self, source: Sandbox) -> None:
        """Refuse a snapshot that could leave the node's disk with less than the minimum free: it may copy
        the sandbox's whole disk, and its memory."""
        worst_mb = source.disk_mb + source.memory_mb
        self._cache_dir.mkdir(parents=True, exist_ok=True)
        free_mb = shutil.disk_usage(self._cache_dir).free // 2**20
        if free_mb - worst_mb < self._min_free_disk_mb:
            raise QuotaExceeded(
                f"not enough free disk on the node for a snapshot of this sandbox: {free_mb} MiB free,"
                f" up to {worst_mb} MiB needed and {self._min_free_disk_mb} MiB kept free"
            )

    def forget(self, template_id: str) -> None:
        """Remove what a deleted snapshot kept of its sandbox's memory (its files go with the next collection
        of the layer cache, once no sandbox uses them)."""
        shutil.rmtree(self._checkpoint_of(template_id), ignore_errors=True)

    def _checkpoint_of(self, template_id: str) -> Path:
        return self._cache_dir / "checkpoints" / template_id

    async def _copy(self, source: Sandbox, *, memory: Path | None = None) -> tuple[str, SandboxSpec, bool]:
        """Copy a running sandbox's files into a new layer (and its memory to ``memory``, where its engine
        can); returns the layers of the copy, its spec and whether the memory was kept."""
        if source.state != "running":
            raise Conflict(f"sandbox {source.sandbox_id} is paused; resume it first")
        if not isinstance(self._runtime, SupportsSnapshot):
            raise NotSupported(f"the {self._runtime.name} runtime cannot snapshot sandboxes")
        partial = self._layers.partial()
        try:
            async with self._sandboxes.lock(source.sandbox_id):
                spec, kept = await self._runtime.snapshot(source.sandbox_id, partial, memory=memory)
            layer = self._layers.publish(partial, f"snapshot-{uuid.uuid4().hex}")
            # This installation's, so that the cache collects it once the snapshot is deleted.
            garbage.mark(self._cache_dir, self._data_dir, str(layer))
        except BaseException:
            self._layers.discard(partial)
            if memory is not None:
                shutil.rmtree(memory, ignore_errors=True)
            raise
        return layers.join([layer, *layers.split(str(spec.template.rootfs))]), spec, kept


def _new_id() -> str:
    return "".join(secrets.choice("abcdefghijklmnopqrstuvwxyz0123456789") for _ in range(20))
