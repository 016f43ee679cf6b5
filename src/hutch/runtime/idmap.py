"""The ids of crun sandboxes on the host: sandbox ids 0-65535 are host ids ``FIRST`` to ``FIRST + 65535``.

Every crun sandbox runs in a user namespace of its own with this one mapping, so its root is an
unprivileged host user. What is stored keeps the ids a sandbox sees (root is 0): template layers, build
layers and snapshots, shared by crun and gVisor sandboxes alike. A crun sandbox sees its lower layers
through idmapped mounts (``MOUNT_ATTR_IDMAP``) that shift them into its range, and its writable layer holds
the host ids its processes write (``FIRST`` and up); copying that layer out for a snapshot or a build goes
through an idmapped mount that shifts it back. The idmapped mounts are detached clones (``open_tree``),
never attached anywhere the host's users could reach, except the shifted-back view while a copy runs.
"""

from __future__ import annotations

import ctypes
import os
import subprocess
from pathlib import Path

FIRST = 1 << 30  # far above the ids people and ``/etc/subuid`` ranges use
COUNT = 65536  # a sandbox's ids 0-65535 (``nobody`` is 65534)

_SYS_OPEN_TREE = 428
_SYS_MOVE_MOUNT = 429
_SYS_MOUNT_SETATTR = 442
_AT_FDCWD = -100
_AT_EMPTY_PATH = 0x1000
_OPEN_TREE_CLONE = 1
_MOVE_MOUNT_F_EMPTY_PATH = 4
_MOUNT_ATTR_RDONLY = 0x1
_MOUNT_ATTR_NOSUID = 0x2
_MOUNT_ATTR_NODEV = 0x4
_MOUNT_ATTR_IDMAP = 0x100000

_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long


class _MountAttr(ctypes.Structure):
    _fields_ = [
        ("attr_set", ctypes.c_uint64),
        ("attr_clr", ctypes.c_uint64),
        ("propagation", ctypes.c_uint64),
        ("userns_fd", ctypes.c_uint64),
    ]


def _check(result: int, what: str) -> int:
    if result < 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")
    return result


def oci_mappings() -> list[dict]:
    """``uidMappings`` and ``gidMappings`` of a crun sandbox's ``config.json``."""
    return [{"containerID": 0, "hostID": FIRST, "size": COUNT}]


def _user_namespace(mapping: str) -> int:
    """A descriptor of a new user namespace whose ``uid_map`` and ``gid_map`` are ``mapping``. A shell is
    started in it only to make it; the descriptor keeps it after the shell is gone."""
    shell = subprocess.Popen(
        ["unshare", "--user", "sh", "-c", "echo && read -r _"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    assert shell.stdin is not None and shell.stdout is not None
    try:
        if shell.stdout.readline() != b"\n":
            raise OSError("unshare --user failed")
        for name in ("uid_map", "gid_map"):
            Path(f"/proc/{shell.pid}/{name}").write_text(mapping)
        return os.open(f"/proc/{shell.pid}/ns/user", os.O_RDONLY | os.O_CLOEXEC)
    finally:
        shell.stdin.close()
        shell.wait()


class IdMap:
    """The two user namespaces the idmapped mounts are made with: ``into`` (stored ids to a sandbox's host
    ids) and ``back`` (the reverse). Made on first use; ``close`` lets them go."""

    def __init__(self) -> None:
        self._into: int | None = None
        self._back: int | None = None

    def _namespace(self, *, back: bool) -> int:
        if self._into is None or self._back is None:
            self._into = _user_namespace(f"0 {FIRST} {COUNT}\n")
            self._back = _user_namespace(f"{FIRST} 0 {COUNT}\n")
        return self._back if back else self._into

    def view(self, path: Path, *, back: bool = False, writable: bool = False) -> int:
        """A detached, read-only (unless ``writable``), nosuid and nodev clone of the directory ``path``
        shifted ``into`` a sandbox's host ids (or ``back``), as a descriptor; usable as a path through
        ``/proc/self/fd/<descriptor>`` until it is closed."""
        fd = _check(
            _libc.syscall(
                ctypes.c_long(_SYS_OPEN_TREE), ctypes.c_int(_AT_FDCWD), ctypes.c_char_p(os.fsencode(path)),
                ctypes.c_uint(_OPEN_TREE_CLONE | os.O_CLOEXEC),
            ),
            f"open_tree {path}",
        )  # fmt: skip
        flags = _MOUNT_ATTR_IDMAP | _MOUNT_ATTR_NOSUID | _MOUNT_ATTR_NODEV
        attributes = _MountAttr(
            flags if writable else flags | _MOUNT_ATTR_RDONLY,
            0,
            0,
            self._namespace(back=back),
        )
        try:
            _check(
                _libc.syscall(
                    ctypes.c_long(_SYS_MOUNT_SETATTR), ctypes.c_int(fd), ctypes.c_char_p(b""),
                    ctypes.c_uint(_AT_EMPTY_PATH), ctypes.byref(attributes),
                    ctypes.c_size_t(ctypes.sizeof(attributes)),
                ),
                f"mount_setattr {path}",
            )  # fmt: skip
        except OSError:
            os.close(fd)
            raise
        return fd

    def attach_back(self, path: Path, target: Path) -> None:
        """Mount the directory ``path`` shifted ``back`` at ``target`` (an empty directory); ``detach``
        removes it."""
        self.attach(path, target, back=True)

    def attach(self, path: Path, target: Path, *, back: bool = False, writable: bool = False) -> None:
        """Mount the directory ``path`` shifted ``into`` a sandbox's host ids (or ``back``) at ``target``
        (an empty directory), read-only unless ``writable``; ``detach`` removes it."""
        fd = self.view(path, back=back, writable=writable)
        try:
            _check(
                _libc.syscall(
                    ctypes.c_long(_SYS_MOVE_MOUNT), ctypes.c_int(fd), ctypes.c_char_p(b""),
                    ctypes.c_int(_AT_FDCWD), ctypes.c_char_p(os.fsencode(target)),
                    ctypes.c_uint(_MOVE_MOUNT_F_EMPTY_PATH),
                ),
                f"move_mount {target}",
            )  # fmt: skip
        finally:
            os.close(fd)

    def close(self) -> None:
        for fd in (self._into, self._back):
            if fd is not None:
                os.close(fd)
        self._into = self._back = None
