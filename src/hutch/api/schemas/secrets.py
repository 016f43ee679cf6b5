"""Secret bodies: ``NewSecret``, ``SecretUpdate`` and ``Secret``, which never carries the value."""

from __future__ import annotations

from datetime import datetime

from pydantic import Field

from ...catalog.models import Secret
from .common import WireModel


class NewSecret(WireModel):
    name: str
    value: str = Field(repr=False)
    metadata: dict[str, str] | None = None


class SecretUpdate(WireModel):
    value: str = Field(repr=False)
    metadata: dict[str, str] | None = None


class SecretBody(WireModel):
    """``Secret``: its id, name, version, metadata and times; no value."""

    secret_id: str = Field(alias="secretID")
    name: str
    current_version: int = Field(alias="currentVersion")
    metadata: dict[str, str]
    created_at: datetime = Field(alias="createdAt")
    updated_at: datetime = Field(alias="updatedAt")

    @classmethod
    def of(cls, row: Secret) -> SecretBody:
        return cls(
            secret_id=row.secret_id,
            name=row.name,
            current_version=row.version,
            metadata=dict(row.metadata_),
            created_at=row.created_at,
            updated_at=row.updated_at,
        )
