"""Built-in images cached per fingerprint: built once (one node at a time), under a partial name, then
renamed into place with their fingerprint beside them."""

from __future__ import annotations

import fcntl
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

from ..errors import BackendUnavailable


def build_once(target: Path, wanted: str, make: Callable[[Path], None], *, force: bool = False) -> Path:
    """``target``, made by ``make(partial)`` unless it exists with the fingerprint ``wanted``. Nodes sharing
    the cache build one at a time (each in its own mount namespace, none sees the others' mounts in the
    partial directory): the others wait, then find it built. A failed ``make`` leaves nothing behind."""
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target.with_name("build.lock"), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        stamp = target.with_name("fingerprint")
        if target.exists() and not force and stamp.exists() and stamp.read_text() == wanted:
            return target
        partial = target.with_name(f"{target.name}.partial")
        remove(partial)
        try:
            make(partial)
        except BaseException:
            remove(partial)
            raise
        remove(target)
        partial.rename(target)
        stamp.write_text(wanted)
        return target


def remove(path: Path) -> None:
    """Remove a (partial) root filesystem, refusing while anything is still mounted inside it."""
    if not path.exists():
        return
    mounted = subprocess.run(["findmnt", "-rn", "-o", "TARGET"], capture_output=True, text=True).stdout
    if any(line == str(path) or line.startswith(f"{path}/") for line in mounted.splitlines()):
        raise BackendUnavailable(f"{path} still has mounts inside; unmount them first")
    shutil.rmtree(path)
