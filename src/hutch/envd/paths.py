"""Path resolution for requests: ``~`` and relative paths against the user's home, ``""`` to the workdir."""

from __future__ import annotations

import contextlib
import os

from .errors import RpcError
from .users import User


def resolve(path: str, user: User, workdir: str | None) -> str:
    """Resolve ``path`` for ``user`` the way upstream envd does, then normalise it."""
    if not isinstance(path, str):
        raise RpcError("invalid_argument", "path must be a string")
    if "\x00" in path:
        raise RpcError("invalid_argument", "path must not contain NUL bytes")
    if path == "":
        return os.path.normpath(workdir or user.home)
    if path == "~" or path.startswith("~/"):
        path = user.home + path[1:]
    elif path.startswith("~"):
        raise RpcError("invalid_argument", f"path '{path}' names another user's home, which is not supported")
    if not os.path.isabs(path):
        path = os.path.join(user.home, path)
    normalized = os.path.normpath(path)
    # normpath keeps a leading '//' (POSIX); fold it.
    if normalized.startswith("//"):
        normalized = "/" + normalized.lstrip("/")
    return normalized


def ensure_parents(path: str, user: User) -> None:
    """Create the missing parent directories of ``path`` (0755), owned by ``user``."""
    parent = os.path.dirname(path)
    missing = []
    while parent and not os.path.isdir(parent):
        missing.append(parent)
        parent = os.path.dirname(parent)
    for directory in reversed(missing):
        try:
            os.mkdir(directory, 0o755)
        except FileExistsError:
            continue
        chown(directory, user)


def chown(path: str, user: User) -> None:
    if os.getuid() == 0:
        with contextlib.suppress(OSError):
            os.lchown(path, user.uid, user.gid)
