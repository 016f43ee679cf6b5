"""Bodies of the operator's ``/admin/teams``: a team with its quotas, a new team, a change of quotas."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import ConfigDict, Field, field_validator

from ..services import quotas
from .common import WireModel

# A team's name: what ``hutch team create`` takes, and what ``hutch key create --team`` finds it by.
TeamName = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")]
Limit = Annotated[int, Field(ge=0, le=2**40)]


def _known(names: dict[str, object]) -> None:
    unknown = sorted(set(names) - set(quotas.NAMES))
    if unknown:
        raise ValueError(f"unknown quota {unknown[0]!r}; quotas are: {', '.join(quotas.NAMES)}")


class NewTeam(WireModel):
    model_config = ConfigDict(extra="forbid")

    name: TeamName
    quotas: dict[str, Limit] = Field(default_factory=dict)

    @field_validator("quotas")
    @classmethod
    def _only_quotas(cls, value: dict[str, int]) -> dict[str, int]:
        _known(value)
        return value


class UpdateTeam(WireModel):
    """New limits by quota name; ``null`` gives the team the configured default again."""

    model_config = ConfigDict(extra="forbid")

    quotas: dict[str, Limit | None]

    @field_validator("quotas")
    @classmethod
    def _only_quotas(cls, value: dict[str, int | None]) -> dict[str, int | None]:
        _known(value)
        return value


class TeamInfo(WireModel):
    """A team: ``quotas`` is every limit it has, ``customQuotas`` those the operator set for it."""

    team_id: str = Field(alias="teamID")
    name: str
    created_at: datetime = Field(alias="createdAt")
    quotas: dict[str, int]
    custom_quotas: dict[str, int] = Field(alias="customQuotas")
    sandboxes: int
