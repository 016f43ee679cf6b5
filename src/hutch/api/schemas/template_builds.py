"""Bodies of the template build API (spec §1.4.8, §6): requests to create and start builds, upload links,
build status with log entries, aliases and tags."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import Field

from ...catalog.models import TemplateBuildLog
from .common import LogLevel, WireModel

BuildStatus = Literal["building", "waiting", "ready", "error"]


class TemplateBuildRequestV3(WireModel):
    name: str | None = Field(default=None, max_length=255)
    alias: str | None = Field(default=None, max_length=255)
    tags: list[str] | None = Field(default=None, max_length=50)
    cpu_count: int | None = Field(default=None, alias="cpuCount", ge=1, le=64)
    memory_mb: int | None = Field(default=None, alias="memoryMB", ge=128, le=262144)
    min_free_disk_mb: int | None = Field(default=None, alias="minFreeDiskMb", ge=0)


class TemplateRequestResponseV3(WireModel):
    template_id: str = Field(alias="templateID")
    build_id: str = Field(alias="buildID")
    public: bool
    names: list[str]
    tags: list[str]
    aliases: list[str]


class TemplateBuildFileUpload(WireModel):
    present: bool
    url: str | None = None
    headers: dict[str, str] | None = None


class RegistryCredentials(WireModel):
    type: str
    username: str | None = None
    password: str | None = None


class TemplateStep(WireModel):
    type: str
    args: list[str] = Field(default_factory=list)
    force: bool = False
    files_hash: str | None = Field(default=None, alias="filesHash")


class TemplateBuildStartV2(WireModel):
    from_image: str | None = Field(default=None, alias="fromImage", max_length=1024)
    from_template: str | None = Field(default=None, alias="fromTemplate", max_length=255)
    from_image_registry: RegistryCredentials | None = Field(default=None, alias="fromImageRegistry")
    force: bool = False
    steps: list[TemplateStep] = Field(default_factory=list, max_length=1000)
    start_cmd: str | None = Field(default=None, alias="startCmd", max_length=8192)
    ready_cmd: str | None = Field(default=None, alias="readyCmd", max_length=8192)

    def raw_steps(self) -> list[dict[str, Any]]:
        return [step.model_dump(by_alias=True) for step in self.steps]


class BuildLogEntry(WireModel):
    timestamp: datetime
    message: str
    level: LogLevel
    step: str | None = None

    @classmethod
    def of(cls, row: TemplateBuildLog) -> BuildLogEntry:
        return cls(timestamp=row.timestamp, message=row.message, level=row.level, step=row.step)  # type: ignore[arg-type]


class BuildStatusReason(WireModel):
    message: str
    step: str | None = None
    log_entries: list[BuildLogEntry] | None = Field(default=None, alias="logEntries")


class TemplateBuildInfo(WireModel):
    template_id: str = Field(alias="templateID")
    build_id: str = Field(alias="buildID")
    status: BuildStatus
    logs: list[str]
    log_entries: list[BuildLogEntry] = Field(alias="logEntries")
    reason: BuildStatusReason | None = None


class TemplateBuildLogs(WireModel):
    logs: list[BuildLogEntry]


class TemplateAliasResponse(WireModel):
    template_id: str = Field(alias="templateID")
    public: bool


class AssignTemplateTags(WireModel):
    target: str = Field(max_length=512)
    tags: list[str] = Field(min_length=1, max_length=50)


class AssignedTemplateTags(WireModel):
    tags: list[str]
    build_id: str = Field(alias="buildID")


class DeleteTemplateTags(WireModel):
    name: str = Field(max_length=512)
    tags: list[str] = Field(min_length=1, max_length=50)


class TemplateTag(WireModel):
    tag: str
    build_id: str = Field(alias="buildID")
    created_at: datetime = Field(alias="createdAt")
