"""Per-sandbox root filesystems: an overlay whose writable layer is the sandbox's, over the template's."""

from __future__ import annotations

import shutil
from pathlib import Path

from .linux import detach, mount


class Overlay:
    """One sandbox's overlay directories: ``upper`` (its writes) and ``work`` in ``layer`` (the sandbox's
    disk), and ``merged`` (its root)."""

    def __init__(self, sandbox_dir: Path, lower: Path, layer: Path) -> None:
        self.lower = lower
        self.upper = layer / "upper"
        self.work = layer / "work"
        self.merged = sandbox_dir / "rootfs"

    def mount(self) -> None:
        for directory in (self.upper, self.work, self.merged):
            directory.mkdir(parents=True, exist_ok=True)
        options = f"lowerdir={self.lower},upperdir={self.upper},workdir={self.work}"
        mount("overlay", str(self.merged), "overlay", 0, options)

    def unmount(self) -> None:
        detach(str(self.merged))


def remove_tree(path: Path) -> None:
    """Delete a sandbox's directory (after its overlay is unmounted)."""
    shutil.rmtree(path, ignore_errors=True)
