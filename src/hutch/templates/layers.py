"""The layer cache: each file-changing build step's result, a directory of overlay changes (whiteouts
included), stored under a key made from everything that decides its content.

A template's root filesystem is a chain of layers over a base, mounted as one overlay (top first, joined
with ``:`` as overlayfs's ``lowerdir`` wants). Layers are never changed once published, so any number of
templates and sandboxes share them; a layer is built in a partial directory and renamed into place.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import uuid
from pathlib import Path
from typing import Any

# overlayfs takes its options in one page: longer chains are flattened into one layer.
MAX_CHAIN_CHARS = 3000


def key(*parts: Any) -> str:
    """A layer key: a digest of ``parts`` (JSON-encoded)."""
    encoded = json.dumps(parts, sort_keys=True, separators=(",", ":")).encode()
    return hashlib.sha256(encoded).hexdigest()[:32]


def join(chain: list[Path]) -> str:
    """The chain (top first) as overlayfs's ``lowerdir``."""
    return ":".join(str(path) for path in chain)


def split(rootfs: str) -> list[Path]:
    return [Path(part) for part in rootfs.split(":") if part]


def identity(chain: list[Path]) -> list[str]:
    """What identifies a chain's content: each directory's path, inode and change time (a base rebuilt in
    place gets a new directory, so layers over the old one are not reused)."""
    found = []
    for path in chain:
        stat = os.stat(path)
        found.append(f"{path}:{stat.st_ino}:{stat.st_mtime_ns}")
    return found


class LayerStore:
    """Layers under ``<cache_dir>/layers/<key>``."""

    def __init__(self, cache_dir: Path) -> None:
        self.root = Path(cache_dir) / "layers"

    def path(self, layer_key: str) -> Path:
        return self.root / layer_key

    def has(self, layer_key: str) -> bool:
        return self.path(layer_key).is_dir()

    def partial(self) -> Path:
        """A fresh path (not created) to build a layer in."""
        self.root.mkdir(parents=True, exist_ok=True)
        return self.root / f".partial-{uuid.uuid4().hex}"

    def publish(self, partial: Path, layer_key: str) -> Path:
        """Move a finished layer into place; when another build published the same key first, keep that."""
        target = self.path(layer_key)
        try:
            partial.rename(target)
        except OSError:
            if not target.is_dir():
                raise
            shutil.rmtree(partial, ignore_errors=True)
        return target

    def discard(self, partial: Path) -> None:
        shutil.rmtree(partial, ignore_errors=True)
