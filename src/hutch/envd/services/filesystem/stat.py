"""``filesystem.Filesystem/Stat``: the ``EntryInfo`` of one path (the link itself for a symlink)."""

from __future__ import annotations

from ...connect import Call
from ...entry import entry_info
from ...errors import RpcError
from .common import fs_error, user_and_path


async def stat(call: Call, msg: dict) -> dict:
    _, path = user_and_path(call, msg)
    try:
        return {"entry": entry_info(path)}
    except NotADirectoryError:
        # A path below a regular file names nothing: ``exists`` is False, ``get_info`` FileNotFound.
        raise RpcError("not_found", f"path '{path}' does not exist") from None
    except OSError as err:
        raise fs_error(err, path) from None
