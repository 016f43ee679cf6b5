"""A cluster's ``COPY`` uploads: taken by whichever API replica the client reaches, kept in the catalog
(where the node that runs the build reads them), under a signing key every replica derives from the
cluster secret, so that an upload URL one replica signed is good at any other. The archive passes through
the replica's own store on its way in (checked against the limits and digested there, then deleted)."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator, Iterable
from pathlib import Path

from sqlalchemy.exc import IntegrityError

from ...catalog import Catalog
from ...catalog.models import TemplateUpload
from ...catalog.repos import template_uploads
from ...errors import Conflict, HutchError
from ...templates.uploads import Upload, UploadStore

CHUNK = 1 << 20


def signing_key(cluster_key: str) -> bytes:
    """The upload key every replica derives from the cluster secret."""
    return hashlib.sha256(b"hutch-uploads\0" + cluster_key.encode()).digest()


class CatalogUploads(UploadStore):
    """:class:`UploadStore` whose archives live in ``catalog``."""

    def __init__(self, catalog: Catalog, data_dir: Path, *, max_bytes: int, cluster_key: str) -> None:
        super().__init__(data_dir, max_bytes=max_bytes)
        self._catalog = catalog
        self._key = signing_key(cluster_key)

    async def contains(self, template_id: str, files_hash: str) -> bool:
        async with self._catalog.transaction() as session:
            return await template_uploads.get(session, template_id, files_hash) is not None

    async def used(self, template_ids: Iterable[str]) -> int:
        async with self._catalog.transaction() as session:
            return await template_uploads.size_of(session, template_ids)

    async def forget(self, template_id: str) -> None:
        async with self._catalog.transaction() as session:
            await template_uploads.remove_template(session, template_id)

    async def receive(
        self,
        template_id: str,
        files_hash: str,
        chunks: AsyncIterator[bytes],
        *,
        room_bytes: int | None = None,
        room_error: HutchError | None = None,
    ) -> Upload:
        spooled = self.path(template_id, files_hash)
        try:
            received = await super().receive(
                template_id, files_hash, chunks, room_bytes=room_bytes, room_error=room_error
            )
            try:
                async with self._catalog.transaction() as session:
                    stored = await template_uploads.get(session, template_id, files_hash)
                    if stored is None:
                        upload = TemplateUpload(
                            template_id=template_id,
                            files_hash=files_hash,
                            size=received.size,
                            digest=received.digest,
                        )
                        await template_uploads.add(session, upload, _read(spooled))
                        return received
            except IntegrityError:  # the same name, uploaded at once through another replica
                async with self._catalog.transaction() as session:
                    stored = await template_uploads.get(session, template_id, files_hash)
            if stored is not None and stored.digest != received.digest:
                raise Conflict(
                    f"files {files_hash} of this template were already uploaded with other content"
                )
            return received
        finally:
            spooled.unlink(missing_ok=True)


async def _read(path: Path) -> AsyncIterator[bytes]:
    with open(path, "rb") as archive:
        while chunk := await asyncio.to_thread(archive.read, CHUNK):
            yield chunk
