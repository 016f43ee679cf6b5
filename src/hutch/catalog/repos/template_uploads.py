"""A cluster's ``COPY`` uploads: stored in chunks, found by template and files hash, read back in order,
summed per team for its quota, removed with their template."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable

from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from ..models import TemplateUpload, TemplateUploadChunk

# Chunks read per query when an upload is read back.
_READ_BATCH = 16


async def get(session: AsyncSession, template_id: str, files_hash: str) -> TemplateUpload | None:
    return await session.get(TemplateUpload, (template_id, files_hash))


async def add(session: AsyncSession, upload: TemplateUpload, chunks: AsyncIterator[bytes]) -> TemplateUpload:
    """Store the upload and its bytes (``chunks`` in order)."""
    session.add(upload)
    await session.flush()
    seq = 0
    async for chunk in chunks:
        session.add(
            TemplateUploadChunk(
                template_id=upload.template_id, files_hash=upload.files_hash, seq=seq, data=chunk
            )
        )
        seq += 1
        if seq % _READ_BATCH == 0:
            await session.flush()
            session.expunge_all()
    await session.flush()
    return upload


async def read(session: AsyncSession, template_id: str, files_hash: str) -> AsyncIterator[bytes]:
    """The upload's bytes, chunk by chunk."""
    seq = 0
    while True:
        rows = await session.scalars(
            select(TemplateUploadChunk.data)
            .where(
                TemplateUploadChunk.template_id == template_id,
                TemplateUploadChunk.files_hash == files_hash,
                TemplateUploadChunk.seq >= seq,
            )
            .order_by(TemplateUploadChunk.seq)
            .limit(_READ_BATCH)
        )
        batch = list(rows)
        for data in batch:
            yield data
        if len(batch) < _READ_BATCH:
            return
        seq += len(batch)


async def size_of(session: AsyncSession, template_ids: Iterable[str]) -> int:
    """The bytes the uploads of these templates take."""
    ids = list(template_ids)
    if not ids:
        return 0
    total = await session.scalar(
        select(func.sum(TemplateUpload.size)).where(TemplateUpload.template_id.in_(ids))
    )
    return int(total or 0)


async def remove_template(session: AsyncSession, template_id: str) -> None:
    await session.execute(delete(TemplateUploadChunk).where(TemplateUploadChunk.template_id == template_id))
    await session.execute(delete(TemplateUpload).where(TemplateUpload.template_id == template_id))
