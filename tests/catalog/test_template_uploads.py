"""A cluster's uploads in the catalog: stored in chunks, read back in order, summed per template, removed
with their template (SQLite and PostgreSQL)."""

from __future__ import annotations

from collections.abc import AsyncIterator

from hutch.catalog import Catalog, register_template
from hutch.catalog.models import TemplateUpload
from hutch.catalog.repos import template_uploads, templates

HASH = "ab" * 32


async def _chunks(*parts: bytes) -> AsyncIterator[bytes]:
    for part in parts:
        yield part


async def _store(catalog: Catalog, template_id: str, parts: list[bytes]) -> None:
    async with catalog.transaction() as session:
        upload = TemplateUpload(
            template_id=template_id, files_hash=HASH, size=sum(map(len, parts)), digest="d"
        )
        await template_uploads.add(session, upload, _chunks(*parts))


async def test_an_upload_comes_back_whole_and_in_order(catalog: Catalog) -> None:
    await register_template(catalog, template_id="tpl", rootfs="/")
    parts = [bytes([i]) * (1000 + i) for i in range(40)]  # more chunks than one read takes
    await _store(catalog, "tpl", parts)
    async with catalog.transaction() as session:
        assert b"".join([chunk async for chunk in template_uploads.read(session, "tpl", HASH)]) == b"".join(
            parts
        )
        assert await template_uploads.size_of(session, ["tpl", "other"]) == sum(map(len, parts))
        assert await template_uploads.size_of(session, []) == 0


async def test_uploads_go_with_their_template(catalog: Catalog) -> None:
    await register_template(catalog, template_id="tpl", rootfs="/")
    await _store(catalog, "tpl", [b"x" * 10])
    async with catalog.transaction() as session:
        await templates.remove(session, await templates.get(session, "tpl"))  # type: ignore[arg-type]
    async with catalog.transaction() as session:
        assert await template_uploads.get(session, "tpl", HASH) is None
        assert [chunk async for chunk in template_uploads.read(session, "tpl", HASH)] == []


async def test_remove_template_drops_bytes_and_rows(catalog: Catalog) -> None:
    await register_template(catalog, template_id="tpl", rootfs="/")
    await _store(catalog, "tpl", [b"y" * 10, b"z" * 5])
    async with catalog.transaction() as session:
        await template_uploads.remove_template(session, "tpl")
    async with catalog.transaction() as session:
        assert await template_uploads.size_of(session, ["tpl"]) == 0
