"""Snapshot and fork bodies (spec §1.4.7): ``SnapshotInfo``, the fork request and ``SandboxForkResult``."""

from __future__ import annotations

from pydantic import Field

from ...catalog.models import Template
from .common import ErrorBody, WireModel
from .sandboxes import CreatedSandbox


class SnapshotRequest(WireModel):
    name: str | None = Field(default=None, max_length=255)
    # ``true``: the memory too, which only some engines keep (else a 400); ``false``: the files only;
    # absent: the memory where the sandbox's engine keeps it.
    memory: bool | None = None


class SnapshotInfo(WireModel):
    snapshot_id: str = Field(alias="snapshotID")
    names: list[str]

    @classmethod
    def of(cls, row: Template) -> SnapshotInfo:
        return cls(snapshot_id=row.template_id, names=list(row.aliases))


class ForkRequest(WireModel):
    timeout: int | None = Field(default=None, ge=0)
    count: int = Field(default=1, ge=1, le=20)


class SandboxForkResult(WireModel):
    sandbox: CreatedSandbox | None = None
    error: ErrorBody | None = None
