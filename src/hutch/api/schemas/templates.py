"""Template bodies: ``Template``, the items of ``GET /templates``, and ``TemplateWithBuilds`` of
``GET /templates/{id}`` (spec §1.5)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from pydantic import Field

from ...catalog.models import Template as TemplateRow
from ...catalog.models import TemplateBuild as BuildRow
from ...envd.version import VERSION as ENVD_VERSION
from .common import WireModel


class Template(WireModel):
    """A template as E2B lists it: ``buildID`` is the build its sandboxes start from (for a built-in
    template, one derived from its id and last update) and ``buildStatus`` the state of its latest."""

    template_id: str = Field(alias="templateID")
    build_id: str = Field(alias="buildID")
    cpu_count: int = Field(alias="cpuCount")
    memory_mb: int = Field(alias="memoryMB")
    disk_size_mb: int = Field(alias="diskSizeMB")
    public: bool
    aliases: list[str]
    names: list[str]
    created_at: datetime = Field(alias="createdAt")
    updated_at: datetime = Field(alias="updatedAt")
    created_by: None = Field(default=None, alias="createdBy")
    last_spawned_at: datetime | None = Field(default=None, alias="lastSpawnedAt")
    spawn_count: int = Field(default=0, alias="spawnCount")
    build_count: int = Field(default=1, alias="buildCount")
    envd_version: str = Field(default=ENVD_VERSION, alias="envdVersion")
    build_status: Literal["building", "waiting", "ready", "error"] = Field(
        default="ready", alias="buildStatus"
    )
    is_default: bool = Field(alias="isDefault")

    @classmethod
    def of(cls, row: TemplateRow) -> Template:
        build = row.build_id or str(
            uuid.uuid5(uuid.NAMESPACE_URL, f"hutch:{row.template_id}:{row.updated_at.isoformat()}")
        )
        return cls(
            template_id=row.template_id,
            build_id=build,
            build_status=row.build_status,
            cpu_count=row.cpu_count,
            memory_mb=row.memory_mb,
            disk_size_mb=row.disk_mb,
            public=row.public,
            aliases=list(row.aliases),
            names=list(row.aliases) or [row.template_id],
            created_at=row.created_at,
            updated_at=row.updated_at,
            is_default=row.team_id is None,
        )


class TemplateBuildSummary(WireModel):
    build_id: str = Field(alias="buildID")
    status: Literal["building", "waiting", "ready", "error"]
    created_at: datetime = Field(alias="createdAt")
    updated_at: datetime = Field(alias="updatedAt")
    finished_at: datetime | None = Field(default=None, alias="finishedAt")
    cpu_count: int = Field(alias="cpuCount")
    memory_mb: int = Field(alias="memoryMB")
    disk_size_mb: int = Field(alias="diskSizeMB")
    envd_version: str = Field(default=ENVD_VERSION, alias="envdVersion")

    @classmethod
    def of(cls, row: BuildRow) -> TemplateBuildSummary:
        return cls(
            build_id=row.build_id,
            status=row.status,  # type: ignore[arg-type]
            created_at=row.created_at,
            updated_at=row.updated_at,
            finished_at=row.finished_at,
            cpu_count=row.cpu_count,
            memory_mb=row.memory_mb,
            disk_size_mb=row.disk_mb,
        )


class TemplateWithBuilds(Template):
    """A template and its builds, newest first."""

    builds: list[TemplateBuildSummary]

    @classmethod
    def with_builds(cls, row: TemplateRow, builds: list[BuildRow]) -> TemplateWithBuilds:
        summaries = [TemplateBuildSummary.of(build) for build in builds]
        fields = {**Template.of(row).model_dump(), "build_count": max(1, len(builds))}
        return cls(**fields, builds=summaries)
