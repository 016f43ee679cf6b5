"""The server key and what is derived from it: the Fernet key that seals secrets' values in the catalog,
the HMAC key whose MAC of a volume's id is that volume's token (so a token is given again without being
stored, and one volume's token never opens another), and the HMAC key that signs dashboard sessions.

The key is ``api.server_key_file`` if set, else ``<data_dir>/secrets/server.key`` (made on first use); a
cluster without a file derives it from the cluster secret, which every API replica has.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken

from ...errors import BackendUnavailable
from ...secret_files import load_or_create


def _derive(key: bytes, purpose: bytes) -> bytes:
    return hmac.new(key, purpose, hashlib.sha256).digest()


class ServerKeys:
    """The keys derived from one server key."""

    def __init__(self, key: bytes) -> None:
        if len(key) < 32:
            raise ValueError("the server key must be at least 32 bytes")
        self._fernet = Fernet(base64.urlsafe_b64encode(_derive(key, b"hutch secrets at rest")))
        self._tokens = _derive(key, b"hutch volume tokens")
        self._sessions = _derive(key, b"hutch dashboard sessions")

    @classmethod
    def load(cls, *, data_dir: Path, file: Path | None, cluster_key: str | None) -> ServerKeys:
        """The installation's keys: from ``file``, else derived from ``cluster_key``, else from
        ``<data_dir>/secrets/server.key``."""
        if file is not None:
            return cls(file.read_bytes())
        if cluster_key is not None:
            return cls(_derive(cluster_key.encode(), b"hutch server key"))
        return cls(load_or_create(Path(data_dir) / "secrets" / "server.key"))

    def seal(self, value: str) -> bytes:
        return self._fernet.encrypt(value.encode())

    def open(self, sealed: bytes) -> str:
        try:
            return self._fernet.decrypt(sealed).decode()
        except InvalidToken as error:  # the key changed: the value cannot be read back
            raise BackendUnavailable("a stored secret cannot be read with this server's key") from error

    def volume_token(self, volume_id: str) -> str:
        mac = hmac.new(self._tokens, f"volume:{volume_id}".encode(), hashlib.sha256).digest()
        return "vol_" + base64.urlsafe_b64encode(mac).decode().rstrip("=")

    def volume_token_matches(self, volume_id: str, token: str) -> bool:
        """Whether ``token`` is ``volume_id``'s (in constant time)."""
        return hmac.compare_digest(self.volume_token(volume_id).encode(), token.encode("utf-8", "replace"))

    def session_mac(self, payload: bytes) -> bytes:
        """The MAC that makes ``payload`` a dashboard session this server issued."""
        return hmac.new(self._sessions, payload, hashlib.sha256).digest()
