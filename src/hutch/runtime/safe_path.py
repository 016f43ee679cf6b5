"""The one way host code touches a tenant's tree (a sandbox's root, a writable layer, a template layer, a
snapshot, a checkpoint, a build context): paths are resolved inside a root and never lead out of it.

A ``Root`` holds an ``O_PATH`` descriptor of the tree's top. A path given to it is relative (an absolute
path, a ``..`` or a NUL is ``UnsafePath``) and is resolved as if the root were ``/``: a symbolic link in it,
absolute or relative, stays inside the root, and ``..`` stops at the root. The kernel does this where it
has ``openat2(2)`` (``RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS | RESOLVE_NO_XDEV``); elsewhere a walk opens
one component at a time with ``O_NOFOLLOW`` from the root's descriptor and resolves each link it meets
within the root itself (it does not refuse mount points, which no tenant can make in a host's view of its
tree). Every operation then works on descriptors of the directory it resolved (``openat``, ``mkdirat``,
``unlinkat``, ``renameat``, ``fchmod``), and what it changes (a file it replaces, a directory it makes or
removes) is never followed if it is a link, so a tenant that swaps a directory for a link while the host
works cannot redirect it.

What a tenant can still change between two calls is what is there, not where the host writes: a
directory checked by ``ensure_directory`` may be a link a moment later. A check that another program
relies on (a mount source handed to an engine) is made only while the tenant's processes are stopped.

Whole trees are handled by three primitives, no others:
- ``copy_tree``: ``cp -a --no-dereference`` from a host-owned source path to a new (or empty) host-owned
  destination; links are copied as links, never followed.
- ``Root.remove``: ``shutil.rmtree`` relative to a directory descriptor (it never follows a link).
- ``Root.walk``: ``os.fwalk`` from the root's descriptor without following links.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import errno
import os
import secrets
import shutil
import stat
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from types import TracebackType

from ..errors import BackendUnavailable

SYS_OPENAT2 = 437  # the same number on every architecture
RESOLVE_NO_XDEV = 0x01
RESOLVE_NO_MAGICLINKS = 0x02
RESOLVE_IN_ROOT = 0x10
RESOLVE = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS | RESOLVE_NO_XDEV
MAX_LINKS = 40  # as the kernel's limit on links in one lookup
RETRIES = 8  # ``openat2`` answers EAGAIN when a rename raced the lookup
NAME_MAX = 255


class UnsafePath(ValueError):
    """A path that is not a plain relative path inside a root."""


class _OpenHow(ctypes.Structure):
    _fields_ = [("flags", ctypes.c_uint64), ("mode", ctypes.c_uint64), ("resolve", ctypes.c_uint64)]


_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long
# Whether the kernel has ``openat2`` (None: not asked yet); a test sets it to False to take the walk.
kernel_resolves: bool | None = None


def parts(path: str | PurePosixPath) -> list[str]:
    """The components of a relative ``path`` (none: the root itself)."""
    text = str(path)
    if "\0" in text:
        raise UnsafePath(f"a path holds a NUL byte: {text!r}")
    if text.startswith("/"):
        raise UnsafePath(f"a path inside a root must be relative: {text!r}")
    names = [name for name in text.split("/") if name not in ("", ".")]
    if ".." in names:
        raise UnsafePath(f"a path inside a root may not hold '..': {text!r}")
    return names


def _openat2(dir_fd: int, path: str, flags: int, mode: int) -> int:
    how = _OpenHow(flags | os.O_CLOEXEC, mode if flags & os.O_CREAT else 0, RESOLVE)
    for _ in range(RETRIES):
        fd = _libc.syscall(
            ctypes.c_long(SYS_OPENAT2), ctypes.c_int(dir_fd), ctypes.c_char_p(os.fsencode(path)),
            ctypes.byref(how), ctypes.c_size_t(ctypes.sizeof(how)),
        )  # fmt: skip
        if fd >= 0:
            return fd
        err = ctypes.get_errno()
        if err != errno.EAGAIN:
            raise OSError(err, os.strerror(err), path)
    raise OSError(errno.EAGAIN, "the tree kept changing while it was resolved", path)


def _has_openat2() -> bool:
    global kernel_resolves
    if kernel_resolves is None:
        top = os.open("/", os.O_PATH | os.O_CLOEXEC)
        try:
            os.close(_openat2(top, ".", os.O_PATH, 0))
            kernel_resolves = True
        except OSError as err:
            if err.errno not in (errno.ENOSYS, errno.EPERM):
                raise
            kernel_resolves = False
        finally:
            os.close(top)
    return kernel_resolves


def _link_at(dir_fd: int, name: str) -> str | None:
    """The target of the link ``name`` in ``dir_fd``, or None if it is not a link."""
    try:
        return os.readlink(name, dir_fd=dir_fd)
    except OSError as err:
        if err.errno in (errno.EINVAL, errno.ENOENT):
            return None
        raise


def _walk(root_fd: int, names: list[str], flags: int, mode: int) -> int:
    """Open ``names`` below ``root_fd`` as ``openat2`` with ``RESOLVE_IN_ROOT`` would, one component at a
    time and never letting the kernel follow a link: a link's target is resolved here, within the root."""
    stack: list[int] = []  # descriptors of the directories below the root on the way (owned here)
    todo = list(names)
    hops = 0
    try:
        while todo:
            name = todo.pop(0)
            if name in ("", "."):
                continue
            if name == "..":
                if stack:
                    os.close(stack.pop())
                continue
            here = stack[-1] if stack else root_fd
            if not todo and flags & os.O_NOFOLLOW:
                return os.open(name, flags | os.O_CLOEXEC, mode, dir_fd=here)
            wanted = flags if not todo else os.O_PATH | os.O_DIRECTORY
            try:
                fd = os.open(name, wanted | os.O_NOFOLLOW | os.O_CLOEXEC, mode, dir_fd=here)
            except OSError as err:
                if err.errno not in (errno.ELOOP, errno.ENOTDIR):
                    raise
                target = _link_at(here, name)
                if target is None:
                    raise
            else:
                if not stat.S_ISLNK(os.fstat(fd).st_mode):  # O_PATH opens a link itself
                    if not todo:
                        return fd
                    stack.append(fd)
                    continue
                os.close(fd)
                target = os.readlink(name, dir_fd=here)
            hops += 1
            if hops > MAX_LINKS:
                raise OSError(errno.ELOOP, "too many levels of symbolic links", "/".join(names))
            if target.startswith("/"):
                while stack:
                    os.close(stack.pop())
            todo[:0] = target.split("/") or ["."]
        return os.open(".", flags | os.O_CLOEXEC, mode, dir_fd=stack[-1] if stack else root_fd)
    finally:
        for fd in stack:
            os.close(fd)


class Root:
    """A directory of a tenant's tree, opened once: every path its methods take is resolved inside it."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.fd = os.open(self.path, os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def __enter__(self) -> Root:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.close()

    # -- resolving ---------------------------------------------------------------------------------------

    def open(self, path: str | PurePosixPath, flags: int = os.O_RDONLY, mode: int = 0o644) -> int:
        """A descriptor of ``path`` (a link as its last component is followed within the root unless
        ``flags`` has ``O_NOFOLLOW``); the caller closes it."""
        names = parts(path)
        if _has_openat2():
            return _openat2(self.fd, "/".join(names) or ".", flags, mode)
        return _walk(self.fd, names, flags, mode)

    def _parent(self, path: str | PurePosixPath, *, create: bool = False) -> tuple[int, str]:
        """A descriptor of the directory ``path`` is in (made if missing, with ``create``) and its name."""
        names = parts(path)
        if not names:
            raise UnsafePath("the root itself cannot be replaced or removed")
        if create:
            self.ensure_directory("/".join(names[:-1]), 0o755, replace=False)
        return self.open("/".join(names[:-1]), os.O_PATH | os.O_DIRECTORY), names[-1]

    # -- reading -----------------------------------------------------------------------------------------

    def lstat(self, path: str | PurePosixPath) -> os.stat_result | None:
        """What is at ``path`` (a link as itself), or None if nothing is."""
        if not parts(path):
            return os.fstat(self.fd)
        try:
            parent, name = self._parent(path)
        except (FileNotFoundError, NotADirectoryError):
            return None
        try:
            return os.stat(name, dir_fd=parent, follow_symlinks=False)
        except FileNotFoundError:
            return None
        finally:
            os.close(parent)

    def readlink(self, path: str | PurePosixPath) -> str:
        parent, name = self._parent(path)
        try:
            return os.readlink(name, dir_fd=parent)
        finally:
            os.close(parent)

    def listdir(self, path: str | PurePosixPath = ".") -> list[str]:
        fd = self.open(path, os.O_RDONLY | os.O_DIRECTORY)
        try:
            return os.listdir(fd)
        finally:
            os.close(fd)

    def open_file(self, path: str | PurePosixPath) -> int:
        """A read-only descriptor of the regular file at ``path``. Anything else (a FIFO, a device) is
        refused before it is opened for reading, which could block or act."""
        found = self.open(path, os.O_PATH)
        try:
            if not stat.S_ISREG(os.fstat(found).st_mode):
                raise OSError(errno.EINVAL, "not a regular file", str(path))
            return os.open(f"/proc/self/fd/{found}", os.O_RDONLY | os.O_CLOEXEC)
        finally:
            os.close(found)

    def read_bytes(self, path: str | PurePosixPath, limit: int) -> bytes:
        """The content of the regular file at ``path``; one larger than ``limit`` bytes is an error."""
        fd = self.open_file(path)
        with os.fdopen(fd, "rb") as file:
            data = file.read(limit + 1)
        if len(data) > limit:
            raise OSError(errno.EFBIG, f"larger than {limit} bytes", str(path))
        return data

    def read_text(self, path: str | PurePosixPath, limit: int) -> str:
        return self.read_bytes(path, limit).decode()

    # -- changing ----------------------------------------------------------------------------------------

    def write_file(self, path: str | PurePosixPath, data: bytes | str, mode: int = 0o644) -> None:
        """Put a regular file with ``data`` at ``path`` in place of whatever is there (a link, a directory),
        atomically: it is written under a new name in the same directory, then renamed over ``path``.
        Missing directories on the way are made."""
        content = data.encode() if isinstance(data, str) else data
        parent, name = self._parent(path, create=True)
        try:
            partial = f".{name[: NAME_MAX - 30]}.{secrets.token_hex(8)}.partial"
            fd = os.open(
                partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, mode,
                dir_fd=parent,
            )  # fmt: skip
            try:
                with os.fdopen(fd, "wb") as file:
                    file.write(content)
                    os.fchmod(file.fileno(), mode)
                try:
                    os.replace(partial, name, src_dir_fd=parent, dst_dir_fd=parent)
                except OSError as err:
                    if err.errno not in (errno.EISDIR, errno.ENOTEMPTY, errno.EEXIST, errno.ENOTDIR):
                        raise
                    _remove_at(parent, name)
                    os.replace(partial, name, src_dir_fd=parent, dst_dir_fd=parent)
            except BaseException:
                _remove_at(parent, partial)
                raise
        finally:
            os.close(parent)

    def ensure_directory(self, path: str | PurePosixPath, mode: int, *, replace: bool = True) -> None:
        """Make sure ``path`` is a real directory: one missing is made with ``mode``, and (with ``replace``)
        a link, file or anything else there is removed first. Directories on the way are made too; a link
        on the way is followed within the root."""
        names = parts(path)
        for depth in range(1, len(names) + 1):
            last = depth == len(names)
            parent, name = self._parent("/".join(names[:depth]))
            try:
                found = _lstat_at(parent, name)
                if found is not None and not stat.S_ISDIR(found.st_mode) and (last and replace):
                    _remove_at(parent, name)
                    found = None
                if found is None:
                    os.mkdir(name, 0o700, dir_fd=parent)
                    fd = os.open(
                        name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=parent
                    )
                    try:
                        os.fchmod(fd, mode if last else 0o755)
                    finally:
                        os.close(fd)
            finally:
                os.close(parent)

    def remove(self, path: str | PurePosixPath) -> None:
        """Remove what is at ``path``, a whole directory tree included (a link is removed, not followed);
        nothing there is fine."""
        try:
            parent, name = self._parent(path)
        except (FileNotFoundError, NotADirectoryError):
            return
        try:
            _remove_at(parent, name)
        finally:
            os.close(parent)

    def walk(self) -> Iterator[tuple[str, list[str], list[str], int]]:
        """``os.fwalk`` of the whole tree from the root's descriptor, never following a link:
        (directory relative to the root, its subdirectories, its other entries, its descriptor)."""
        yield from os.fwalk(".", dir_fd=self.fd, follow_symlinks=False)


def _lstat_at(dir_fd: int, name: str) -> os.stat_result | None:
    try:
        return os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return None


def _remove_at(dir_fd: int, name: str) -> None:
    """Remove ``name`` in ``dir_fd``, a directory with all it holds; nothing there is fine."""
    found = _lstat_at(dir_fd, name)
    if found is None:
        return
    if stat.S_ISDIR(found.st_mode):
        shutil.rmtree(name, dir_fd=dir_fd)
    else:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(name, dir_fd=dir_fd)


async def copy_tree(source: Path, destination: Path) -> None:
    """Copy the tree at ``source`` to ``destination`` (created if missing; an existing directory receives
    ``source``'s entries) with owners, modes, xattrs and overlay whiteouts; links are copied as links."""
    process = await asyncio.create_subprocess_exec(
        "cp", "-a", "--no-dereference", "--reflink=auto", "--no-target-directory", "--",
        str(source), str(destination), stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    _, stderr = await process.communicate()
    if process.returncode != 0:
        raise BackendUnavailable(f"copying {source} failed: {stderr.decode(errors='replace').strip()}")
