"""``POST /init``: the control plane configures envd (env vars, access token, default user and workdir).

The first call may set the token freely; once a token is set, later calls must present it. The clock is
set from ``timestamp`` only when envd was started with ``--set-clock`` (a VM with its own clock); a
container shares the host's clock and must not touch it.
"""

from __future__ import annotations

import contextlib
import json
import time
from datetime import datetime

from ..auth import UNAUTHORIZED, token_ok
from ..errors import HttpError
from ..server import Request, Response
from ..users import lookup


def _strings(value, what: str) -> dict:
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    ):
        raise HttpError(400, f"{what} must be an object of strings")
    return value


async def init(request: Request, response: Response, state) -> None:
    if not token_ok(state, request.headers.get("x-access-token")):
        raise HttpError(401, UNAUTHORIZED)
    try:
        raw = await request.body(limit=1024 * 1024)
        body = json.loads(raw) if raw.strip() else {}
    except ValueError:
        raise HttpError(400, "body must be JSON") from None
    if not isinstance(body, dict):
        raise HttpError(400, "body must be a JSON object")
    env_vars = _strings(body.get("envVars"), "envVars")
    token = body.get("accessToken")
    user = body.get("defaultUser")
    workdir = body.get("defaultWorkdir")
    if token is not None and not isinstance(token, str):
        raise HttpError(400, "accessToken must be a string")
    if user is not None and (not isinstance(user, str) or lookup(user) is None):
        raise HttpError(400, f"defaultUser {user!r} does not exist")
    if workdir is not None and not isinstance(workdir, str):
        raise HttpError(400, "defaultWorkdir must be a string")
    if "envVars" in body:
        state.env_vars = dict(env_vars)
    state.access_token = token or None
    if user:
        state.default_user = user
    if workdir:
        state.default_workdir = workdir
    stamp = body.get("timestamp")
    if stamp and state.set_clock:
        _set_clock(stamp)
    await response.send(204)


def _set_clock(stamp) -> None:
    try:
        moment = datetime.fromisoformat(str(stamp).replace("Z", "+00:00")).timestamp()
    except ValueError:
        raise HttpError(400, "timestamp must be RFC 3339") from None
    if abs(moment - time.time()) > 1:
        with contextlib.suppress(OSError):
            time.clock_settime(time.CLOCK_REALTIME, moment)
