"""What the node's volume content calls do inside a volume's mount: stat, list, make a directory, read,
write, change owner or mode, remove. Blocking functions (the backend runs them in threads), each on a
``safe_path.Root`` of the volume's top.

A volume's content is a tenant's tree (any sandbox that mounts it writes there): every path is resolved
inside the volume, and a symbolic link planted in it is never followed out. ``stat``, ``list``, ``change``
and ``remove`` act on a link itself; a read follows one only within the volume; a write replaces the link,
not what it points to. Paths come as ``/``-first paths from the volume's root; ``..`` is refused. The ids
taken and returned are the ids a sandbox sees (the volume stores them as they are, see ``volumes``).

A write goes to a new file in the target's directory, is synced, then renamed over the target, and the
directory is synced: a write that stops halfway (the stream breaks, the volume fills up, the node dies)
leaves the old file whole and no partial file behind.
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import stat
from collections.abc import Iterator
from datetime import UTC, datetime

from ...errors import Conflict, InvalidRequest, NotFound, OutOfSpace
from ..capabilities import VolumeEntry
from ..safe_path import NAME_MAX, Root, UnsafePath, parts

MAX_DEPTH = 16
MAX_ENTRIES = 10_000
MAX_PATH = 4096
READ_CHUNK = 256 * 1024
MAX_ID = 65535  # the ids a sandbox has
USER = 1000  # ``user``: the owner of what the calls make when they are not told another
DIRECTORY_MODE = 0o755
FILE_MODE = 0o644


def names(path: str) -> list[str]:
    """The components of a volume path (``/`` first; none: the volume's root)."""
    if not isinstance(path, str) or len(path) > MAX_PATH:
        raise InvalidRequest("a volume path must be a string of at most 4096 characters")
    try:
        return parts(path.lstrip("/"))
    except UnsafePath as err:
        raise InvalidRequest(f"invalid volume path {path!r}: {err}") from None


def check_ids(uid: int | None, gid: int | None, mode: int | None) -> None:
    for name, value, top in (("uid", uid, MAX_ID), ("gid", gid, MAX_ID), ("mode", mode, 0o7777)):
        if value is not None and (not isinstance(value, int) or not 0 <= value <= top):
            raise InvalidRequest(f"invalid {name} {value!r}: it must be 0 to {top}")


@contextlib.contextmanager
def errors(path: str) -> Iterator[None]:
    """OS errors of a call on ``path`` as ``hutch.errors``."""
    try:
        yield
    except UnsafePath as err:
        raise InvalidRequest(f"invalid volume path {path!r}: {err}") from None
    except OSError as err:
        if err.errno in (errno.ENOSPC, errno.EDQUOT):
            raise OutOfSpace(f"the volume is full: {path}") from None
        if err.errno == errno.ENOENT:
            raise NotFound(f"{path} does not exist in the volume") from None
        if err.errno == errno.EEXIST:
            raise Conflict(f"{path} already exists in the volume") from None
        if err.errno in (errno.ENOTDIR, errno.EISDIR, errno.ELOOP, errno.EINVAL, errno.ENAMETOOLONG):
            raise InvalidRequest(f"{path}: {err.strerror}") from None
        if err.errno == errno.ENOTEMPTY:
            raise Conflict(f"{path} is not empty") from None
        raise


def _time(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


def _kind(mode: int) -> str:
    if stat.S_ISREG(mode):
        return "file"
    if stat.S_ISDIR(mode):
        return "directory"
    if stat.S_ISLNK(mode):
        return "symlink"
    return "unknown"


def entry(components: list[str], found: os.stat_result, target: str | None = None) -> VolumeEntry:
    return VolumeEntry(
        name=components[-1] if components else "",
        type=_kind(found.st_mode),
        path="/" + "/".join(components),
        size=found.st_size,
        mode=stat.S_IMODE(found.st_mode),
        uid=found.st_uid,
        gid=found.st_gid,
        atime=_time(found.st_atime),
        mtime=_time(found.st_mtime),
        ctime=_time(found.st_ctime),
        target=target,
    )


def parent_of(tree: Root, components: list[str]) -> int:
    """An ``O_PATH`` descriptor of the directory holding the last of ``components`` (the caller closes it)."""
    if not components:
        raise InvalidRequest("the volume's root itself cannot be replaced or removed")
    return tree.open("/".join(components[:-1]), os.O_PATH | os.O_DIRECTORY)


def _described(dir_fd: int, name: str, components: list[str]) -> VolumeEntry:
    found = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    target = os.readlink(name, dir_fd=dir_fd) if stat.S_ISLNK(found.st_mode) else None
    return entry(components, found, target)


def stat_path(tree: Root, path: str) -> VolumeEntry:
    components = names(path)
    with errors(path):
        if not components:
            return entry([], os.fstat(tree.fd))
        parent = parent_of(tree, components)
        try:
            return _described(parent, components[-1], components)
        finally:
            os.close(parent)


def list_path(tree: Root, path: str, depth: int) -> list[VolumeEntry]:
    """The entries under the directory ``path``, ``depth`` levels down (links listed, never entered)."""
    if not isinstance(depth, int) or not 1 <= depth <= MAX_DEPTH:
        raise InvalidRequest(f"depth must be 1 to {MAX_DEPTH}")
    components = names(path)
    found: list[VolumeEntry] = []
    with errors(path):
        top = tree.open("/".join(components), os.O_RDONLY | os.O_DIRECTORY)
        try:
            _list_into(found, top, components, depth)
        finally:
            os.close(top)
    return found


def _list_into(found: list[VolumeEntry], dir_fd: int, components: list[str], depth: int) -> None:
    with os.scandir(dir_fd) as listing:
        children = sorted(listing, key=lambda child: child.name)
    for child in children:
        if len(found) >= MAX_ENTRIES:
            raise InvalidRequest(f"more than {MAX_ENTRIES} entries: list a smaller depth or a subdirectory")
        here = [*components, child.name]
        try:
            described = _described(dir_fd, child.name, here)
        except FileNotFoundError:
            continue  # removed meanwhile
        found.append(described)
        if described.type == "directory" and depth > 1:
            try:
                below = os.open(child.name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=dir_fd)
            except (FileNotFoundError, NotADirectoryError, OSError):
                continue  # replaced meanwhile (a link is never entered)
            try:
                _list_into(found, below, here, depth - 1)
            finally:
                os.close(below)


def _own(fd: int, uid: int | None, gid: int | None, mode: int | None, default_mode: int) -> None:
    """Give what ``fd`` (an ``O_PATH`` or open descriptor of a non-link) is its owner and mode."""
    through = f"/proc/self/fd/{fd}"
    os.chown(through, USER if uid is None else uid, USER if gid is None else gid)
    os.chmod(through, default_mode if mode is None else mode)


def make_dir(
    tree: Root, path: str, *, uid: int | None, gid: int | None, mode: int | None, force: bool
) -> VolumeEntry:
    """Make the directory ``path`` (missing parents too with ``force``, owned alike); ``Conflict`` if
    something is there."""
    check_ids(uid, gid, mode)
    components = names(path)
    if not components:
        raise Conflict("the volume's root already exists")
    with errors(path):
        for depth in range(1 if force else len(components), len(components) + 1):
            last = depth == len(components)
            parent = parent_of(tree, components[:depth])
            name = components[depth - 1]
            try:
                try:
                    os.mkdir(name, 0o700, dir_fd=parent)
                except FileExistsError:
                    if last:
                        raise
                    continue  # an existing parent (a link there is followed within the volume)
                made = os.open(name, os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=parent)
                try:
                    _own(made, uid, gid, mode if last else None, DIRECTORY_MODE)
                finally:
                    os.close(made)
                if last:
                    _sync_directory(parent)
                    return _described(parent, name, components)
            finally:
                os.close(parent)
    raise AssertionError("unreachable")


def open_for_write(tree: Root, path: str, *, force: bool) -> tuple[int, str, str, int]:
    """Start a write of ``path``: (its directory's descriptor, its name, the new file's name, the new file's
    descriptor). The directory is made first with ``force``."""
    components = names(path)
    with errors(path):
        if force and len(components) > 1:
            make_parents(tree, components[:-1])
        parent = parent_of(tree, components)
        try:
            partial = f".{components[-1][: NAME_MAX - 30]}.{secrets.token_hex(8)}.partial"
            flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
            fd = os.open(partial, flags, 0o600, dir_fd=parent)
        except BaseException:
            os.close(parent)
            raise
    return parent, components[-1], partial, fd


def make_parents(tree: Root, components: list[str]) -> None:
    """The directories ``components`` name, made where missing (owned by ``user``)."""
    for depth in range(1, len(components) + 1):
        parent = parent_of(tree, components[:depth])
        try:
            os.mkdir(components[depth - 1], 0o700, dir_fd=parent)
        except FileExistsError:
            continue
        else:
            made = os.open(components[depth - 1], os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=parent)
            try:
                _own(made, None, None, None, DIRECTORY_MODE)
            finally:
                os.close(made)
        finally:
            os.close(parent)


def write_chunk(fd: int, chunk: bytes, path: str) -> None:
    with errors(path):
        view = memoryview(chunk)
        while view:
            view = view[os.write(fd, view) :]


def finish_write(
    parent: int,
    name: str,
    partial: str,
    fd: int,
    path: str,
    *,
    uid: int | None,
    gid: int | None,
    mode: int | None,
) -> VolumeEntry:
    """Sync the new file, give it its owner and mode, rename it over ``name`` and sync the directory."""
    with errors(path):
        _own(fd, uid, gid, mode, FILE_MODE)
        os.fsync(fd)
        existing = _lstat_at(parent, name)
        if existing is not None and stat.S_ISDIR(existing.st_mode):
            raise InvalidRequest(f"{path} is a directory")
        os.rename(partial, name, src_dir_fd=parent, dst_dir_fd=parent)
        _sync_directory(parent)
        return _described(parent, name, names(path))


def abandon_write(parent: int, partial: str) -> None:
    """Remove the new file of a write that did not finish."""
    with contextlib.suppress(OSError):
        os.unlink(partial, dir_fd=parent)


def _sync_directory(parent: int) -> None:
    fd = os.open(".", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC, dir_fd=parent)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _lstat_at(dir_fd: int, name: str) -> os.stat_result | None:
    try:
        return os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return None


def open_read(tree: Root, path: str) -> int:
    """A read-only descriptor of the regular file at ``path`` (a link followed within the volume only)."""
    with errors(path):
        return tree.open_file("/".join(names(path)))


def change(tree: Root, path: str, *, uid: int | None, gid: int | None, mode: int | None) -> VolumeEntry:
    """Change the owner, group or mode of ``path``; a link is changed itself (its owner only)."""
    check_ids(uid, gid, mode)
    components = names(path)
    with errors(path):
        if not components:
            _change(os.open(".", os.O_PATH | os.O_DIRECTORY, dir_fd=tree.fd), uid, gid, mode)
            return entry([], os.fstat(tree.fd))
        parent = parent_of(tree, components)
        try:
            name = components[-1]
            found = os.stat(name, dir_fd=parent, follow_symlinks=False)
            if stat.S_ISLNK(found.st_mode):
                if mode is not None:
                    raise InvalidRequest(f"{path} is a symbolic link: it has no mode of its own")
                os.chown(name, -1 if uid is None else uid, -1 if gid is None else gid, dir_fd=parent,
                         follow_symlinks=False)  # fmt: skip
            else:
                _change(os.open(name, os.O_PATH | os.O_NOFOLLOW, dir_fd=parent), uid, gid, mode)
            return _described(parent, name, components)
        finally:
            os.close(parent)


def _change(fd: int, uid: int | None, gid: int | None, mode: int | None) -> None:
    try:
        if stat.S_ISLNK(os.fstat(fd).st_mode):  # swapped for a link meanwhile
            raise InvalidRequest("the path became a symbolic link")
        through = f"/proc/self/fd/{fd}"
        if uid is not None or gid is not None:
            os.chown(through, -1 if uid is None else uid, -1 if gid is None else gid)
        if mode is not None:
            os.chmod(through, mode)
    finally:
        os.close(fd)


def remove(tree: Root, path: str) -> None:
    """Remove what is at ``path`` (a directory with all under it; a link itself)."""
    components = names(path)
    if not components:
        raise InvalidRequest("the volume's root cannot be removed")
    with errors(path):
        if tree.lstat("/".join(components)) is None:
            raise NotFound(f"{path} does not exist in the volume")
        tree.remove("/".join(components))
