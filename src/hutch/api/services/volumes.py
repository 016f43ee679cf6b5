"""A team's volumes (E2B's ``/volumes``) and their content (``/volumecontent/{id}/…``).

A volume lives on one node, chosen when it is made (``home``) and recorded on its row; its content calls go
to that node, and every sandbox that mounts it runs there. Each has a size (``volume_size_mb``, its quota on
the node, a 507 when full), within the team's ``volumes`` and ``volume_disk_mb`` quotas. Its token is the MAC
of its id under the server key: retrievable without being stored, compared in constant time, and one
volume's token never opens another. A volume that a sandbox (running, paused or on a lost node) mounts is
not deleted (``Conflict`` naming the sandbox).
"""

from __future__ import annotations

import logging
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import PurePosixPath

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from ...catalog import Catalog
from ...catalog.models import Template, Volume
from ...catalog.repos import sandboxes, volumes
from ...errors import Conflict, HutchError, InvalidRequest, NotFound, Unauthenticated
from ...ids import new_id
from ...runtime.node_client import NodeClient, VolumeEntry
from ..ratelimit import RateLimiter
from . import quotas
from .server_keys import ServerKeys

log = logging.getLogger(__name__)

# Where a new volume of ``size_mb`` MiB goes: the node's id and the node.
VolumeHome = Callable[[int], Awaitable[tuple[str, NodeClient]]]

NAME = re.compile(r"^[A-Za-z0-9-]{1,64}$")
MAX_PATH = 4096
MAX_DEPTH = 16
MAX_MOUNTS = 16
# Mount points no volume may cover.
_RESERVED = ("/proc", "/sys", "/dev")


def check_name(name: str) -> str:
    if not NAME.fullmatch(name):
        raise InvalidRequest(f"volume name {name[:100]!r} must be 1 to 64 letters, digits and hyphens")
    return name


def check_path(path: str) -> str:
    """A path in a volume, as the content API takes it (the node keeps it inside the volume)."""
    if not path or len(path) > MAX_PATH or "\x00" in path:
        raise InvalidRequest(f"path must be 1 to {MAX_PATH} characters, without NUL")
    return path


def check_mount_path(path: str) -> str:
    """Where a volume appears in a sandbox: absolute, normal (no ``.``, ``..`` or ``//``), not ``/`` nor
    under /proc, /sys or /dev."""
    if not path.startswith("/") or len(path) > 1024 or re.search(r"[\x00-\x1f\x7f]", path):
        raise InvalidRequest(f"volume mount path {path[:200]!r} must be an absolute path")
    parts = path.split("/")[1:]
    if any(part in ("", ".", "..") for part in parts) and path != "/":
        raise InvalidRequest(f"volume mount path {path[:200]!r} must be normal (no '.', '..' or '//')")
    normal = str(PurePosixPath(path))
    if normal == "/" or any(normal == r or normal.startswith(r + "/") for r in _RESERVED):
        raise InvalidRequest(f"a volume cannot be mounted at {normal!r}")
    return normal


async def mounts_for(
    session: AsyncSession, *, team_id: str, template: Template, asked: list[tuple[str, str]]
) -> tuple[list[dict[str, str]], str | None]:
    """The volumes a new sandbox mounts ([{"volume_id", "name", "path"}]): a snapshot's, then those
    ``asked`` by name (replacing one at the same path); and the node they all live on (None: no volume).
    An unknown name, a volume gone since the snapshot, or volumes on different nodes are
    ``InvalidRequest``."""
    by_path: dict[str, dict[str, str]] = {}
    kept = {mount["volume_id"]: mount["path"] for mount in template.volume_mounts}
    found = await volumes.by_ids(session, set(kept))
    for volume_id, path in kept.items():
        volume = found.get(volume_id)
        if volume is None or volume.team_id != team_id:
            raise InvalidRequest(f"the snapshot mounts volume {volume_id}, which no longer exists")
        by_path[path] = {"volume_id": volume_id, "name": volume.name, "path": path, "node_id": volume.node_id}
    named = await volumes.by_names(session, team_id=team_id, names={name for name, _ in asked})
    for name, path in asked:
        volume = named.get(name)
        if volume is None:
            raise InvalidRequest(f"volumeMounts: the team has no volume named {name!r}")
        by_path[path] = {"volume_id": volume.volume_id, "name": name, "path": path, "node_id": volume.node_id}
    homes = {mount.pop("node_id") for mount in by_path.values()}
    if len(homes) > 1:
        raise InvalidRequest(
            "volumeMounts: these volumes live on different nodes and a sandbox runs on one node; mount"
            " volumes made on the same node (see docs/volumes.md)"
        )
    return list(by_path.values()), next(iter(homes), None)


class VolumeService:
    """The operations behind ``/volumes`` and ``/volumecontent``."""

    def __init__(
        self,
        *,
        catalog: Catalog,
        keys: ServerKeys,
        home: VolumeHome,
        holding: Callable[[str], Awaitable[NodeClient]],
        limiter: RateLimiter | None = None,
    ) -> None:
        self._catalog = catalog
        self._limiter = limiter
        self._keys = keys
        self._home = home
        self._holding = holding
        self._count = quotas.Holds("volumes")
        self._disk = quotas.Holds("volume_disk_mb")

    def token(self, volume: Volume) -> str:
        return self._keys.volume_token(volume.volume_id)

    async def create(self, *, team_id: str, name: str) -> Volume:
        """A new empty volume of the team's ``volume_size_mb``; ``Conflict`` if the team has one of that
        name."""
        check_name(name)
        async with self._catalog.transaction() as session:
            size_mb = await quotas.limit(session, team_id, "volume_size_mb")
            if await volumes.by_names(session, team_id=team_id, names={name}):
                raise Conflict(f"a volume named {name!r} exists already")
        async with (
            self._count.hold(self._catalog, team_id, 1, volumes.count),
            self._disk.hold(self._catalog, team_id, size_mb, volumes.total_mb),
        ):
            node_id, node = await self._home(size_mb)
            row = Volume(volume_id=new_id(), team_id=team_id, name=name, size_mb=size_mb, node_id=node_id)
            await node.create_volume(row.volume_id, size_mb=size_mb)
            try:
                async with self._catalog.transaction() as session:
                    return await volumes.add(session, row)
            except BaseException as error:
                await node.delete_volume(row.volume_id)
                if isinstance(error, IntegrityError):
                    raise Conflict(f"a volume named {name!r} exists already") from error
                raise

    async def of_team(self, *, team_id: str) -> list[Volume]:
        async with self._catalog.transaction() as session:
            return await volumes.of_team(session, team_id)

    async def get(self, *, team_id: str, volume_id: str) -> Volume:
        async with self._catalog.transaction() as session:
            return await volumes.get_or_raise(session, team_id=team_id, volume_id=volume_id)

    async def delete(self, *, team_id: str, volume_id: str) -> None:
        """Delete the volume and its content, unless a sandbox of the team mounts it."""
        async with self._catalog.transaction() as session:
            volume = await volumes.get_or_raise(session, team_id=team_id, volume_id=volume_id)
            users = [
                sandbox.sandbox_id
                for sandbox in await sandboxes.of_team(session, team_id)
                if any(mount["volume_id"] == volume_id for mount in sandbox.volume_mounts)
            ]
        if users:
            raise Conflict(f"volume {volume.name!r} is mounted by sandbox {users[0]}; kill it first")
        node = await self._holding(volume.node_id)
        await node.delete_volume(volume_id)
        async with self._catalog.transaction() as session:
            await volumes.remove(session, volume_id)

    async def discard(self, rows: list[Volume]) -> None:
        """Delete the content of volumes whose rows are gone already (their team was deleted); a node that
        fails is logged, and the volume stays on it."""
        for volume in rows:
            try:
                node = await self._holding(volume.node_id)
                await node.delete_volume(volume.volume_id)
            except HutchError as error:
                log.warning("volume %s stays on node %s: %s", volume.volume_id, volume.node_id, error.message)

    def check_token(self, *, volume_id: str, token: str | None) -> None:
        """``Unauthenticated`` unless ``token`` is the volume's (compared in constant time)."""
        if not token or not self._keys.volume_token_matches(volume_id, token):
            raise Unauthenticated("a valid volume token is required (Authorization: Bearer <token>)")

    async def opened(self, *, volume_id: str, token: str | None) -> tuple[Volume, NodeClient]:
        """The volume whose token ``token`` is, and its node; 401 for a missing or wrong token (checked
        before the volume is looked up, so nothing is told about other ids). The call counts against its
        team's rate of requests, as a call with the team's API key does."""
        self.check_token(volume_id=volume_id, token=token)
        async with self._catalog.transaction() as session:
            volume = await volumes.by_id(session, volume_id)
        if volume is None:
            raise NotFound(f"volume {volume_id!r} not found")
        if self._limiter is not None:
            self._limiter.take(volume.team_id)
        return volume, await self._holding(volume.node_id)

    async def stat(self, *, volume_id: str, token: str | None, path: str) -> VolumeEntry:
        volume, node = await self.opened(volume_id=volume_id, token=token)
        return await node.volume_stat(volume.volume_id, check_path(path))

    async def list_dir(
        self, *, volume_id: str, token: str | None, path: str, depth: int
    ) -> list[VolumeEntry]:
        if not 1 <= depth <= MAX_DEPTH:
            raise InvalidRequest(f"depth must be between 1 and {MAX_DEPTH}")
        volume, node = await self.opened(volume_id=volume_id, token=token)
        return await node.volume_list(volume.volume_id, check_path(path), depth=depth)

    async def make_dir(
        self,
        *,
        volume_id: str,
        token: str | None,
        path: str,
        uid: int | None,
        gid: int | None,
        mode: int | None,
        force: bool,
    ) -> VolumeEntry:
        volume, node = await self.opened(volume_id=volume_id, token=token)
        return await node.volume_make_dir(
            volume.volume_id, check_path(path), uid=uid, gid=gid, mode=mode, force=force
        )

    async def read(self, *, volume_id: str, token: str | None, path: str) -> AsyncIterator[bytes]:
        """The file's content in chunks; its errors (not found, a directory) come before the first chunk."""
        volume, node = await self.opened(volume_id=volume_id, token=token)
        chunks = node.volume_read(volume.volume_id, check_path(path))
        try:
            first = await chunks.__anext__()
        except StopAsyncIteration:
            first = b""

        async def content() -> AsyncIterator[bytes]:
            try:
                if first:
                    yield first
                async for chunk in chunks:
                    yield chunk
            finally:
                close = getattr(chunks, "aclose", None)
                if close is not None:
                    await close()

        return content()

    async def write(
        self,
        *,
        volume_id: str,
        token: str | None,
        path: str,
        chunks: AsyncIterator[bytes],
        uid: int | None,
        gid: int | None,
        mode: int | None,
        force: bool,
    ) -> VolumeEntry:
        volume, node = await self.opened(volume_id=volume_id, token=token)
        return await node.volume_write(
            volume.volume_id, check_path(path), chunks, uid=uid, gid=gid, mode=mode, force=force
        )

    async def change(
        self,
        *,
        volume_id: str,
        token: str | None,
        path: str,
        uid: int | None,
        gid: int | None,
        mode: int | None,
    ) -> VolumeEntry:
        volume, node = await self.opened(volume_id=volume_id, token=token)
        return await node.volume_change(volume.volume_id, check_path(path), uid=uid, gid=gid, mode=mode)

    async def remove(self, *, volume_id: str, token: str | None, path: str) -> None:
        volume, node = await self.opened(volume_id=volume_id, token=token)
        await node.volume_remove(volume.volume_id, check_path(path))
