"""Volume bodies: ``NewVolume``, ``Volume``, ``VolumeAndToken``, the content API's ``VolumeEntryStat`` and the
body of ``PATCH /volumecontent/{id}/path``."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import Field

from ...catalog.models import Volume
from ...runtime.node_client import VolumeEntry
from .common import WireModel

MAX_ID = 2**32 - 1


class NewVolume(WireModel):
    name: str = Field(min_length=1, max_length=64)


class VolumeBody(WireModel):
    """``Volume``: an item of the list."""

    volume_id: str = Field(alias="volumeID")
    name: str

    @classmethod
    def of(cls, row: Volume) -> VolumeBody:
        return cls(volume_id=row.volume_id, name=row.name)


class VolumeAndToken(VolumeBody):
    """``VolumeAndToken``: the volume and the token of its content API (``domain`` is left out: the
    content API is this API's)."""

    token: str

    @classmethod
    def with_token(cls, row: Volume, token: str) -> VolumeAndToken:
        return cls(volume_id=row.volume_id, name=row.name, token=token)


class VolumeEntryStat(WireModel):
    name: str
    type: Literal["file", "directory", "symlink", "unknown"]
    path: str
    size: int
    mode: int
    uid: int
    gid: int
    atime: datetime
    mtime: datetime
    ctime: datetime
    target: str | None = None

    @classmethod
    def of(cls, entry: VolumeEntry) -> VolumeEntryStat:
        return cls(
            name=entry.name,
            type=entry.type,  # type: ignore[arg-type]
            path=entry.path,
            size=entry.size,
            mode=entry.mode,
            uid=entry.uid,
            gid=entry.gid,
            atime=entry.atime,
            mtime=entry.mtime,
            ctime=entry.ctime,
            target=entry.target,
        )


class PathChange(WireModel):
    """``PATCH /volumecontent/{id}/path``: the new owner, group or mode."""

    uid: int | None = Field(default=None, ge=0, le=MAX_ID)
    gid: int | None = Field(default=None, ge=0, le=MAX_ID)
    mode: int | None = Field(default=None, ge=0, le=0o7777)
