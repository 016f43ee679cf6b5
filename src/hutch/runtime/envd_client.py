"""The runtime's side of envd: wait for ``/health``, send ``/init``, upload a file, and run commands (a
template's start and ready commands, a build's steps) through envd's ``process.Process/Start`` (Connect,
JSON codec); each call on a connection of its own (``envd_http``)."""

from __future__ import annotations

import asyncio
import base64
import json
import time
from collections.abc import AsyncIterable, Callable
from datetime import UTC, datetime
from urllib.parse import urlencode

from ..envd.connect import END_STREAM, envelope, frames
from ..envd.errors import RpcError
from ..errors import BackendUnavailable
from . import envd_http
from .types import SandboxSpec, TemplateImage


async def wait_healthy(base_url: str, timeout_s: float = 10.0) -> None:
    """Poll envd's ``/health`` until it answers 204."""
    deadline = time.monotonic() + timeout_s
    delay = 0.001
    while True:
        try:
            response = await envd_http.call(base_url, "GET", "/health", timeout_s=1.0)
            if response.status == 204:
                return
        except envd_http.Unreachable:
            pass
        if time.monotonic() > deadline:
            raise BackendUnavailable(f"envd at {base_url} did not become healthy within {timeout_s} s")
        await asyncio.sleep(delay)
        delay = min(delay * 2, 0.02)


async def init(
    base_url: str,
    spec: SandboxSpec,
    *,
    default_user: str,
    current_token: str | None = None,
) -> None:
    """Configure envd for ``spec`` (env vars, access token, default user and workdir, clock): a fresh one,
    or one restored from a checkpoint, which holds ``current_token``."""
    headers = {"X-Access-Token": current_token} if current_token else {}
    body: dict = {
        "envVars": {**spec.template.env, **spec.env_vars},
        "defaultUser": default_user,
        "timestamp": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
    }
    if spec.access_token:
        body["accessToken"] = spec.access_token
    if spec.template.default_workdir:
        body["defaultWorkdir"] = spec.template.default_workdir
    headers["Content-Type"] = "application/json"
    try:
        response = await envd_http.call(
            base_url, "POST", "/init", headers=headers, body=json.dumps(body).encode(), timeout_s=5.0
        )
    except envd_http.Unreachable as error:
        raise BackendUnavailable(f"envd /init failed: {error}") from error
    if response.status != 204:
        raise BackendUnavailable(f"envd /init failed: {response.status} {response.text[: envd_http.SHOWN]}")


async def upload(base_url: str, path: str, content: AsyncIterable[bytes], *, user: str = "root") -> None:
    """Write ``content`` to ``path`` in the sandbox (envd's raw ``/files`` upload), as ``user``."""
    target = "/files?" + urlencode({"path": path, "username": user})
    try:
        response = await envd_http.call(
            base_url,
            "POST",
            target,
            headers={"Content-Type": "application/octet-stream"},
            body=content,
            timeout_s=None,
        )
    except envd_http.Unreachable as error:
        raise BackendUnavailable(f"upload to {path} failed: {error}") from error
    if response.status >= 300:
        raise BackendUnavailable(
            f"upload to {path} failed: {response.status} {response.text[: envd_http.SHOWN]}"
        )


async def run(
    base_url: str,
    command: str,
    *,
    user: str,
    envs: dict[str, str] | None = None,
    cwd: str | None = None,
    tag: str | None = None,
    wait: bool = True,
    timeout_s: float | None = 60.0,
    shell: tuple[str, ...] = ("/bin/bash", "-l", "-c"),
    on_output: Callable[[str], None] | None = None,
    access_token: str | None = None,
) -> int | None:
    """Run ``command`` with ``shell`` (``bash -l -c``) as ``user`` in the sandbox; ``on_output`` gets its
    stdout and stderr as they come. With ``wait``, returns its exit code; without, returns once it started
    (envd keeps it running after this call ends)."""
    process: dict = {"cmd": shell[0], "args": [*shell[1:], command], "envs": dict(envs or {})}
    if cwd is not None:
        process["cwd"] = cwd
    request: dict = {"process": process, "stdin": False}
    if tag is not None:
        request["tag"] = tag
    headers = {
        "Content-Type": "application/connect+json",
        "Connect-Protocol-Version": "1",
        "Authorization": "Basic " + base64.b64encode(f"{user}:".encode()).decode(),
    }
    if access_token:
        headers["X-Access-Token"] = access_token
    try:
        async with envd_http.streaming(
            base_url,
            "POST",
            "/process.Process/Start",
            headers=headers,
            body=envelope(0, json.dumps(request).encode()),
            timeout_s=timeout_s,
        ) as response:
            if response.status != 200:
                raise BackendUnavailable(f"envd could not start {command!r}: HTTP {response.status}")
            async for flags, payload in frames(response.chunks()):
                message = json.loads(payload or b"{}")
                if flags & END_STREAM:
                    error = message.get("error")
                    if error:
                        raise BackendUnavailable(
                            f"{command!r} failed in the sandbox: {str(error)[: envd_http.SHOWN]}"
                        )
                    raise BackendUnavailable(f"{command!r} ended without an exit status")
                event = message.get("event", {})
                if on_output is not None and "data" in event:
                    for stream in ("stdout", "stderr"):
                        if stream in event["data"]:
                            on_output(base64.b64decode(event["data"][stream]).decode(errors="replace"))
                if "start" in event and not wait:
                    return None
                if "end" in event:
                    return int(event["end"].get("exitCode", -1))
    except (RpcError, envd_http.Unreachable, ValueError, TypeError, AttributeError) as error:
        # A broken connection, envelope or message: envd is the tenant's to replace.
        raise BackendUnavailable(f"envd's stream for {command!r} is broken: {error}") from error
    raise BackendUnavailable(f"envd's stream for {command!r} ended early")


async def start_template(base_url: str, template: TemplateImage, timeout_s: float = 60.0) -> None:
    """Start the template's start command (tagged ``start_cmd``) and wait until its ready command
    succeeds; a template without them is ready at once."""
    user = template.start_user or template.default_user
    if template.start_cmd:
        await run(base_url, template.start_cmd, user=user, envs=template.env, tag="start_cmd", wait=False)
    if not template.ready_cmd:
        return
    deadline = time.monotonic() + timeout_s
    delay = 0.02
    while await run(base_url, template.ready_cmd, user=user, envs=template.env) != 0:
        if time.monotonic() > deadline:
            raise BackendUnavailable(
                f"template {template.template_id}: ready command did not succeed within {timeout_s} s"
            )
        await asyncio.sleep(delay)
        delay = min(delay * 2, 0.2)
