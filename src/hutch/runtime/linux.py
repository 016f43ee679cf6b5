"""Thin wrappers over the Linux calls the runtime needs and Python lacks (mount, umount, loop devices), and
how a node's event loop learns that its subprocesses ended."""

from __future__ import annotations

import asyncio
import ctypes
import errno
import fcntl
import os
import struct
import sys

MNT_DETACH = 2
MS_NOSUID = 2
MS_NODEV = 4
MS_BIND = 0x1000
MS_REC = 0x4000
MS_SHARED = 0x100000
CLONE_NEWNET = 0x40000000
LOOP_CTL_GET_FREE = 0x4C82
LOOP_CONFIGURE = 0x4C0A
LO_FLAGS_AUTOCLEAR = 4
LOOP_TRIES = 16  # free devices another process took first

_libc = ctypes.CDLL(None, use_errno=True)
_libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_char_p]
_libc.umount2.argtypes = [ctypes.c_char_p, ctypes.c_int]
_libc.unshare.argtypes = [ctypes.c_int]
_libc.setns.argtypes = [ctypes.c_int, ctypes.c_int]


def _check(result: int, what: str) -> None:
    if result != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def mount(source: str, target: str, fstype: str | None, flags: int = 0, data: str | None = None) -> None:
    _check(
        _libc.mount(
            source.encode(), target.encode(), fstype.encode() if fstype else None, flags,
            data.encode() if data else None,
        ),
        f"mount {target}",
    )  # fmt: skip


def umount(target: str, flags: int = 0) -> None:
    _check(_libc.umount2(target.encode(), flags), f"umount {target}")


def detach(target: str) -> None:
    """Unmount ``target`` lazily; one that is not mounted (or gone) is fine."""
    try:
        umount(target, MNT_DETACH)
    except OSError as err:
        if err.errno not in (errno.EINVAL, errno.ENOENT):
            raise


def unshare(flags: int) -> None:
    """Give the calling thread new namespaces of ``flags`` (a network namespace: that thread alone)."""
    _check(_libc.unshare(flags), "unshare")


def setns(descriptor: int, flags: int) -> None:
    """Move the calling thread into the namespace the ``descriptor`` names."""
    _check(_libc.setns(descriptor, flags), "setns")


def is_mountpoint(path: str) -> bool:
    with open("/proc/self/mountinfo") as mounts:
        return any(line.split()[4] == path for line in mounts)


def loop_device(image: str) -> tuple[int, str]:
    """A free loop device backed by ``image`` (read-write), which frees itself at its last close (once a
    mount made from it is gone): its open descriptor and its path."""
    backing = os.open(image, os.O_RDWR | os.O_CLOEXEC)
    control = os.open("/dev/loop-control", os.O_RDWR | os.O_CLOEXEC)
    try:
        # struct loop_config: fd, block size, struct loop_info64 (flags at 52), reserved.
        info = bytearray(232)
        struct.pack_into("=I", info, 52, LO_FLAGS_AUTOCLEAR)
        config = struct.pack("=II", backing, 0) + bytes(info) + bytes(64)
        for _ in range(LOOP_TRIES):
            path = f"/dev/loop{fcntl.ioctl(control, LOOP_CTL_GET_FREE)}"
            device = os.open(path, os.O_RDWR | os.O_CLOEXEC)
            try:
                fcntl.ioctl(device, LOOP_CONFIGURE, config)
                return device, path
            except OSError as err:
                os.close(device)
                if err.errno != errno.EBUSY:
                    raise
        raise OSError(errno.EBUSY, f"no free loop device for {image}")
    finally:
        os.close(control)
        os.close(backing)


def watch_subprocesses_by_pidfd() -> None:
    """Let the running event loop learn of its subprocesses' ends from their pidfds, as Python 3.12 does,
    instead of Python 3.11's thread per subprocess blocked in ``waitpid``: a node starts several per
    sandbox. For the one loop of a process's main thread; ``asyncio.run`` detaches it at its end."""
    if sys.version_info >= (3, 12):
        return
    watcher = asyncio.PidfdChildWatcher()
    watcher.attach_loop(asyncio.get_running_loop())
    asyncio.set_child_watcher(watcher)
