"""``filesystem.Filesystem/Stat``: the ``EntryInfo`` of one path (the link itself for a symlink)."""

from __future__ import annotations

from ...connect import Call
from ...entry import entry_info
from ...errors import os_error_to_rpc
from .common import user_and_path


async def stat(call: Call, msg: dict) -> dict:
    _, path = user_and_path(call, msg)
    try:
        return {"entry": entry_info(path)}
    except OSError as err:
        raise os_error_to_rpc(err, path) from None
