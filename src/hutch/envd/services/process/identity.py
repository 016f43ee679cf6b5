"""Starting a process as another user without copying envd: the calling thread alone takes the user's ids
for the moment it starts the child, which inherits them.

Asked to switch ids itself, Python forks (it may not ``vfork``, since glibc's ``setuid`` changes every
thread of the process, the parent's included), and a fork copies all of envd's memory map, which under
gVisor costs about 20 ms. The raw system calls change the calling thread's ids only, so Python can start
the child with ``vfork`` and no switch. The thread keeps root as its saved uid to come back: the child's
``execve`` makes its saved uid its effective one (the user's) and leaves it no capability, as a switch of
all three ids would (the container gives envd no inheritable capability, hence no ambient one: checked
once, else the usual fork is used).
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
from collections.abc import Iterator
from typing import Any

from ...users import User

log = logging.getLogger("hutch.envd")
# setgroups, setresgid, setresuid
_SYSCALLS = {"x86_64": (116, 119, 117), "aarch64": (159, 149, 147)}
_NO_CAPABILITIES = "0000000000000000"


@functools.cache
def available() -> bool:
    """True when envd is root on a known architecture, has ``ctypes``, and a child that ``execve``s as a
    user keeps no capability (none inheritable, so none ambient)."""
    if os.uname().machine not in _SYSCALLS or os.getuid() != 0:
        return False
    try:
        with open("/proc/thread-self/status") as status:
            fields = dict(line.split(":", 1) for line in status if ":" in line)
    except OSError:
        return False
    # No capability is ambient unless it is inheritable too (gVisor does not show the ambient set).
    inheritable, ambient = (fields.get(name, _NO_CAPABILITIES).strip() for name in ("CapInh", "CapAmb"))
    if "CapInh" not in fields or not inheritable == ambient == _NO_CAPABILITIES:
        return False
    try:
        _libc()
    except (ImportError, OSError):  # a template's own Python without ctypes
        return False
    return True


@functools.cache
def _libc() -> Any:
    import ctypes  # only where envd switches ids: not every envd needs it

    return ctypes, ctypes.CDLL(None, use_errno=True)


def _syscall(index: int, *args: Any) -> None:
    ctypes, libc = _libc()
    if libc.syscall(_SYSCALLS[os.uname().machine][index], *args) != 0:
        error = ctypes.get_errno()
        raise OSError(error, os.strerror(error))


def _set(groups: list[int], gids: tuple[int, ...], uids: tuple[int, ...]) -> None:
    ctypes, _ = _libc()
    _syscall(0, ctypes.c_size_t(len(groups)), (ctypes.c_uint * max(len(groups), 1))(*groups))
    _syscall(1, *(ctypes.c_uint(gid) for gid in gids))
    _syscall(2, *(ctypes.c_uint(uid) for uid in uids))


@contextlib.contextmanager
def thread_as(user: User) -> Iterator[None]:
    """This thread, and only it, runs with ``user``'s groups and real and effective ids (root saved)
    inside the block; root's own after. A thread that cannot take them back ends envd."""
    uids, gids, groups = os.getresuid(), os.getresgid(), os.getgroups()
    ctypes, _ = _libc()
    try:
        _set(user.group_ids(), (user.gid,) * 3, (user.uid, user.uid, uids[2]))
        yield
    finally:
        try:
            _syscall(2, *(ctypes.c_uint(uid) for uid in uids))  # root first, to be allowed the groups
            _set(groups, gids, uids)
        except OSError:
            log.critical("envd could not take root's ids back; stopping")
            os.abort()
