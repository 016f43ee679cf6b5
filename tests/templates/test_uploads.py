"""``COPY`` uploads: digested as they arrive, bounded in size by the store and by the team's room, and never
replaced by other bytes under the same name."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from hutch.errors import Conflict, InvalidRequest, QuotaExceeded
from hutch.templates.uploads import UploadStore, digest_of

FILES_HASH = "ab" * 32


async def _chunks(*parts: bytes) -> AsyncIterator[bytes]:
    for part in parts:
        yield part


async def test_an_upload_is_digested_as_it_arrives(tmp_path: Path) -> None:
    store = UploadStore(tmp_path, max_bytes=1 << 20)
    upload = await store.receive("tpl", FILES_HASH, _chunks(b"tar ", b"bytes"))
    assert upload.size == 9 and upload.digest == hashlib.sha256(b"tar bytes").hexdigest()
    with store.open("tpl", FILES_HASH) as archive:
        assert digest_of(archive) == upload.digest and archive.read() == b"tar bytes"


async def test_other_bytes_under_a_stored_name_are_refused(tmp_path: Path) -> None:
    store = UploadStore(tmp_path, max_bytes=1 << 20)
    await store.receive("tpl", FILES_HASH, _chunks(b"first"))
    assert (await store.receive("tpl", FILES_HASH, _chunks(b"fir", b"st"))).size == 5
    with pytest.raises(Conflict, match="already uploaded with other content"):
        await store.receive("tpl", FILES_HASH, _chunks(b"poison"))
    assert store.path("tpl", FILES_HASH).read_bytes() == b"first"
    assert sorted(path.name for path in (tmp_path / "template-files/tpl").iterdir()) == [FILES_HASH]


async def test_an_upload_beyond_the_limit_or_the_teams_room_keeps_nothing(tmp_path: Path) -> None:
    store = UploadStore(tmp_path, max_bytes=10)
    with pytest.raises(QuotaExceeded, match="larger than 10 bytes"):
        await store.receive("tpl", FILES_HASH, _chunks(b"123456", b"789012"))
    room = QuotaExceeded("quota upload_mb exceeded")
    with pytest.raises(QuotaExceeded, match="quota upload_mb"):
        await store.receive("tpl", FILES_HASH, _chunks(b"1234", b"5678"), room_bytes=5, room_error=room)
    with pytest.raises(InvalidRequest, match="empty"):
        await store.receive("tpl", FILES_HASH, _chunks())
    assert not any((tmp_path / "template-files/tpl").iterdir())
    assert store.size_of(["tpl", "other"]) == 0
    await store.receive("tpl", FILES_HASH, _chunks(b"1234"), room_bytes=5, room_error=room)
    assert store.size_of(["tpl"]) == 4
