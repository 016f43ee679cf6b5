"""Template builds through E2B's build API: request a build (a new template or a new build of the team's
own), upload ``COPY`` files, start it, follow its status and logs; aliases and tags.

A started build runs in the background on this node's builder; its log entries are written to the
catalog in batches (:mod:`.build_logs`), so ``logsOffset`` pages over them. A build that a restart
interrupted is marked failed. A team's templates, builds running at once and stored upload bytes are
bounded by its quotas. The layers and images no template, build or sandbox uses are deleted at start and
after a template is deleted.
"""

from __future__ import annotations

import asyncio
import logging
import re
import uuid
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, nullcontext
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from ...catalog import Catalog
from ...catalog.models import Template, TemplateBuild, TemplateBuildLog, TemplateTag
from ...catalog.repos import template_builds
from ...catalog.repos import templates as template_rows
from ...errors import Conflict, Forbidden, HutchError, InvalidRequest, NotFound, NotSupported
from ...ids import new_id
from ...templates import debian_images, garbage
from ...templates import steps as build_steps
from ...templates.builder import E2B_BASE_IMAGES, Builder, BuildFailed, Built, Plan, TemplateBase
from ...templates.oci_image import RegistryCredentials, check_registry, parse_reference
from ...templates.uploads import UploadStore
from . import quotas, templates
from .build_logs import BuildLogWriter
from .cluster import ClusterBuilder
from .logs import at_least

log = logging.getLogger("hutch.api")
# Template names: lower-case, optionally with a ``namespace/``; tags as Docker's.
_NAME = re.compile(r"[a-z0-9][a-z0-9._-]{0,62}(/[a-z0-9][a-z0-9._-]{0,62})?\Z")
_TAG = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,127}\Z")
_HASH = re.compile(r"[0-9a-f]{64}\Z")
DEFAULT_TAG = "default"
# A new template's limits, as E2B's defaults.
DEFAULT_CPU, DEFAULT_MEMORY_MB, DEFAULT_DISK_MB = 2, 1024, 1024


def split_name(name: str) -> tuple[str, str | None]:
    """``name[:tag]`` into the name and the tag; either one invalid is ``InvalidRequest``."""
    base, _, tag = name.partition(":")
    if not _NAME.match(base):
        raise InvalidRequest(
            f"invalid template name {base!r}: lower-case letters, digits, '.', '_' and '-', "
            "optionally after 'namespace/'"
        )
    if tag and not _TAG.match(tag):
        raise InvalidRequest(f"invalid tag {tag!r}")
    return base, tag or None


def _check_tags(tags: list[str]) -> list[str]:
    for tag in tags:
        if not _TAG.match(tag):
            raise InvalidRequest(f"invalid tag {tag!r}")
    return list(dict.fromkeys(tags))


@dataclass(frozen=True)
class RequestedBuild:
    """A new build, of the template called ``alias``."""

    template: Template
    build: TemplateBuild
    alias: str


@dataclass(frozen=True)
class UploadLink:
    """Whether the files are here already; if not, the URL that takes them."""

    present: bool
    url: str | None = None


@dataclass(frozen=True)
class RegistryLogin:
    """The credentials of a build's ``fromImage`` registry, as the request gave them."""

    type: str
    username: str | None = None
    password: str | None = None


@dataclass(frozen=True)
class BuildSource:
    """What a build starts from (one of ``from_image`` and ``from_template``), its raw steps, and the
    commands its sandboxes start with."""

    from_image: str | None = None
    from_template: str | None = None
    registry: RegistryLogin | None = None
    force: bool = False
    steps: list[dict[str, Any]] = field(default_factory=list)
    start_cmd: str | None = None
    ready_cmd: str | None = None


@dataclass(frozen=True)
class BuildStatus:
    """A build and a page of its log entries."""

    build: TemplateBuild
    entries: list[TemplateBuildLog]


class TemplateBuildService:
    """Builds of templates, run on this node's ``builder`` or on a cluster's nodes (a ``ClusterBuilder``);
    None: nothing builds."""

    def __init__(
        self, *, catalog: Catalog, builder: Builder | ClusterBuilder | None, uploads: UploadStore
    ) -> None:
        self._catalog = catalog
        self._builder = builder
        self._uploads = uploads
        self._running: dict[str, asyncio.Task[None]] = {}
        self._template_holds = quotas.Holds("templates")
        self._build_holds = quotas.Holds("concurrent_builds")
        # Held while builds start and while the cache is collected, so that the two never overlap.
        self._cache_lock = asyncio.Lock()

    async def recover(self) -> list[str]:
        """Mark the builds a restart interrupted as failed; returns their ids."""
        async with self._catalog.transaction() as session:
            interrupted = []
            for build in await template_builds.building(session):
                build.status = "error"
                build.reason = {"message": "the build was interrupted by a restart of Hutch", "step": None}
                build.finished_at = datetime.now(UTC)
                template = await template_rows.get(session, build.template_id)
                if template is not None:
                    template.build_status = "ready" if template.rootfs else "error"
                interrupted.append(build.build_id)
        await self.collect()
        return interrupted

    async def collect(self) -> garbage.Collected | None:
        """Delete the layers and images nothing uses; None (nothing done) while a build runs, or when the
        builds run on a cluster's nodes (each keeps its own cache)."""
        if not isinstance(self._builder, Builder):
            return None
        async with self._cache_lock:
            if self._running:
                return None
            async with self._catalog.transaction() as session:
                referenced = await template_builds.rootfs_in_use(session)
            collected = await asyncio.to_thread(
                garbage.collect, self._builder.cache_dir, self._builder.data_dir, referenced
            )
        if collected.layers or collected.images:
            log.info("deleted %d unused layers and %d unused images", collected.layers, collected.images)
        return collected

    async def close(self) -> None:
        for task in list(self._running.values()):
            task.cancel()
        await asyncio.gather(*self._running.values(), return_exceptions=True)
        if self._builder is not None:
            await self._builder.close()

    # -- requesting and starting -------------------------------------------------------------------------

    async def request(
        self,
        *,
        team_id: str,
        name: str | None,
        tags: list[str] | None = None,
        cpu_count: int | None = None,
        memory_mb: int | None = None,
    ) -> RequestedBuild:
        """A new build: of the team's template called ``name`` (``name:tag`` tags it too), or of a new
        template."""
        if not name:
            raise InvalidRequest("a template build needs a name")
        alias, tag = split_name(name)
        tags = _check_tags([*([tag] if tag else []), *(tags or [])]) or [DEFAULT_TAG]
        async with self._catalog.transaction() as session:
            existing = await templates.find(session, name=alias)
        if existing is not None and existing.team_id != team_id:
            raise Conflict(f"the name {alias!r} is taken by another template")
        hold: AbstractAsyncContextManager[None] = nullcontext()
        if existing is None:
            hold = self._template_holds.hold(self._catalog, team_id, 1, template_rows.count_owned)
        async with hold, self._catalog.transaction() as session:
            template = await templates.find(session, name=alias)
            if template is not None and template.team_id != team_id:
                raise Conflict(f"the name {alias!r} is taken by another template")
            if template is None:
                template = Template(
                    template_id=new_id(),
                    aliases=[alias],
                    rootfs="",
                    default_user="user",
                    team_id=team_id,
                    public=False,
                    build_status="waiting",
                    cpu_count=DEFAULT_CPU,
                    memory_mb=DEFAULT_MEMORY_MB,
                    disk_mb=DEFAULT_DISK_MB,
                )
                await template_rows.add(session, template)
            build = TemplateBuild(
                build_id=str(uuid.uuid4()),
                template_id=template.template_id,
                status="waiting",
                cpu_count=cpu_count or template.cpu_count,
                memory_mb=memory_mb or template.memory_mb,
                disk_mb=template.disk_mb,
                tags=tags,
            )
            await template_builds.add(session, build)
            return RequestedBuild(template=template, build=build, alias=alias)

    async def upload_link(
        self, *, team_id: str, template_id: str, files_hash: str, base_url: str
    ) -> UploadLink:
        """Whether the files of ``files_hash`` are here; if not, a URL that accepts them without a key."""
        if not _HASH.match(files_hash):
            raise InvalidRequest("the files hash must be 64 lower-case hexadecimal digits")
        async with self._catalog.transaction() as session:
            await _own(session, team_id, template_id)
        if await self._uploads.contains(template_id, files_hash):
            return UploadLink(present=True)
        expires, signature = self._uploads.sign(template_id, files_hash)
        query = f"expires={expires}&signature={signature}"
        return UploadLink(
            present=False, url=f"{base_url}templates/{template_id}/files/{files_hash}/upload?{query}"
        )

    async def receive(
        self, *, template_id: str, files_hash: str, expires: int, signature: str, chunks: AsyncIterator[bytes]
    ) -> int:
        """Store the files of ``files_hash`` for the template, within its team's ``upload_mb``; returns
        their size."""
        if not _HASH.match(files_hash):
            raise InvalidRequest("the files hash must be 64 lower-case hexadecimal digits")
        self._uploads.verify(template_id, files_hash, expires, signature)
        async with self._catalog.transaction() as session:
            template = await template_rows.get(session, template_id)
            if template is None or template.team_id is None:
                raise NotFound(f"template {template_id} not found")
            team_id = template.team_id
            limit = await quotas.limit(session, team_id, "upload_mb")
            own_templates = await template_rows.owned(session, team_id)
        used = await self._uploads.used(own_templates)
        received = await self._uploads.receive(
            template_id,
            files_hash,
            chunks,
            room_bytes=max(0, (limit << 20) - used),
            room_error=quotas.exceeded("upload_mb", limit),
        )
        return received.size

    async def start(self, *, team_id: str, template_id: str, build_id: str, source: BuildSource) -> None:
        """Start a waiting build in the background."""
        if self._builder is None:
            raise NotSupported("this node's runtime cannot build templates")
        if bool(source.from_image) == bool(source.from_template):
            raise InvalidRequest("a build starts from exactly one of fromImage and fromTemplate")
        parsed = build_steps.parse(source.steps)
        for step in parsed:
            if step.type == "COPY" and not await self._uploads.contains(template_id, step.files_hash or ""):
                raise InvalidRequest(f"step {step.index}: the files of {step.args[0]!r} were not uploaded")
        if source.from_image:
            await self._check_image(source.from_image)
        async with (
            self._cache_lock,
            self._build_holds.hold(self._catalog, team_id, 1, template_builds.count_building),
        ):
            plan = await self._begin(team_id, template_id, build_id, source, parsed)
            self._running[build_id] = asyncio.ensure_future(self._run(plan))

    async def _check_image(self, name: str) -> None:
        """Refuse at once an image whose registry the builder would refuse."""
        assert self._builder is not None
        if name in E2B_BASE_IMAGES or debian_images.parse(name) is not None:
            return
        allowed = self._builder.sandboxes.internal_registries
        await asyncio.to_thread(check_registry, parse_reference(name), allowed)

    async def _begin(
        self,
        team_id: str,
        template_id: str,
        build_id: str,
        source: BuildSource,
        parsed: list[build_steps.Step],
    ) -> Plan:
        """Mark the waiting build as building; its plan."""
        async with self._catalog.transaction() as session:
            template = await _own(session, team_id, template_id)
            build = await template_builds.get_or_raise(session, template_id=template_id, build_id=build_id)
            if build.status != "waiting":
                raise Conflict(f"build {build_id} was already started")
            base = None
            if source.from_template:
                _, image = await templates.resolve_image(session, name=source.from_template, team_id=team_id)
                state = build_steps.State(
                    env=image.env, user=image.default_user, workdir=image.default_workdir
                )
                base = TemplateBase(str(image.rootfs), state)
            plan = Plan(
                build_id=build_id,
                template_id=template_id,
                team_id=team_id,
                steps=parsed,
                from_image=source.from_image,
                from_template=base,
                credentials=_credentials(source.registry),
                force=source.force,
                start_cmd=source.start_cmd or None,
                ready_cmd=source.ready_cmd or None,
                cpu_count=build.cpu_count,
                memory_mb=build.memory_mb,
            )
            build.status = "building"
            template.build_status = "building"
            return plan

    async def forget(self, *, template_id: str) -> None:
        """After a template is deleted: stop its builds, drop its uploads and what of the cache it alone
        used."""
        for build_id, task in list(self._running.items()):
            if task.get_name() == template_id:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
                self._running.pop(build_id, None)
        await self._uploads.forget(template_id)
        await self.collect()

    async def _run(self, plan: Plan) -> None:
        task = asyncio.current_task()
        if task is not None:
            task.set_name(plan.template_id)
        assert self._builder is not None
        writer = BuildLogWriter(self._catalog, plan.build_id)
        writer.start()
        try:
            built = await self._builder.build(plan, writer.add)
        except BuildFailed as error:
            writer.add(error.message, "error", error.step)
            await writer.close()
            await self._finish(plan, None, {"message": error.message, "step": error.step})
        except asyncio.CancelledError:
            await writer.close()
            raise
        except Exception as error:  # a bug or a failing host: the build fails, the API keeps serving
            log.exception("build %s failed", plan.build_id)
            message = error.message if isinstance(error, HutchError) else f"internal error: {error}"
            writer.add(message, "error", None)
            await writer.close()
            await self._finish(plan, None, {"message": message, "step": None})
        else:
            writer.add(f"build {plan.build_id} is ready", "info", None)
            await writer.close()
            await self._finish(plan, built, None)
        finally:
            self._running.pop(plan.build_id, None)

    async def _finish(self, plan: Plan, built: Built | None, reason: dict[str, Any] | None) -> None:
        async with self._catalog.transaction() as session:
            build = await template_builds.get(session, plan.build_id)
            template = await template_rows.get(session, plan.template_id)
            if build is None or template is None:
                return  # deleted meanwhile
            build.finished_at = datetime.now(UTC)
            if built is None:
                build.status, build.reason = "error", reason
                template.build_status = "error"
                return
            build.status = "ready"
            build.rootfs = built.rootfs
            build.default_user = built.state.user
            build.default_workdir = built.state.workdir
            build.env = dict(built.state.env)
            build.start_cmd, build.ready_cmd = plan.start_cmd, plan.ready_cmd
            template.rootfs = built.rootfs
            template.default_user = built.state.user
            template.default_workdir = built.state.workdir
            template.env = dict(built.state.env)
            template.start_cmd, template.ready_cmd, template.start_user = plan.start_cmd, plan.ready_cmd, None
            template.cpu_count, template.memory_mb = build.cpu_count, build.memory_mb
            template.build_id, template.build_status = build.build_id, "ready"
            for tag in build.tags:
                await template_builds.set_tag(
                    session, template_id=template.template_id, name=tag, build_id=build.build_id
                )

    # -- status ------------------------------------------------------------------------------------------

    async def status(
        self,
        *,
        team_id: str,
        template_id: str,
        build_id: str,
        offset: int = 0,
        limit: int = 100,
        level: str | None = None,
    ) -> BuildStatus:
        """The build, and its log entries after ``offset`` (at ``level`` or above)."""
        async with self._catalog.transaction() as session:
            await _own(session, team_id, template_id)
            build = await template_builds.get_or_raise(session, template_id=template_id, build_id=build_id)
            levels = None if level is None else at_least(level)
            entries = await template_builds.log_entries(
                session, build_id, offset=offset, limit=limit, levels=levels
            )
            return BuildStatus(build=build, entries=entries)

    # -- aliases and tags --------------------------------------------------------------------------------

    async def alias(self, *, team_id: str, alias: str) -> Template:
        """The template called ``alias``; another team's private one is ``Forbidden``."""
        async with self._catalog.transaction() as session:
            template = await templates.find(session, name=alias)
            if template is None:
                raise NotFound(f"template alias {alias!r} not found")
            if not template.visible_to(team_id):
                raise Forbidden(f"template alias {alias!r} belongs to another team")
            return template

    async def assign_tags(self, *, team_id: str, target: str, tags: list[str]) -> tuple[list[str], str]:
        """Give ``tags`` to the build ``target`` (``name:tag``, or ``name`` for the latest) names; returns
        the tags and that build's id."""
        name, tag = split_name(target)
        tags = _check_tags(tags)
        async with self._catalog.transaction() as session:
            template = await _own_by_name(session, team_id, name)
            build_id = template.build_id
            if tag is not None:
                row = await template_builds.tag(session, template.template_id, tag)
                build_id = None if row is None else row.build_id
            if build_id is None:
                raise NotFound(f"template {target!r} has no such build")
            for new in tags:
                await template_builds.set_tag(
                    session, template_id=template.template_id, name=new, build_id=build_id
                )
            return tags, build_id

    async def remove_tags(self, *, team_id: str, name: str, tags: list[str]) -> None:
        base, _ = split_name(name)
        async with self._catalog.transaction() as session:
            template = await _own_by_name(session, team_id, base)
            await template_builds.remove_tags(session, template.template_id, tags)

    async def tags(self, *, team_id: str, template_id: str) -> list[TemplateTag]:
        async with self._catalog.transaction() as session:
            template = await templates.find(session, name=template_id, team_id=team_id)
            if template is None:
                raise NotFound(f"template {template_id} not found")
            return await template_builds.tags(session, template.template_id)


async def _own(session: AsyncSession, team_id: str, template_id: str) -> Template:
    template = await template_rows.get(session, template_id)
    if template is None or template.team_id != team_id:
        raise NotFound(f"template {template_id} not found among the team's own templates")
    return template


async def _own_by_name(session: AsyncSession, team_id: str, name: str) -> Template:
    template = await templates.find(session, name=name, team_id=team_id)
    if template is None or template.team_id != team_id:
        raise NotFound(f"template {name!r} not found among the team's own templates")
    return template


def _credentials(registry: RegistryLogin | None) -> RegistryCredentials | None:
    if registry is None:
        return None
    if registry.type != "registry" or not registry.username:
        raise InvalidRequest(
            "only registry credentials of type 'registry' (username, password) are supported"
        )
    return RegistryCredentials(username=registry.username, password=registry.password or "")
