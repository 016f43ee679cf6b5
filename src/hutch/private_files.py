"""Files and directories of the host that only their owner (root) may read: made with that mode from the
start, never widened later, and existing ones narrowed (a data directory from an older Hutch)."""

from __future__ import annotations

import errno
import os
import secrets
from pathlib import Path

DIRECTORY_MODE = 0o700
FILE_MODE = 0o600


def private_directory(path: Path) -> Path:
    """``path`` as a directory only its owner may enter: made so (with any missing parents), or an existing
    one narrowed."""
    path.mkdir(mode=DIRECTORY_MODE, parents=True, exist_ok=True)
    os.chmod(path, DIRECTORY_MODE)  # an existing one, or the umask's
    return path


def private_file(path: Path) -> None:
    """Make ``path`` an (empty, if new) file only its owner may read; narrow an existing one."""
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, FILE_MODE)
    try:
        os.fchmod(descriptor, FILE_MODE)
    finally:
        os.close(descriptor)


def narrow(path: Path) -> None:
    """Make an existing file readable by its owner only; nothing when there is none (or a symlink)."""
    try:
        descriptor = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as error:
        if error.errno in (errno.ENOENT, errno.ELOOP):
            return
        raise
    try:
        os.fchmod(descriptor, FILE_MODE)
    finally:
        os.close(descriptor)


def write_private(path: Path, text: str) -> None:
    """Replace ``path`` with a file holding ``text``, readable by its owner only from the moment it exists
    (written beside it under a fresh name, then renamed over it)."""
    partial = path.with_name(f".{path.name}.{secrets.token_hex(6)}")
    descriptor = os.open(
        partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, FILE_MODE
    )
    try:
        with os.fdopen(descriptor, "w") as file:
            file.write(text)
        os.replace(partial, path)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
