"""Snapshots of running sandboxes: a sandbox's files, copied while its processes are frozen for a moment,
become a private template of its team (usable as ``templateID`` in a create, removed with
``DELETE /templates/{id}``), within the team's ``snapshots`` and ``snapshot_disk_mb`` quotas and the node's
minimum of free disk.

A snapshot of a gVisor sandbox keeps its memory too, as a checkpoint, when that can be saved: the gVisor
sandboxes made from it are restored, and go on where the sandbox was, processes included. A snapshot of a
crun sandbox (or of a gVisor one whose memory could not be saved) keeps the files only, and its sandboxes
boot afresh over them. Asked for the memory (``memory: true``), a snapshot that would keep only the files is
refused instead; asked for the files only, a gVisor snapshot leaves the memory out.

A snapshot keeps the volumes its sandbox mounts (by id: their content is shared, never copied) and its
egress settings without any secret's value.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncSession

from ...catalog import Catalog
from ...catalog.models import SandboxRow, Template
from ...catalog.repos import sandboxes, templates
from ...errors import Conflict, NotSupported, QuotaExceeded
from ...ids import new_id
from ...runtime.node_client import Engine, engine_named
from . import capabilities, quotas
from .copies import SandboxCopier
from .pagination import Page
from .sandboxes import ENGINE_KEY
from .template_builds import split_name


class SnapshotService:
    """Snapshots made with ``copier``, their checkpoints kept under ``cache_dir``."""

    def __init__(
        self, *, catalog: Catalog, copier: SandboxCopier, cache_dir: Path, min_free_disk_mb: int = 2048
    ) -> None:
        self._catalog = catalog
        self._copier = copier
        self._cache_dir = cache_dir
        self._min_free_disk_mb = min_free_disk_mb
        self._count_holds = quotas.Holds("snapshots")
        self._disk_holds = quotas.Holds("snapshot_disk_mb")

    async def create(
        self, *, team_id: str, sandbox_id: str, name: str | None = None, memory: bool | None = None
    ) -> Template:
        """Snapshot a running sandbox of the team into a new private template (named ``name`` too), within
        the team's ``snapshots`` and ``snapshot_disk_mb`` quotas. ``memory``: None keeps it where the
        sandbox's engine can, False keeps the files only, True insists (``InvalidRequest`` on an engine
        that keeps files only, ``Conflict`` when the memory cannot be saved now)."""
        alias = None if name is None else split_name(name)[0]
        async with self._catalog.transaction() as session:
            source = await sandboxes.get_or_raise(session, team_id=team_id, sandbox_id=sandbox_id)
            engine = await _engine_of(session, source) if memory else None
            if engine is not None:
                capabilities.refuse_memory_snapshot(engine)
            taken = None if alias is None else await templates.find(session, alias)
            if taken is not None and (taken.team_id != team_id or taken.snapshot_of is None):
                raise Conflict(f"the name {alias!r} is taken by another template")
        worst_mb = source.disk_mb + source.memory_mb
        async with (
            self._count_holds.hold(self._catalog, team_id, 1, templates.count_snapshots),
            self._disk_holds.hold(self._catalog, team_id, worst_mb, templates.snapshot_disk_mb),
        ):
            return await self._snapshot(source, alias, memory)

    async def _snapshot(self, source: SandboxRow, alias: str | None, memory: bool | None) -> Template:
        if not self._copier.keeps_memory:
            if memory:
                raise NotSupported(
                    "a cluster keeps a snapshot's files only, not its memory, for now: snapshot with "
                    "memory: false"
                )
            memory = False
        else:
            self._ensure_space(source)
        template_id = new_id()
        checkpoint = self._checkpoint_of(template_id)
        copy = await self._copier.copy(source, memory=None if memory is False else checkpoint)
        if memory and not copy.memory_kept:
            # The copied layer is the cache's to collect: no template refers to it.
            shutil.rmtree(checkpoint, ignore_errors=True)
            capabilities.refuse_memory_snapshot(copy.spec.engine)
            raise Conflict(
                f"the memory of sandbox {source.sandbox_id} cannot be saved now (it holds a connection open"
                " to outside); snapshot it with memory: false to keep its files only"
            )
        spec = copy.spec
        snapshot = Template(
            template_id=template_id,
            aliases=[],
            rootfs=copy.rootfs,
            default_user=spec.template.default_user,
            default_workdir=spec.template.default_workdir,
            env={**spec.template.env, **spec.env_vars},
            cpu_count=source.cpu_count,
            memory_mb=source.memory_mb,
            disk_mb=source.disk_mb,
            start_cmd=spec.template.start_cmd,
            ready_cmd=spec.template.ready_cmd,
            start_user=spec.template.start_user,
            engine=spec.engine,
            public=False,
            team_id=source.team_id,
            build_status="ready",
            snapshot_of=source.sandbox_id,
            checkpoint=str(checkpoint) if copy.memory_kept else None,
            # Its sandboxes mount the same volumes, and get the same egress settings, whose secrets are
            # kept by name only and read again when each starts.
            volume_mounts=[{"volume_id": m["volume_id"], "path": m["path"]} for m in source.volume_mounts],
            egress=source.egress,
        )
        async with self._catalog.transaction() as session:
            await templates.add(session, snapshot)
            if alias is not None:  # taken from the team's earlier snapshot of that name, if any
                await templates.upsert(session, template_id=snapshot.template_id, aliases=[alias])
            return snapshot

    async def page(
        self,
        *,
        team_id: str,
        sandbox_id: str | None = None,
        name: str | None = None,
        limit: int = 100,
        next_token: str | None = None,
    ) -> Page[Template]:
        """One page of the team's snapshots (of one sandbox, or with one name), oldest first; the token of
        the next page is the position it starts at."""
        async with self._catalog.transaction() as session:
            rows = await templates.snapshots(session, team_id, sandbox_id=sandbox_id)
        matching = [row for row in rows if name is None or name in row.aliases]
        start = int(next_token or 0)
        following = str(start + limit) if start + limit < len(matching) else None
        return Page(matching[start : start + limit], following)

    def forget(self, *, template_id: str) -> None:
        """Remove what a deleted snapshot kept of its sandbox's memory (its files go with the next collection
        of the layer cache, once no sandbox uses them)."""
        shutil.rmtree(self._checkpoint_of(template_id), ignore_errors=True)

    def _ensure_space(self, source: SandboxRow) -> None:
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

    def _checkpoint_of(self, template_id: str) -> Path:
        return self._cache_dir / "checkpoints" / template_id


async def _engine_of(session: AsyncSession, sandbox: SandboxRow) -> Engine | None:
    """The engine the sandbox's create chose: its metadata's, else its template's (None if that is gone)."""
    chosen = sandbox.metadata_.get(ENGINE_KEY)
    if chosen is not None:
        return engine_named(chosen)
    template = await templates.get(session, sandbox.template_id)
    return None if template is None else engine_named(template.engine) or "crun"
