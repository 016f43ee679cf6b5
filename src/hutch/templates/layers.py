"""The layer cache: each file-changing build step's result, a directory of overlay changes (whiteouts
included), stored under a key made from everything that decides its content: the key below it, the step,
the build's state, the server's digest of a ``COPY`` step's files (never the client's word), and the team
whose build made it. Keys are per team from the base up, so no team's build, forced or not, ever makes or
replaces a layer another team's build reuses; only the base below them (the built-in template, a public
image by digest) is shared.

A template's root filesystem is a chain of layers over a base, mounted as one overlay (top first, joined
with ``:`` as overlayfs's ``lowerdir`` wants). A layer's directory (``data/<id>``) never changes once
published, so any number of templates and sandboxes share it; the key is a symbolic link to it, which a
forced rebuild points at a new directory while the templates made from the old one keep theirs. Layers are
built in a partial directory and renamed into place.
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
    """Layers under ``<cache_dir>/layers/data/<id>``, found by their keys (``<cache_dir>/layers/<key>``)."""

    def __init__(self, cache_dir: Path) -> None:
        self.root = Path(cache_dir) / "layers"
        self.data = self.root / "data"

    def path(self, layer_key: str) -> Path:
        """The directory of the layer ``layer_key`` names now."""
        return (self.root / layer_key).resolve()

    def has(self, layer_key: str) -> bool:
        return (self.root / layer_key).is_dir()

    def partial(self) -> Path:
        """A fresh path (not created) to build a layer in."""
        self.data.mkdir(parents=True, exist_ok=True)
        return self.data / f".partial-{uuid.uuid4().hex}"

    def publish(self, partial: Path, layer_key: str) -> Path:
        """Move a finished layer into place and point ``layer_key`` at it; returns its directory."""
        target = self.data / uuid.uuid4().hex
        partial.rename(target)
        link = self.root / f".{layer_key}.{target.name}"
        link.symlink_to(Path("data") / target.name)
        os.replace(link, self.root / layer_key)
        return target

    def discard(self, partial: Path) -> None:
        shutil.rmtree(partial, ignore_errors=True)
