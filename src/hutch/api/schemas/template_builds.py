"""Bodies of the template build API (spec §1.4.8, §6): requests to create and start builds, upload links,
build status with log entries, aliases and tags."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from ...catalog.models import TemplateBuildLog
from ..services.capabilities import refuse_registry, refuse_unsupported
from ..services.logs import LogLevel
from ..services.template_builds import BuildSource, BuildStatus, RegistryLogin, RequestedBuild, UploadLink
from .common import WireModel

BuildState = Literal["building", "waiting", "ready", "error"]


class TemplateBuildRequestV3(WireModel):
    """A new build; ``minFreeDiskMb`` (but 0) and ``teamID`` are refused (``capabilities.REFUSED``)."""

    name: str | None = Field(default=None, max_length=255)
    alias: str | None = Field(default=None, max_length=255)
    tags: list[str] | None = Field(default=None, max_length=50)
    cpu_count: int | None = Field(default=None, alias="cpuCount", ge=1, le=64)
    memory_mb: int | None = Field(default=None, alias="memoryMB", ge=128, le=262144)

    @model_validator(mode="before")
    @classmethod
    def _refuse_unsupported(cls, data: Any) -> Any:
        refuse_unsupported(data, "TemplateBuildRequestV3")
        return data


class TemplateRequestResponseV3(WireModel):
    template_id: str = Field(alias="templateID")
    build_id: str = Field(alias="buildID")
    public: bool
    names: list[str]
    tags: list[str]
    aliases: list[str]

    @classmethod
    def of(cls, requested: RequestedBuild) -> TemplateRequestResponseV3:
        tags = list(requested.build.tags)
        return cls(
            template_id=requested.template.template_id,
            build_id=requested.build.build_id,
            public=requested.template.public,
            names=[f"{requested.alias}:{tag}" for tag in tags],
            tags=tags,
            aliases=[requested.alias],
        )


class TemplateBuildFileUpload(WireModel):
    present: bool
    url: str | None = None
    headers: dict[str, str] | None = None

    @classmethod
    def of(cls, link: UploadLink) -> TemplateBuildFileUpload:
        if link.present:
            return cls(present=True)
        return cls(present=False, url=link.url, headers={})


class RegistryCredentials(WireModel):
    """``fromImageRegistry``: only the ``registry`` type (username and password) is accepted."""

    type: str
    username: str | None = None
    password: str | None = None

    @field_validator("type")
    @classmethod
    def _supported(cls, value: str) -> str:
        refuse_registry(value)
        return value

    def login(self) -> RegistryLogin:
        return RegistryLogin(type=self.type, username=self.username, password=self.password)


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

    def source(self) -> BuildSource:
        registry = self.from_image_registry
        return BuildSource(
            from_image=self.from_image,
            from_template=self.from_template,
            registry=None if registry is None else registry.login(),
            force=self.force,
            steps=[step.model_dump(by_alias=True) for step in self.steps],
            start_cmd=self.start_cmd,
            ready_cmd=self.ready_cmd,
        )


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
    status: BuildState
    logs: list[str]
    log_entries: list[BuildLogEntry] = Field(alias="logEntries")
    reason: BuildStatusReason | None = None

    @classmethod
    def of(cls, status: BuildStatus) -> TemplateBuildInfo:
        build = status.build
        entries = [BuildLogEntry.of(row) for row in status.entries]
        reason = None
        if build.reason:
            message = build.reason.get("message") or "Build failed"
            reason = BuildStatusReason(message=message, step=build.reason.get("step"))
        return cls(
            template_id=build.template_id,
            build_id=build.build_id,
            status=build.status,  # type: ignore[arg-type]
            logs=[entry.message for entry in entries],
            log_entries=entries,
            reason=reason,
        )


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
