"""What the filesystem RPCs share: the caller's user and the path it names, resolved."""

from __future__ import annotations

from ... import paths
from ...connect import Call, field
from ...users import User, rpc_user


def user_and_path(call: Call, msg: dict, name: str = "path") -> tuple[User, str]:
    user = rpc_user(call.headers, call.state.default_user)
    return user, paths.resolve(field(msg, name, ""), user, call.state.default_workdir)
