"""The catalog's tables: teams, their API keys, templates with their builds, tags and build logs,
sandboxes and the spans they ran, volumes and secrets (SQLAlchemy 2, any dialect)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    DateTime,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from sqlalchemy.types import TypeDecorator


class UTCDateTime(TypeDecorator[datetime]):
    """A timestamp stored in UTC and always read back timezone-aware (SQLite keeps no zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


DEFAULT_KEY_NAME = "Unnamed API key"


def utcnow() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    type_annotation_map = {
        datetime: UTCDateTime,
        dict[str, Any]: JSON,
        dict[str, str]: JSON,
        dict[str, int]: JSON,
        list[str]: JSON,
    }


class Team(Base):
    __tablename__ = "teams"

    team_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(255), unique=True)
    # The operator's limits for this team, by quota name; a quota not named here has the configured default.
    quotas: Mapped[dict[str, int]] = mapped_column(default=dict, server_default=text("'{}'"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    api_keys: Mapped[list[ApiKey]] = relationship(back_populates="team", cascade="all, delete-orphan")


class ApiKey(Base):
    """An API key, kept only as the SHA-256 of its text. ``id`` names it in ``/api-keys``; ``mask`` and the
    ``mask_*`` fields are what listings may show of it (E2B's ``IdentifierMaskingDetails``). A revoked key
    keeps its row, with ``revoked_at`` set, so that it is never accepted or stored again."""

    __tablename__ = "api_keys"
    __table_args__ = (Index("ix_api_keys_id", "id", unique=True),)

    key_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    id: Mapped[str] = mapped_column(String(36), default=lambda: str(uuid.uuid4()))
    team_id: Mapped[str] = mapped_column(ForeignKey("teams.team_id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(255), default=DEFAULT_KEY_NAME)
    mask: Mapped[str] = mapped_column(String(32))
    # The key's length after its prefix, and the first and last characters of that part.
    value_length: Mapped[int] = mapped_column(default=0)
    mask_prefix: Mapped[str] = mapped_column(String(8), default="")
    mask_suffix: Mapped[str] = mapped_column(String(8), default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_used: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]

    team: Mapped[Team] = relationship(back_populates="api_keys")


class Template(Base):
    """A template: the image its sandboxes start from (its last successful build's), and how they start.
    ``rootfs`` is the overlay's lower directories, top first, joined with ``:``; it is empty while the
    template's first build has not finished."""

    __tablename__ = "templates"

    template_id: Mapped[str] = mapped_column(String(255), primary_key=True)
    aliases: Mapped[list[str]] = mapped_column(default=list)
    rootfs: Mapped[str] = mapped_column(String(4096))
    default_user: Mapped[str] = mapped_column(String(255), default="user")
    default_workdir: Mapped[str | None] = mapped_column(String(4096))
    env: Mapped[dict[str, str]] = mapped_column(default=dict)
    cpu_count: Mapped[int] = mapped_column(default=2)
    memory_mb: Mapped[int] = mapped_column(default=512)
    disk_mb: Mapped[int] = mapped_column(default=1024)
    start_cmd: Mapped[str | None] = mapped_column(String(8192))
    ready_cmd: Mapped[str | None] = mapped_column(String(8192))
    # The user the start command runs as; ``None``: ``default_user``.
    start_user: Mapped[str | None] = mapped_column(String(255))
    # The engine its sandboxes run on unless a create asks for another (metadata ``hutch.runtime``):
    # ``crun`` or ``gvisor``.
    engine: Mapped[str] = mapped_column(String(32), default="crun", server_default=text("'crun'"))
    public: Mapped[bool] = mapped_column(default=True)
    # The build whose image ``rootfs`` is (None for the built-in templates), and the state of the latest.
    build_id: Mapped[str | None] = mapped_column(String(36))
    build_status: Mapped[str] = mapped_column(String(16), default="ready", server_default=text("'ready'"))
    # For a snapshot (a template made from a sandbox's files): that sandbox's id.
    snapshot_of: Mapped[str | None] = mapped_column(String(64), index=True)
    # For a snapshot of a gVisor sandbox: the directory of its checkpoint (memory, processes), from which
    # its gVisor sandboxes are restored rather than booted.
    checkpoint: Mapped[str | None] = mapped_column(String(4096))
    # For a snapshot: the volumes its sandbox mounted ([{"volume_id", "path"}]), which its sandboxes mount
    # too, and its egress settings without any secret's value (``services.egress``: names only).
    volume_mounts: Mapped[list[dict[str, Any]]] = mapped_column(
        JSON, default=list, server_default=text("'[]'")
    )
    egress: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    # The team that owns the template; ``None`` for the installation's own (``base``…), which every team
    # may use. A team's template that is not ``public`` is unknown to the other teams.
    team_id: Mapped[str | None] = mapped_column(
        ForeignKey("teams.team_id", ondelete="CASCADE", name="fk_templates_team_id_teams")
    )
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    def visible_to(self, team_id: str) -> bool:
        return self.team_id is None or self.public or self.team_id == team_id


class TemplateBuild(Base):
    """One build of a template (E2B's build API): its state, why it failed, and the image it made."""

    __tablename__ = "template_builds"

    build_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    template_id: Mapped[str] = mapped_column(
        ForeignKey(
            "templates.template_id", ondelete="CASCADE", name="fk_template_builds_template_id_templates"
        ),
        index=True,
    )
    # waiting (created, not started), building, ready, error
    status: Mapped[str] = mapped_column(String(16), default="waiting")
    # Why it failed: {"message": str, "step": str | None}
    reason: Mapped[dict[str, Any] | None]
    cpu_count: Mapped[int] = mapped_column(default=2)
    memory_mb: Mapped[int] = mapped_column(default=1024)
    disk_mb: Mapped[int] = mapped_column(default=1024)
    # The image it made, once ready (as the columns of ``Template``).
    rootfs: Mapped[str | None] = mapped_column(String(4096))
    default_user: Mapped[str | None] = mapped_column(String(255))
    default_workdir: Mapped[str | None] = mapped_column(String(4096))
    env: Mapped[dict[str, str]] = mapped_column(default=dict)
    start_cmd: Mapped[str | None] = mapped_column(String(8192))
    ready_cmd: Mapped[str | None] = mapped_column(String(8192))
    # Tags the build gets once ready.
    tags: Mapped[list[str]] = mapped_column(default=list)
    # How many log entries it has (the next entry's ``seq``).
    log_count: Mapped[int] = mapped_column(default=0)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    finished_at: Mapped[datetime | None]


class TemplateBuildLog(Base):
    """A build's log entry; ``seq`` counts from 0 per build (what ``logsOffset`` pages over)."""

    __tablename__ = "template_build_logs"

    build_id: Mapped[str] = mapped_column(
        ForeignKey("template_builds.build_id", ondelete="CASCADE", name="fk_template_build_logs_build_id"),
        primary_key=True,
    )
    seq: Mapped[int] = mapped_column(primary_key=True)
    timestamp: Mapped[datetime]
    level: Mapped[str] = mapped_column(String(8))
    message: Mapped[str] = mapped_column(Text)
    step: Mapped[str | None] = mapped_column(String(32))


class TemplateTag(Base):
    """A tag of a template (``name:tag``), naming one of its builds."""

    __tablename__ = "template_tags"

    template_id: Mapped[str] = mapped_column(
        ForeignKey(
            "templates.template_id", ondelete="CASCADE", name="fk_template_tags_template_id_templates"
        ),
        primary_key=True,
    )
    tag: Mapped[str] = mapped_column(String(255), primary_key=True)
    build_id: Mapped[str] = mapped_column(String(36))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class SandboxRow(Base):
    """A live sandbox. Killing one deletes its row; ``template_id`` is deliberately not a foreign key,
    so that a template can be rebuilt or removed while sandboxes made from it still run."""

    __tablename__ = "sandboxes"
    __table_args__ = (
        UniqueConstraint("team_id", "idempotency_key", name="uq_sandboxes_team_idempotency_key"),
        Index("ix_sandboxes_team_started", "team_id", "started_at", "sandbox_id"),
    )

    sandbox_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    team_id: Mapped[str] = mapped_column(ForeignKey("teams.team_id", ondelete="CASCADE"))
    template_id: Mapped[str] = mapped_column(String(255))
    # The name the caller asked for, when it was an alias rather than the template's id.
    alias: Mapped[str | None] = mapped_column(String(255))
    state: Mapped[str] = mapped_column(String(16), default="running")
    metadata_: Mapped[dict[str, str]] = mapped_column("metadata", default=dict)
    cpu_count: Mapped[int]
    memory_mb: Mapped[int]
    disk_mb: Mapped[int]
    started_at: Mapped[datetime]
    end_at: Mapped[datetime] = mapped_column(index=True)
    host: Mapped[str] = mapped_column(String(255))
    # JSON object keys are strings: {"49983": 40123} means port 49983 is served on host port 40123.
    port_overrides: Mapped[dict[str, Any]] = mapped_column(default=dict)
    node_id: Mapped[str] = mapped_column(String(255), index=True)
    envd_version: Mapped[str] = mapped_column(String(32))
    envd_access_token: Mapped[str] = mapped_column(String(255))
    # Set when the sandbox was created with ``network.allowPublicTraffic: false``: the proxy then wants it
    # in ``E2B-Traffic-Access-Token`` on every port but envd's.
    traffic_access_token: Mapped[str | None] = mapped_column(String(255))
    # ``network.maskRequestHost``: the ``Host`` the proxy sends to the sandbox's user ports.
    mask_request_host: Mapped[str | None] = mapped_column(String(1024))
    idempotency_key: Mapped[str | None] = mapped_column(String(255))
    allow_internet_access: Mapped[bool | None]
    # Lifecycle: what its timeout does (``kill`` or ``pause``, then with its memory unless
    # ``auto_pause_memory`` is false), and whether traffic to it while paused resumes it.
    on_timeout: Mapped[str] = mapped_column(String(8), default="kill", server_default=text("'kill'"))
    auto_pause_memory: Mapped[bool | None]
    auto_resume: Mapped[bool] = mapped_column(default=False, server_default=text("false"))
    # While paused: how (``full``: with its memory; ``filesystem``), and since when.
    pause_mode: Mapped[str | None] = mapped_column(String(16))
    paused_at: Mapped[datetime | None]
    # The volumes it mounts: [{"volume_id", "name", "path"}] (a volume is not deleted while one does).
    volume_mounts: Mapped[list[dict[str, Any]]] = mapped_column(
        JSON, default=list, server_default=text("'[]'")
    )
    # Its header rules (placeholders of secrets, never their values), upstream proxy (its password sealed
    # with the server key) and name servers, as ``services.egress`` stores them; None: none of them.
    egress: Mapped[dict[str, Any] | None] = mapped_column(JSON)

    def address(self, port: int) -> tuple[str, int]:
        """Where the sandbox's ``port`` is reached from its node (as ``SandboxHandle.address``)."""
        return self.host, int(self.port_overrides.get(str(port), port))


class SandboxSpan(Base):
    """A stretch of time one sandbox ran: opened when it starts or resumes, closed (``ended_at``) when it
    pauses, is lost or ends (``usage`` keeps them so). Spans outlive their sandbox: they are its team's
    usage, kept for ``usage.RETENTION``."""

    __tablename__ = "sandbox_spans"
    __table_args__ = (
        Index("ix_sandbox_spans_team_started", "team_id", "started_at"),
        Index("ix_sandbox_spans_sandbox_ended", "sandbox_id", "ended_at"),
    )

    span_id: Mapped[str] = mapped_column(String(36), primary_key=True, default=lambda: str(uuid.uuid4()))
    team_id: Mapped[str] = mapped_column(
        ForeignKey("teams.team_id", ondelete="CASCADE", name="fk_sandbox_spans_team_id")
    )
    sandbox_id: Mapped[str] = mapped_column(String(64))
    started_at: Mapped[datetime]
    ended_at: Mapped[datetime | None] = mapped_column(index=True)


class NodeRow(Base):
    """A machine that hosts sandboxes (``hutch node``), as it registered and last reported itself. Its
    liveness is ``heartbeat_at``; ``state`` is ``ready``, or ``lost`` once an API replica found it silent
    for too long (a heartbeat makes it ``ready`` again). ``draining`` is the operator's: no new sandbox is
    placed there."""

    __tablename__ = "nodes"

    node_id: Mapped[str] = mapped_column(String(255), primary_key=True)
    # Where the node API and the sandbox traffic listener are reached: ``host:port``.
    api_address: Mapped[str] = mapped_column(String(1024))
    traffic_address: Mapped[str] = mapped_column(String(1024))
    state: Mapped[str] = mapped_column(String(16), default="ready")
    draining: Mapped[bool] = mapped_column(default=False)
    # What it offers to sandboxes, and what its sandboxes were given of it.
    cpu_count: Mapped[int]
    memory_mb: Mapped[int]
    disk_mb: Mapped[int]
    cpu_used: Mapped[int] = mapped_column(default=0)
    memory_used_mb: Mapped[int] = mapped_column(default=0)
    disk_used_mb: Mapped[int] = mapped_column(default=0)
    sandboxes: Mapped[int] = mapped_column(default=0)
    # The templates whose images it holds (placement prefers those nodes).
    templates: Mapped[list[str]] = mapped_column(default=list)
    version: Mapped[str] = mapped_column(String(64), default="")
    registered_at: Mapped[datetime] = mapped_column(default=utcnow)
    heartbeat_at: Mapped[datetime] = mapped_column(default=utcnow)


class TemplateUpload(Base):
    """In a cluster: the files of a ``COPY`` step as uploaded (the archive whose name is the client's
    files hash), kept in the catalog in chunks (:class:`TemplateUploadChunk`), so that any API replica
    takes the upload and any node builds with it. One machine keeps them as files instead."""

    __tablename__ = "template_uploads"

    template_id: Mapped[str] = mapped_column(
        ForeignKey("templates.template_id", ondelete="CASCADE", name="fk_template_uploads_template_id"),
        primary_key=True,
    )
    files_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    size: Mapped[int] = mapped_column(BigInteger)
    # The sha256 of the bytes, as the server computed it.
    digest: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class TemplateUploadChunk(Base):
    """One piece of an upload's bytes, in order of ``seq``."""

    __tablename__ = "template_upload_chunks"
    __table_args__ = (
        ForeignKeyConstraint(
            ["template_id", "files_hash"],
            ["template_uploads.template_id", "template_uploads.files_hash"],
            ondelete="CASCADE",
            name="fk_template_upload_chunks_upload",
        ),
    )

    template_id: Mapped[str] = mapped_column(String(255), primary_key=True)
    files_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    seq: Mapped[int] = mapped_column(primary_key=True)
    data: Mapped[bytes] = mapped_column(LargeBinary)


class QuotaHold(Base):
    """On a shared catalog: room in a team's quota that a call in progress holds until what it makes is in
    the catalog, counted by every API replica's check. One that outlives ``expires_at`` (its replica died)
    no longer counts."""

    __tablename__ = "quota_holds"

    hold_id: Mapped[str] = mapped_column(String(36), primary_key=True, default=lambda: str(uuid.uuid4()))
    team_id: Mapped[str] = mapped_column(
        ForeignKey("teams.team_id", ondelete="CASCADE", name="fk_quota_holds_team_id"), index=True
    )
    quota: Mapped[str] = mapped_column(String(64))
    amount: Mapped[int]
    expires_at: Mapped[datetime]


class Volume(Base):
    """A team's volume: a file system that outlives sandboxes, held by one node (``node_id``), which every
    sandbox mounting it runs on. Its token is derived from its id with the server key, never stored."""

    __tablename__ = "volumes"
    __table_args__ = (UniqueConstraint("team_id", "name", name="uq_volumes_team_name"),)

    volume_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    team_id: Mapped[str] = mapped_column(
        ForeignKey("teams.team_id", ondelete="CASCADE", name="fk_volumes_team_id"), index=True
    )
    name: Mapped[str] = mapped_column(String(64))
    size_mb: Mapped[int]
    node_id: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Secret(Base):
    """A team's secret: its value sealed with the server key (Fernet), never returned; ``version`` counts
    its values. ``name`` is lower-case, unique in the team."""

    __tablename__ = "secrets"
    __table_args__ = (
        UniqueConstraint("team_id", "name", name="uq_secrets_team_name"),
        Index("ix_secrets_team_created", "team_id", "created_at", "secret_id"),
    )

    secret_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    team_id: Mapped[str] = mapped_column(
        ForeignKey("teams.team_id", ondelete="CASCADE", name="fk_secrets_team_id")
    )
    name: Mapped[str] = mapped_column(String(255))
    sealed_value: Mapped[bytes] = mapped_column(LargeBinary)
    version: Mapped[int] = mapped_column(default=1)
    metadata_: Mapped[dict[str, str]] = mapped_column("metadata", default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
