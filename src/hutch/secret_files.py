"""Random keys kept in files readable by root only, made on first use (``<data_dir>/secrets/…``): the
upload signing key, the node key with which the proxy asks the node's API for internal work, and the
operator key with which ``hutch team`` manages teams (``/admin``)."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from .private_files import FILE_MODE, private_directory


def load_or_create(path: Path, size: int = 32) -> bytes:
    """The key in ``path``; a new random one if there is none (two processes racing agree on one)."""
    try:
        return path.read_bytes()
    except FileNotFoundError:
        private_directory(path.parent)
        partial = path.with_name(f".{path.name}.{secrets.token_hex(6)}")
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
        with os.fdopen(os.open(partial, flags, FILE_MODE), "wb") as file:
            file.write(secrets.token_bytes(size))
        try:
            os.link(partial, path)  # fails if another process made it first: its key wins
        except FileExistsError:
            pass
        finally:
            partial.unlink()
        return path.read_bytes()


# The header the node key travels in.
NODE_KEY_HEADER = "X-Hutch-Node-Key"


def node_key(data_dir: Path) -> str:
    """The node key, as text for an HTTP header."""
    return load_or_create(Path(data_dir) / "secrets" / "node.key").hex()


# The header the operator key travels in.
OPERATOR_KEY_HEADER = "X-Hutch-Operator-Key"


def operator_key_path(data_dir: Path, file: Path | None = None) -> Path:
    """Where the operator key is: ``file`` when the operator names one (``api.operator_key_file``)."""
    return file if file is not None else Path(data_dir) / "secrets" / "operator.key"


def operator_key(data_dir: Path, file: Path | None = None) -> str:
    """The operator key, as text for an HTTP header (made if there is none; a named file must exist)."""
    if file is not None:
        return file.read_bytes().hex()
    return load_or_create(operator_key_path(data_dir)).hex()
