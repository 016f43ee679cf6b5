"""``process.Process/Start``: spawn a command (pipes or PTY) and stream its events."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator

from ... import paths
from ...connect import Call, field, message, uint
from ...errors import RpcError
from ...users import rpc_user
from .events import follow

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def _strings(value, what: str) -> list:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise RpcError("invalid_argument", f"{what} must be a list of strings")
    return value


def _string_map(value, what: str) -> dict:
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        raise RpcError("invalid_argument", f"{what} must be a map of strings")
    for key in value:
        if not key or "=" in key or "\x00" in key or "\x00" in value[key]:
            raise RpcError("invalid_argument", f"invalid environment variable name {key!r}")
    return value


async def start(call: Call, msg: dict) -> AsyncIterator[dict]:
    state = call.state
    user = rpc_user(call.headers, state.default_user)
    spec = message(field(msg, "process"), "process")
    cmd = field(spec, "cmd")
    if not isinstance(cmd, str) or not cmd or "\x00" in cmd:
        raise RpcError("invalid_argument", "process.cmd must be a non-empty string")
    args = _strings(field(spec, "args"), "process.args")
    if any("\x00" in arg for arg in args):
        raise RpcError("invalid_argument", "process.args must not contain NUL bytes")
    envs = _string_map(field(spec, "envs"), "process.envs")
    cwd = field(spec, "cwd")
    if cwd is not None and not isinstance(cwd, str):
        raise RpcError("invalid_argument", "process.cwd must be a string")
    workdir = paths.resolve(cwd or "", user, state.default_workdir)
    if not os.path.isdir(workdir):
        raise RpcError("invalid_argument", f"cwd '{workdir}' does not exist")

    pty_size = None
    pty = field(msg, "pty")
    if pty is not None:
        size = message(field(message(pty, "pty"), "size"), "pty.size")
        pty_size = (uint(field(size, "cols"), "cols", 0xFFFF), uint(field(size, "rows"), "rows", 0xFFFF))
    tag = field(msg, "tag")
    if tag is not None and not isinstance(tag, str):
        raise RpcError("invalid_argument", "tag must be a string")
    stdin = field(msg, "stdin")
    env = {
        "PATH": os.environ.get("PATH", DEFAULT_PATH),
        "HOME": user.home,
        "USER": user.name,
        "LOGNAME": user.name,
        **state.env_vars,
        **envs,
    }
    config: dict = {"cmd": cmd}
    if args:
        config["args"] = args
    if envs:
        config["envs"] = envs
    if cwd is not None:
        config["cwd"] = cwd
    process, queue = state.processes.start(
        config=config,
        argv=[cmd, *args],
        user=user,
        cwd=workdir,
        env=env,
        tag=tag,
        stdin=stdin is None or stdin is True,
        pty_size=pty_size,
        timeout_s=call.timeout_s,
    )
    async for event in follow(process, queue, started=True):
        yield event
