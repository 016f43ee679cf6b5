"""The files of ``COPY`` steps: one archive per template and files hash, uploaded before the build through
a URL that authorises itself (the SDK sends the upload without its API key), as S3's presigned URLs do.

The URL carries an expiry and an HMAC of template, hash and expiry under the node's upload key
(``<data_dir>/secrets/upload.key``, made once, readable by root only).

The files hash is the client's name for the archive, not proof of its content: the SDKs hash the copied
files' paths, modes, sizes and contents together with the step's ``src`` and ``dest``, which arrive only with
the build, after the upload, and the JavaScript SDK also hashes each directory's size, which depends on the
client's filesystem and is in no archive. So the server digests every upload itself (sha256 of the bytes,
as they arrive) and the layer cache is keyed on that digest. A stored archive never changes: an upload of
other bytes under a name already taken is refused.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import os
import shutil
import time
import uuid
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from ..errors import Conflict, HutchError, InvalidRequest, QuotaExceeded, Unauthenticated
from ..private_files import private_directory
from ..secret_files import load_or_create

URL_TTL_S = 3600


@dataclass(frozen=True)
class Upload:
    """A stored archive: its size in bytes and the sha256 of its bytes."""

    size: int
    digest: str


class UploadStore:
    """Archives under ``<data_dir>/template-files/<template id>/<hash>``."""

    def __init__(self, data_dir: Path, *, max_bytes: int) -> None:
        self.root = Path(data_dir) / "template-files"
        self.max_bytes = max_bytes
        self._key = load_or_create(Path(data_dir) / "secrets" / "upload.key")

    def path(self, template_id: str, files_hash: str) -> Path:
        return self.root / template_id / files_hash

    def has(self, template_id: str, files_hash: str) -> bool:
        return self.path(template_id, files_hash).is_file()

    async def contains(self, template_id: str, files_hash: str) -> bool:
        """Whether the archive was uploaded (:meth:`has`, as the services ask it of any store)."""
        return self.has(template_id, files_hash)

    async def used(self, template_ids: Iterable[str]) -> int:
        """The bytes the archives of these templates take (:meth:`size_of`, off the event loop)."""
        return await asyncio.to_thread(self.size_of, list(template_ids))

    async def forget(self, template_id: str) -> None:
        """Remove the template's archives (:meth:`remove_template`)."""
        self.remove_template(template_id)

    def sign(self, template_id: str, files_hash: str, *, now: float | None = None) -> tuple[int, str]:
        """An expiry (unix seconds) and the signature that lets an upload through until then."""
        expires = int((now or time.time()) + URL_TTL_S)
        return expires, self._signature(template_id, files_hash, expires)

    def verify(self, template_id: str, files_hash: str, expires: int, signature: str) -> None:
        if expires < time.time():
            raise Unauthenticated("the upload URL has expired; ask for a new one")
        wanted = self._signature(template_id, files_hash, expires)
        if not hmac.compare_digest(wanted, signature):
            raise Unauthenticated("invalid upload signature")

    async def receive(
        self,
        template_id: str,
        files_hash: str,
        chunks: AsyncIterator[bytes],
        *,
        room_bytes: int | None = None,
        room_error: HutchError | None = None,
    ) -> Upload:
        """Store an upload, digesting it as it arrives. Larger than the store's limit: refused; larger than
        ``room_bytes`` (what the team's quota leaves): ``room_error``; either way nothing is kept. The same
        bytes again: kept as they are; other bytes under a name already stored: ``Conflict``."""
        target = self.path(template_id, files_hash)
        private_directory(self.root)
        private_directory(target.parent)
        partial = target.with_name(f".{files_hash}.{uuid.uuid4().hex}")
        digest = hashlib.sha256()
        size = 0
        try:
            with open(partial, "xb", opener=_private) as out:
                async for chunk in chunks:
                    size += len(chunk)
                    if size > self.max_bytes:
                        raise QuotaExceeded(f"the upload is larger than {self.max_bytes} bytes")
                    if room_bytes is not None and size > room_bytes:
                        raise room_error or QuotaExceeded("the team's uploads take all the room they may")
                    digest.update(chunk)
                    out.write(chunk)
            if size == 0:
                raise InvalidRequest("the upload is empty")
            received = Upload(size, digest.hexdigest())
            try:
                os.link(partial, target)
            except FileExistsError:
                if await asyncio.to_thread(_digest_of_path, target) != received.digest:
                    raise Conflict(
                        f"files {files_hash} of this template were already uploaded with other content"
                    ) from None
        finally:
            partial.unlink(missing_ok=True)
        return received

    def open(self, template_id: str, files_hash: str) -> BinaryIO:
        """The stored archive, open for reading (``FileNotFoundError`` when it was not uploaded)."""
        return open(self.path(template_id, files_hash), "rb")

    def size_of(self, template_ids: Iterable[str]) -> int:
        """The bytes the archives of these templates take."""
        total = 0
        for template_id in template_ids:
            directory = self.root / template_id
            if directory.is_dir():
                total += sum(entry.stat().st_size for entry in os.scandir(directory) if entry.is_file())
        return total

    def remove_template(self, template_id: str) -> None:
        shutil.rmtree(self.root / template_id, ignore_errors=True)

    def _signature(self, template_id: str, files_hash: str, expires: int) -> str:
        message = f"{template_id}\0{files_hash}\0{expires}".encode()
        return hmac.new(self._key, message, hashlib.sha256).hexdigest()


def _digest_of_path(path: Path) -> str:
    with open(path, "rb") as archive:
        return digest_of(archive)


def digest_of(archive: BinaryIO) -> str:
    """The sha256 of an open archive's bytes (read from its start; left at its start)."""
    archive.seek(0)
    digest = hashlib.file_digest(archive, "sha256").hexdigest()
    archive.seek(0)
    return digest


def _private(path: str, flags: int) -> int:
    """``open``'s opener for files only root may read (an upload may hold a team's secrets)."""
    return os.open(path, flags | os.O_NOFOLLOW, 0o600)
