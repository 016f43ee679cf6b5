"""A sandbox's disk: its writable layer lives on a file system of its own, whose size is the quota.

The file system is ext4 in a sparse file in the sandbox's directory, mounted through a loop device. A
sandbox that fills it gets ``ENOSPC`` (envd answers 507, the SDK raises ``NotEnoughSpaceException``) and
the host's disk, other sandboxes and Hutch are not touched. The sparse file takes host space only for what
the sandbox writes. Making one costs a few milliseconds, paid by the warm pool ahead of a create.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from ...errors import BackendUnavailable
from ..linux import detach

# No journal (the layer dies with its sandbox), nothing reserved for root, inode tables initialised lazily.
_MKFS = ["mkfs.ext4", "-q", "-F", "-m", "0", "-O", "^has_journal", "-E", "lazy_itable_init=1,nodiscard"]


def _run(command: list[str]) -> None:
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        raise BackendUnavailable(f"{command[0]} failed: {done.stderr.strip()}")


class Disk:
    """``<sandbox>/disk.img`` mounted at ``<sandbox>/layer``, ``size_mb`` large."""

    def __init__(self, sandbox_dir: Path, size_mb: int) -> None:
        self.image = sandbox_dir / "disk.img"
        self.mountpoint = sandbox_dir / "layer"
        self.size_mb = size_mb

    def create(self) -> None:
        """Make and mount the file system (a loop device that frees itself at unmount)."""
        with open(self.image, "wb") as image:
            os.ftruncate(image.fileno(), self.size_mb * 1024 * 1024)
        os.chmod(self.image, 0o600)
        _run([*_MKFS, str(self.image)])
        self.mountpoint.mkdir(exist_ok=True)
        _run(["mount", "-o", "loop,nosuid,nodev", str(self.image), str(self.mountpoint)])

    def remove(self) -> None:
        """Unmount; safe when it was never mounted. The image goes with the sandbox's directory."""
        detach(str(self.mountpoint))
