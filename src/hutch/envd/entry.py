"""``EntryInfo`` messages from ``lstat``: type, Go-style permission string, owner names, user metadata."""

from __future__ import annotations

import grp
import os
import pwd
import stat
import time

FILE = "FILE_TYPE_FILE"
DIRECTORY = "FILE_TYPE_DIRECTORY"
SYMLINK = "FILE_TYPE_SYMLINK"
METADATA_PREFIX = "user.e2b."
CHECK_INTERVAL_S = 1.0


_permissions: dict[int, str] = {}


def permissions(mode: int) -> str:
    """Go's ``FileMode.String()`` for a POSIX mode, e.g. ``-rw-r--r--``, ``drwxr-xr-x``, ``Lrwxrwxrwx``."""
    text = _permissions.get(mode)
    if text is None:
        text = _permissions[mode] = _format_permissions(mode)
    return text


def _format_permissions(mode: int) -> str:
    letters = ""
    if stat.S_ISDIR(mode):
        letters += "d"
    if stat.S_ISLNK(mode):
        letters += "L"
    if stat.S_ISBLK(mode) or stat.S_ISCHR(mode):
        letters += "D"
    if stat.S_ISFIFO(mode):
        letters += "p"
    if stat.S_ISSOCK(mode):
        letters += "S"
    if mode & stat.S_ISUID:
        letters += "u"
    if mode & stat.S_ISGID:
        letters += "g"
    if stat.S_ISCHR(mode):
        letters += "c"
    if mode & stat.S_ISVTX:
        letters += "t"
    rwx = "".join(ch if mode & (1 << (8 - i)) else "-" for i, ch in enumerate("rwxrwxrwx"))
    return (letters or "-") + rwx


def _stamp(path: str) -> tuple:
    try:
        st = os.stat(path)
    except OSError:
        return ()
    return (st.st_ino, st.st_mtime_ns, st.st_size)


class _NameCache:
    """id -> name from a database file (``/etc/passwd``, ``/etc/group``), dropped when the file changes, so
    users added later in the sandbox (``useradd``) show up by name."""

    def __init__(self, source: str, lookup) -> None:
        self.source = source
        self.lookup = lookup
        self.names: dict[int, str] = {}
        self.stamp: tuple = ()
        self.checked = -CHECK_INTERVAL_S

    def name(self, number: int) -> str:
        now = time.monotonic()
        if now - self.checked >= CHECK_INTERVAL_S:  # a listing of thousands of entries checks once
            self.checked = now
            stamp = _stamp(self.source)
            if stamp != self.stamp:
                self.names.clear()
                self.stamp = stamp
        name = self.names.get(number)
        if name is None:
            try:
                name = self.names[number] = self.lookup(number)
            except KeyError:
                return str(number)  # not cached: the user may be added any moment
        return name


_owners = _NameCache("/etc/passwd", lambda uid: pwd.getpwuid(uid).pw_name)
_groups = _NameCache("/etc/group", lambda gid: grp.getgrgid(gid).gr_name)


def owner_name(uid: int) -> str:
    return _owners.name(uid)


def group_name(gid: int) -> str:
    return _groups.name(gid)


def timestamp(nanoseconds: int) -> str:
    """RFC 3339 in UTC with microseconds, as protobuf JSON writes a ``Timestamp``."""
    seconds, rest = divmod(nanoseconds, 1_000_000_000)
    t = time.gmtime(seconds)
    return f"{t[0]:04d}-{t[1]:02d}-{t[2]:02d}T{t[3]:02d}:{t[4]:02d}:{t[5]:02d}.{rest // 1000:06d}Z"


def read_metadata(path: str) -> dict[str, str]:
    """The user metadata stored as ``user.e2b.*`` extended attributes."""
    try:
        names = os.listxattr(path, follow_symlinks=False)
    except OSError:
        return {}
    metadata = {}
    for name in names:
        if name.startswith(METADATA_PREFIX):
            try:
                value = os.getxattr(path, name, follow_symlinks=False)
            except OSError:
                continue
            metadata[name[len(METADATA_PREFIX) :]] = value.decode("utf-8", "replace")
    return metadata


def file_type(mode: int) -> str | None:
    if stat.S_ISDIR(mode):
        return DIRECTORY
    if stat.S_ISREG(mode):
        return FILE
    return None


def entry_info(path: str, name: str | None = None, st: os.stat_result | None = None) -> dict:
    """Build an ``EntryInfo`` for ``path`` (not following a final symlink)."""
    if st is None:
        st = os.lstat(path)
    mode = st.st_mode
    info = {
        "name": name if name is not None else (os.path.basename(path) or "/"),
        "path": path,
        "size": str(st.st_size),
        "mode": stat.S_IMODE(mode) & 0o777,
        "permissions": permissions(mode),
        "owner": owner_name(st.st_uid),
        "group": group_name(st.st_gid),
        "modifiedTime": timestamp(st.st_mtime_ns),
    }
    if stat.S_ISLNK(mode):
        info["isSymlink"] = True
        try:
            info["symlinkTarget"] = os.path.realpath(path)
            kind = file_type(os.stat(path).st_mode)
        except OSError:
            kind = None
        info["type"] = kind or SYMLINK
    else:
        kind = file_type(mode)
        if kind is not None:
            info["type"] = kind
    metadata = read_metadata(path)
    if metadata:
        info["metadata"] = metadata
    return info
