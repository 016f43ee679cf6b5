"""Volumes on a node: file systems that outlive sandboxes, mounted read-write in any number of them.

Storage: each volume is ext4 with a journal (it must not lose what was written) in a sparse file,
``<data_dir>/volumes/<volume_id>/volume.img``, whose size is its quota: a sandbox that fills it gets
``ENOSPC``, a write through the node's calls ``OutOfSpace``. It is loop-mounted ``nosuid,nodev`` once on
the node at ``volumes/<volume_id>/mnt`` (the ``volumes`` directory is root's only) when it is made, and
again on first use after the host restarted; it stays mounted until it is deleted or the node stops with
no sandbox using it. The content calls (``volume_files``) work on that mount, through ``safe_path``.

Ownership: a volume stores the ids a sandbox sees (``user`` is 1000; its root directory is 1000:1000, mode
0755, when made), as template layers and snapshots do. gVisor sandboxes run in the host's user namespace
and their gofer writes those very ids, so they get a bind of the volume's mount. crun sandboxes run in a
user namespace (``idmap``: sandbox id N is host id ``FIRST + N``), so they get an idmapped, writable view
of the volume shifted into their range, attached in the sandbox's own directory (root's only) while the
sandbox exists; what they write is stored with the ids they see. The content calls then take and return
the stored ids as they are, the same ids every sandbox sees.

In a sandbox: each ``SandboxSpec.volumes`` entry is a ``rbind`` mount, read-write, ``nosuid,nodev``, at its
path, made by the engine inside the container root. Pauses keep it (the container's configuration names
it; a boot or restore mounts it again), and so do the node's restarts (the spec is in the sandbox's state
file). Snapshots and forks never copy a volume: the copy of a writable layer sees only the empty mount
point (the mount exists in the engine's namespace, not on the host's layer), and a sandbox started from
the snapshot, or a fork, mounts the same volumes as the sandbox it came from: shared, not copied. A volume
is on one node: a sandbox that mounts one cannot move to another node.
"""

from __future__ import annotations

import contextlib
import json
import os
import posixpath
import re
import shutil
import subprocess
import threading
from collections.abc import Iterable
from pathlib import Path

from ...errors import BackendUnavailable, Conflict, InvalidRequest, NotFound
from ...private_files import private_directory, write_private
from ..idmap import IdMap
from ..linux import detach, is_mountpoint, umount
from ..types import Engine, VolumeMount
from .oci import ENVD_PATH, ENVD_PYTHON

MIN_SIZE_MB = 16  # room for ext4's journal and metadata
MAX_SIZE_MB = 16 * 1024 * 1024  # 16 TiB: ext4's limit with 4 KiB blocks
USER_IDS = "1000:1000"  # ``user``, the owner of a new volume's root directory
_ID = re.compile(r"[a-z0-9][a-z0-9-]{0,63}")
# A journal (unlike a sandbox's disk), nothing reserved for root, tables and journal initialised lazily.
_MKFS = [
    "mkfs.ext4", "-q", "-F", "-m", "0",
    "-E", f"lazy_itable_init=1,lazy_journal_init=1,nodiscard,root_owner={USER_IDS}",
]  # fmt: skip
# Paths no volume may cover or sit in: the kernel's, envd's, and the directories envd's mounts are in.
_RESERVED = ("/proc", "/sys", "/dev", ENVD_PATH, ENVD_PYTHON)
_VIEWS = "volumes"  # in a crun sandbox's directory: the idmapped views of its volumes
MAX_MOUNTS = 16
MAX_PATH = 1024


def check_id(volume_id: str) -> str:
    """``volume_id`` if it has a volume id's shape (never a path); ``InvalidRequest`` otherwise."""
    if not isinstance(volume_id, str) or not _ID.fullmatch(volume_id):
        raise InvalidRequest(f"invalid volume id {volume_id!r}")
    return volume_id


def _under(path: str, top: str) -> bool:
    return path == top or path.startswith(top.rstrip("/") + "/")


def check_mounts(mounts: Iterable[VolumeMount]) -> list[VolumeMount]:
    """The mounts of a spec, checked: known id shapes; absolute, normalised paths other than ``/``, outside
    the kernel's and envd's paths; none repeated and none inside another. ``InvalidRequest`` names the
    first bad path."""
    checked = list(mounts)
    if len(checked) > MAX_MOUNTS:
        raise InvalidRequest(f"at most {MAX_MOUNTS} volumes can be mounted in a sandbox")
    for mount in checked:
        check_id(mount.volume_id)
        path = mount.path
        if (
            not isinstance(path, str)
            or not path.startswith("/")
            or path.startswith("//")
            or posixpath.normpath(path) != path
            or path == "/"
            or len(path) > MAX_PATH
            or any(c in path for c in "\0\n,:")
        ):
            raise InvalidRequest(f"invalid volume mount path {path!r}: it must be absolute and normalised")
        if any(_under(path, top) or _under(top, path) for top in _RESERVED):
            raise InvalidRequest(f"a volume cannot be mounted at {path!r}: the sandbox's system uses it")
    for mount in checked:
        for other in checked:
            if other is not mount and _under(mount.path, other.path):
                raise InvalidRequest(f"volume mount path {mount.path!r} repeats or is inside {other.path!r}")
    return checked


class Volumes:
    """The node's volumes in ``directory`` (``<data_dir>/volumes``); ``ids`` shifts crun sandboxes' views."""

    def __init__(self, directory: Path, ids: IdMap) -> None:
        self.directory = Path(os.path.realpath(directory))  # as the loop devices name their files
        self.ids = ids
        self._lock = threading.Lock()  # mounting, unmounting, making and deleting: one at a time
        # The sandboxes whose views or mounts were made here and not yet released (by volume id).
        self.users: dict[str, set[str]] = {}

    def image(self, volume_id: str) -> Path:
        return self.directory / check_id(volume_id) / "volume.img"

    def mountpoint(self, volume_id: str) -> Path:
        return self.directory / check_id(volume_id) / "mnt"

    def exists(self, volume_id: str) -> bool:
        return self.image(volume_id).is_file()

    # -- making, mounting, deleting (blocking: run in a thread) -------------------------------------------

    def create(self, volume_id: str, size_mb: int) -> None:
        """Make and mount an empty volume of ``size_mb`` MiB; ``Conflict`` if it exists."""
        if not MIN_SIZE_MB <= size_mb <= MAX_SIZE_MB:
            raise InvalidRequest(f"a volume's size must be {MIN_SIZE_MB} to {MAX_SIZE_MB} MiB, not {size_mb}")
        with self._lock:
            private_directory(self.directory)
            home = self.directory / check_id(volume_id)
            try:
                home.mkdir(mode=0o700)
            except FileExistsError:
                raise Conflict(f"volume {volume_id} already exists on this node") from None
            try:
                image = self.image(volume_id)
                with open(image, "xb") as file:
                    os.ftruncate(file.fileno(), size_mb * 1024 * 1024)
                os.chmod(image, 0o600)
                _run([*_MKFS, str(image)])
                self._mount(volume_id)
                top = self.mountpoint(volume_id)
                shutil.rmtree(top / "lost+found")  # e2fsck makes it again when it needs it
                os.chmod(top, 0o755)
                write_private(home / "volume.json", json.dumps({"size_mb": size_mb, "base": _used(top)}))
            except BaseException:
                detach(str(self.mountpoint(volume_id)))
                shutil.rmtree(home, ignore_errors=True)
                raise

    def ensure_mounted(self, volume_id: str, user: str | None = None) -> Path:
        """The volume's mount point, mounted if it was not (after a restart of the host), with the sandbox
        ``user`` (if any) counted as using it from now on; ``NotFound`` for a volume this node lacks."""
        top = self.mountpoint(volume_id)
        with self._lock:
            if not self.exists(volume_id):
                raise NotFound(f"volume {volume_id} is not on this node")
            if not is_mountpoint(str(top)):
                self._mount(volume_id)
            if user is not None:
                self.users.setdefault(volume_id, set()).add(user)
        return top

    def _mount(self, volume_id: str) -> None:
        """Mount the volume at its mount point. A loop device still holding its image (a sandbox's view or
        mount outlived the node's own mount) is mounted again, so the kernel shares that one file system:
        a second loop device would make a second, independent ext4 over the same file, which corrupts it."""
        top = self.mountpoint(volume_id)
        top.mkdir(mode=0o755, exist_ok=True)
        held = _loop_devices(self.image(volume_id))
        if held:
            _run(["mount", "-o", "nosuid,nodev", f"/dev/{held[0][0]}", str(top)])
        else:
            _run(["mount", "-o", "loop,nosuid,nodev", str(self.image(volume_id)), str(top)])

    def _mounted_elsewhere(self, volume_id: str) -> bool:
        """Whether the volume's file system is mounted anywhere on the host but its own mount point."""
        numbers = {number for _, number in _loop_devices(self.image(volume_id))}
        top = str(self.mountpoint(volume_id))
        with open("/proc/self/mountinfo") as mounts:
            return any(f[2] in numbers and f[4] != top for f in (line.split() for line in mounts))

    def delete(self, volume_id: str, in_use: bool) -> None:
        """Unmount and delete the volume; ``Conflict`` while a sandbox mounts it (``in_use``, or a view or
        mount of it still held). An unknown id is fine."""
        home = self.directory / check_id(volume_id)
        with self._lock:
            if not home.is_dir():
                return
            if in_use or self.users.get(volume_id) or self._mounted_elsewhere(volume_id):
                raise Conflict(f"volume {volume_id} is mounted in a sandbox; kill the sandbox first")
            top = self.mountpoint(volume_id)
            if is_mountpoint(str(top)):
                try:
                    umount(str(top))
                except OSError as err:
                    raise Conflict(f"volume {volume_id} is in use: {err.strerror}") from None
            if is_mountpoint(str(top)):  # never remove a tree that is still a mounted volume
                raise BackendUnavailable(f"volume {volume_id} could not be unmounted")
            shutil.rmtree(home)

    def release_idle(self, in_use: set[str]) -> None:
        """Unmount every volume no sandbox uses (the node stops); the next use mounts it again."""
        if not self.directory.is_dir():
            return
        with self._lock:
            for home in self.directory.iterdir():
                idle = home.name not in in_use and not self.users.get(home.name)
                if idle and not self._mounted_elsewhere(home.name) and is_mountpoint(str(home / "mnt")):
                    with contextlib.suppress(OSError):  # busy: it stays mounted
                        umount(str(home / "mnt"))

    def size_and_base(self, volume_id: str) -> tuple[int, int]:
        """The volume's size (MiB) and the bytes its empty file system used."""
        found = json.loads((self.directory / check_id(volume_id) / "volume.json").read_text())
        return int(found["size_mb"]), int(found["base"])

    def used(self, volume_id: str) -> int:
        """Bytes its files take (what the file system uses beyond what it used empty)."""
        top = self.ensure_mounted(volume_id)
        return max(0, _used(top) - self.size_and_base(volume_id)[1])

    # -- a sandbox's mounts ------------------------------------------------------------------------------

    def prepare(self, sandbox_id: str, sandbox_dir: Path, engine: Engine, mounts: list[VolumeMount]) -> list:
        """Mount what ``mounts`` name for the sandbox in ``sandbox_dir`` (crun: attach its views, unless
        they are there from an earlier run) and return the OCI mounts of its ``config.json``. Blocking."""
        entries = []
        for index, mount in enumerate(check_mounts(mounts)):
            top = self.ensure_mounted(mount.volume_id, sandbox_id)
            source = top
            if engine == "crun":
                # Root's only: a view shows the volume to whoever can reach it, with the modes its files have.
                source = private_directory(sandbox_dir / _VIEWS) / str(index)
                if not is_mountpoint(str(source)):
                    source.mkdir(mode=0o700, exist_ok=True)
                    self.ids.attach(top, source, writable=True)
            options = ["rbind", "rw", "nosuid", "nodev"]
            entries.append(
                {"destination": mount.path, "type": "bind", "source": str(source), "options": options}
            )
        return entries

    def release(self, sandbox_id: str, sandbox_dir: Path) -> None:
        """Detach the sandbox's views and forget it as a user of any volume. Blocking."""
        views = sandbox_dir / _VIEWS
        if views.is_dir():
            for attached in views.iterdir():
                detach(str(attached))
                if is_mountpoint(str(attached)):
                    raise BackendUnavailable(f"the volume view {attached} could not be detached")
                attached.rmdir()
            views.rmdir()
        with self._lock:
            for users in self.users.values():
                users.discard(sandbox_id)


def _loop_devices(image: Path) -> list[tuple[str, str]]:
    """The loop devices whose backing file is ``image``: (name, ``major:minor``)."""
    found = []
    for backing in Path("/sys/block").glob("loop*/loop/backing_file"):
        with contextlib.suppress(OSError):
            if backing.read_text().strip() == str(image):
                device = backing.parent.parent
                found.append((device.name, (device / "dev").read_text().strip()))
    return found


def _used(top: Path) -> int:
    found = os.statvfs(top)
    return (found.f_blocks - found.f_bfree) * found.f_frsize


def _run(command: list[str]) -> None:
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        raise BackendUnavailable(f"{command[0]} failed: {done.stderr.strip()}")
