"""Random keys kept in files readable by root only, made on first use (``<data_dir>/secrets/…``): the
upload signing key, and the node key with which the proxy asks the node's API for internal work."""

from __future__ import annotations

import os
import secrets
from pathlib import Path


def load_or_create(path: Path, size: int = 32) -> bytes:
    """The key in ``path``; a new random one if there is none (two processes racing agree on one)."""
    try:
        return path.read_bytes()
    except FileNotFoundError:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        partial = path.with_suffix(f".{os.getpid()}")
        partial.write_bytes(secrets.token_bytes(size))
        partial.chmod(0o600)
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
