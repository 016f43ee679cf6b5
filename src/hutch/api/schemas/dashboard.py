"""The dashboard's own bodies: logging in, the session a page reads, the sandbox list with each
sandbox's engine, node and latest sample, and usage per day."""

from __future__ import annotations

from datetime import date, datetime

from pydantic import ConfigDict, Field, field_validator

from ...catalog.usage import Day
from ..services.overview import Overview
from .common import WireModel
from .metrics import SandboxMetric
from .sandboxes import parse_metadata, parse_states


class Login(WireModel):
    model_config = ConfigDict(extra="forbid")

    api_key: str = Field(alias="apiKey", min_length=1, max_length=256)


class OperatorLogin(WireModel):
    model_config = ConfigDict(extra="forbid")

    operator_key: str = Field(alias="operatorKey", min_length=1, max_length=256)


class DashboardSession(WireModel):
    """Who is logged in, the token each of the page's requests carries, and where sandboxes are reached
    (``https://<port>-<id>.<domain>``)."""

    team_id: str = Field(alias="teamID")
    team_name: str = Field(alias="teamName")
    csrf: str
    csrf_header: str = Field(alias="csrfHeader")
    domain: str
    expires_at: datetime = Field(alias="expiresAt")
    # Whether the session was given the operator key, and whether this API serves a cluster of nodes.
    operator: bool
    cluster: bool


class OverviewQuery(WireModel):
    """The sandbox list's filters, encoded as ``GET /v2/sandboxes`` takes them."""

    state: str | None = Field(default=None, max_length=64)
    metadata: str | None = Field(default=None, max_length=4096)

    @field_validator("state")
    @classmethod
    def _check_state(cls, value: str | None) -> str | None:
        parse_states(value)
        return value

    @field_validator("metadata")
    @classmethod
    def _check_metadata(cls, value: str | None) -> str | None:
        parse_metadata(value)
        return value

    def states(self) -> frozenset[str]:
        return parse_states(self.state)

    def metadata_filter(self) -> dict[str, str]:
        return parse_metadata(self.metadata)


class OverviewSandbox(WireModel):
    sandbox_id: str = Field(alias="sandboxID")
    template_id: str = Field(alias="templateID")
    alias: str | None
    state: str
    engine: str | None
    node_id: str = Field(alias="nodeID")
    started_at: datetime = Field(alias="startedAt")
    end_at: datetime = Field(alias="endAt")
    cpu_count: int = Field(alias="cpuCount")
    memory_mb: int = Field(alias="memoryMB")
    metadata: dict[str, str]
    latest: SandboxMetric | None


class SandboxOverview(WireModel):
    sandboxes: list[OverviewSandbox]
    truncated: bool

    @classmethod
    def of(cls, overview: Overview) -> SandboxOverview:
        return cls(
            sandboxes=[
                OverviewSandbox(
                    sandbox_id=item.row.sandbox_id,
                    template_id=item.row.template_id,
                    alias=item.row.alias,
                    state=item.row.state,
                    engine=item.engine,
                    node_id=item.row.node_id,
                    started_at=item.row.started_at,
                    end_at=item.row.end_at,
                    cpu_count=item.row.cpu_count,
                    memory_mb=item.row.memory_mb,
                    metadata=item.row.metadata_,
                    latest=SandboxMetric.of(item.latest) if item.latest else None,
                )
                for item in overview.sandboxes
            ],
            truncated=overview.truncated,
        )


class UsageDay(WireModel):
    date: date
    sandbox_hours: float = Field(alias="sandboxHours")
    peak_running: int = Field(alias="peakRunning")


class Usage(WireModel):
    """A team's usage per UTC day, oldest first; today so far is the last."""

    days: list[UsageDay]

    @classmethod
    def of(cls, days: list[Day]) -> Usage:
        return cls(
            days=[
                UsageDay(
                    date=day.day, sandbox_hours=round(day.sandbox_hours, 4), peak_running=day.peak_running
                )
                for day in days
            ]
        )
