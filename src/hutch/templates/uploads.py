"""The files of ``COPY`` steps: one archive per template and files hash, uploaded before the build through
a URL that authorises itself (the SDK sends the upload without its API key), as S3's presigned URLs do.

The URL carries an expiry and an HMAC of template, hash and expiry under the node's upload key
(``<data_dir>/secrets/upload.key``, made once, readable by root only).
"""

from __future__ import annotations

import hashlib
import hmac
import shutil
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

from ..errors import InvalidRequest, QuotaExceeded, Unauthenticated
from ..secret_files import load_or_create

URL_TTL_S = 3600


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

    async def receive(self, template_id: str, files_hash: str, chunks: AsyncIterator[bytes]) -> int:
        """Store an upload (replacing any earlier one); returns its size. Larger than the limit: refused,
        nothing kept."""
        target = self.path(template_id, files_hash)
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(f".{files_hash}.{uuid.uuid4().hex}")
        size = 0
        try:
            with open(partial, "wb") as out:
                async for chunk in chunks:
                    size += len(chunk)
                    if size > self.max_bytes:
                        raise QuotaExceeded(f"the upload is larger than {self.max_bytes} bytes")
                    out.write(chunk)
            if size == 0:
                raise InvalidRequest("the upload is empty")
            partial.replace(target)
        finally:
            partial.unlink(missing_ok=True)
        return size

    def remove_template(self, template_id: str) -> None:
        shutil.rmtree(self.root / template_id, ignore_errors=True)

    def _signature(self, template_id: str, files_hash: str, expires: int) -> str:
        message = f"{template_id}\0{files_hash}\0{expires}".encode()
        return hmac.new(self._key, message, hashlib.sha256).hexdigest()
