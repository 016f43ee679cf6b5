"""``filesystem.Filesystem/ListDir``: entries below a directory, down to a depth (symlinked dirs followed)."""

from __future__ import annotations

import os
import stat as stat_mod

from ...connect import Call, field, uint
from ...entry import entry_info
from ...errors import RpcError
from .common import fs_error, user_and_path


def _walk(base: str, shown: str, depth: int, out: list[dict]) -> None:
    with os.scandir(base) as it:
        entries = sorted(it, key=lambda e: e.name)
    for entry in entries:
        path = os.path.join(shown, entry.name)
        try:
            st = entry.stat(follow_symlinks=False)
            out.append(entry_info(path, entry.name, st))
        except OSError:
            continue  # vanished while listing
        if depth > 1 and stat_mod.S_ISDIR(st.st_mode):
            try:
                _walk(entry.path, path, depth - 1, out)
            except OSError:
                continue


async def list_dir(call: Call, msg: dict) -> dict:
    _, path = user_and_path(call, msg)
    depth = uint(field(msg, "depth"), "depth") or 1
    try:
        st = os.stat(path)  # follows a symlinked directory
    except OSError as err:
        raise fs_error(err, path) from None
    if not stat_mod.S_ISDIR(st.st_mode):
        raise RpcError("invalid_argument", f"path '{path}' is not a directory")
    entries: list[dict] = []
    try:
        _walk(path, path, depth, entries)
    except OSError as err:
        raise fs_error(err, path) from None
    return {"entries": entries}
