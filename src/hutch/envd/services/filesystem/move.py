"""``filesystem.Filesystem/Move``: rename, creating the destination's parents."""

from __future__ import annotations

import errno
import os
import shutil

from ... import paths
from ...connect import Call
from ...entry import entry_info
from ...errors import RpcError
from .common import fs_error, user_and_path


async def move(call: Call, msg: dict) -> dict:
    user, source = user_and_path(call, msg, "source")
    _, destination = user_and_path(call, msg, "destination")
    if not os.path.lexists(source):
        raise RpcError("not_found", f"path '{source}' does not exist")
    try:
        paths.ensure_parents(destination, user)
        try:
            os.rename(source, destination)
        except OSError as err:
            if err.errno != errno.EXDEV:  # another filesystem: copy, then delete
                raise
            shutil.move(source, destination)
        return {"entry": entry_info(destination)}
    except OSError as err:
        raise fs_error(err, destination) from None
