"""What the filesystem RPCs share: the caller's user and the path it names, resolved."""

from __future__ import annotations

import errno

from ... import paths
from ...connect import Call, field
from ...errors import RpcError, os_error_to_rpc
from ...users import User, rpc_user


def user_and_path(call: Call, msg: dict, name: str = "path") -> tuple[User, str]:
    user = rpc_user(call.headers, call.state.default_user)
    return user, paths.resolve(field(msg, name, ""), user, call.state.default_workdir)


def fs_error(err: OSError, path: str) -> RpcError:
    """The Connect error for a failed filesystem call. A full disk is ``internal`` with a plain message, as
    upstream answers: ``resource_exhausted`` would reach the SDK user as a rate-limit error."""
    if err.errno in (errno.ENOSPC, errno.EDQUOT):
        return RpcError("internal", f"not enough disk space for '{path}': {err.strerror}")
    return os_error_to_rpc(err, path)
