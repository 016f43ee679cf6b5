"""A sandbox's disk: its writable layer lives on a file system of its own, whose size is the quota.

The file system is ext4 in a sparse file in the sandbox's directory, mounted through a loop device. A
sandbox that fills it gets ``ENOSPC`` (envd answers 507, the SDK raises ``NotEnoughSpaceException``) and
the host's disk, other sandboxes and Hutch are not touched. The sparse file takes host space only for what
the sandbox writes. Making one costs a few milliseconds, paid by the warm pool ahead of a create.

A disk is a copy of a blank file system of its size (made once by ``mkfs.ext4`` in a directory of blanks;
only its few hundred KiB of data are copied, in the kernel), attached to a loop device and mounted by
system calls: no program is started, and nothing reads the host's mount table.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import threading
from pathlib import Path

from ...errors import BackendUnavailable
from ..linux import MS_NODEV, MS_NOSUID, detach, loop_device, mount

_blanks_made = threading.Lock()

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

    def create(self, blanks: Path) -> None:
        """Make the file system, a copy of the blank of its size in ``blanks``, and mount it (on a loop
        device that frees itself at unmount)."""
        _copy_sparse(_blank(blanks, self.size_mb), self.image)
        self.mountpoint.mkdir(exist_ok=True)
        device, path = loop_device(str(self.image))
        try:
            mount(path, str(self.mountpoint), "ext4", MS_NOSUID | MS_NODEV)
        except OSError as err:
            raise BackendUnavailable(f"the sandbox's disk cannot be mounted: {err}") from err
        finally:
            os.close(device)  # the mount holds the device now; without one it frees itself

    def remove(self) -> None:
        """Unmount; safe when it was never mounted. The image goes with the sandbox's directory."""
        detach(str(self.mountpoint))


def _make(image: Path, size_mb: int) -> None:
    with open(image, "wb") as f:
        os.ftruncate(f.fileno(), size_mb * 1024 * 1024)
    os.chmod(image, 0o600)
    _run([*_MKFS, str(image)])


def _blank(blanks: Path, size_mb: int) -> Path:
    """The blank file system of ``size_mb``, made on first use (named by how ``mkfs`` made it)."""
    recipe = hashlib.sha256(" ".join(_MKFS).encode()).hexdigest()[:12]
    blank = blanks / f"{size_mb}-{recipe}.img"
    if blank.exists():
        return blank
    with _blanks_made:
        if not blank.exists():
            blanks.mkdir(mode=0o700, parents=True, exist_ok=True)
            partial = blank.with_suffix(".partial")
            _make(partial, size_mb)
            partial.replace(blank)
    return blank


def _copy_sparse(source: Path, target: Path) -> None:
    """Copy ``source`` to a new file ``target`` (0600) of its size, its holes left holes."""
    src = os.open(source, os.O_RDONLY | os.O_CLOEXEC)
    try:
        dst = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        try:
            size = os.fstat(src).st_size
            os.ftruncate(dst, size)
            offset = 0
            while offset < size:
                try:
                    start = os.lseek(src, offset, os.SEEK_DATA)
                except OSError:  # ENXIO: only a hole is left
                    break
                end = os.lseek(src, start, os.SEEK_HOLE)
                while start < end:
                    copied = os.copy_file_range(src, dst, end - start, start, start)
                    if copied == 0:
                        raise BackendUnavailable(f"{source} shrank while it was copied")
                    start += copied
                offset = end
        finally:
            os.close(dst)
    finally:
        os.close(src)
