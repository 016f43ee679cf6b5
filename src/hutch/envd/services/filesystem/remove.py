"""``filesystem.Filesystem/Remove``: ``rm -rf`` (a missing path is fine; symlinks are not followed)."""

from __future__ import annotations

import os
import shutil

from ...connect import Call
from .common import fs_error, user_and_path


async def remove(call: Call, msg: dict) -> dict:
    _, path = user_and_path(call, msg)
    try:
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path)
        else:
            os.unlink(path)
    except FileNotFoundError:
        pass
    except OSError as err:
        raise fs_error(err, path) from None
    return {}
