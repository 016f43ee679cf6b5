"""API key bodies of ``/api-keys``: ``TeamAPIKey``, ``CreatedTeamAPIKey``, ``NewTeamAPIKey`` and
``UpdateTeamAPIKey``, as E2B's API spec names them."""

from __future__ import annotations

from datetime import datetime

from pydantic import Field

from ...catalog.keys import KEY_PREFIX
from ...catalog.models import ApiKey
from .common import WireModel


class NewTeamAPIKey(WireModel):
    name: str = Field(min_length=1, max_length=255)


class UpdateTeamAPIKey(WireModel):
    name: str = Field(min_length=1, max_length=255)


class IdentifierMaskingDetails(WireModel):
    """What may be shown of a key: its prefix, length, and first and last characters."""

    prefix: str
    value_length: int = Field(alias="valueLength")
    masked_value_prefix: str = Field(alias="maskedValuePrefix")
    masked_value_suffix: str = Field(alias="maskedValueSuffix")

    @classmethod
    def of(cls, row: ApiKey) -> IdentifierMaskingDetails:
        return cls(
            prefix=KEY_PREFIX,
            value_length=row.value_length,
            masked_value_prefix=row.mask_prefix,
            masked_value_suffix=row.mask_suffix,
        )


class TeamAPIKey(WireModel):
    """A key as listings show it. ``createdBy`` is always null: keys here belong to teams, not users."""

    id: str
    name: str
    mask: IdentifierMaskingDetails
    created_at: datetime = Field(alias="createdAt")
    created_by: None = Field(default=None, alias="createdBy")
    last_used: datetime | None = Field(alias="lastUsed")

    @classmethod
    def of(cls, row: ApiKey) -> TeamAPIKey:
        return cls(
            id=row.id,
            name=row.name,
            mask=IdentifierMaskingDetails.of(row),
            created_at=row.created_at,
            last_used=row.last_used,
        )


class CreatedTeamAPIKey(TeamAPIKey):
    """A new key, with its text: the only time the API shows it."""

    key: str

    @classmethod
    def created(cls, row: ApiKey, key: str) -> CreatedTeamAPIKey:
        return cls(**TeamAPIKey.of(row).model_dump(), key=key)
