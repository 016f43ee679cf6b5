"""``filesystem.Filesystem/MakeDir``: ``mkdir -p``, owned by the caller; an existing directory conflicts."""

from __future__ import annotations

import os

from ... import paths
from ...connect import Call
from ...entry import entry_info
from ...errors import RpcError
from .common import fs_error, user_and_path


async def make_dir(call: Call, msg: dict) -> dict:
    user, path = user_and_path(call, msg)
    if os.path.lexists(path):
        if os.path.isdir(path):
            raise RpcError("already_exists", f"directory '{path}' already exists")
        raise RpcError("invalid_argument", f"path '{path}' already exists and is not a directory")
    try:
        paths.ensure_parents(path, user)
        os.mkdir(path, 0o755)
        paths.chown(path, user)
        return {"entry": entry_info(path)}
    except FileExistsError:
        raise RpcError("already_exists", f"directory '{path}' already exists") from None
    except OSError as err:
        raise fs_error(err, path) from None
