"""``mcp-gateway --config JSON``: checks the configuration and the token (``GATEWAY_ACCESS_TOKEN``), writes
them where the gateway and ``get_mcp_token()`` read them (root's alone), starts the gateway in a session
of its own, and returns 0 once it serves, or prints why not on stderr and returns non-zero."""

from __future__ import annotations

import argparse
import json
import os
import re
import select
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from . import config
from .options import forwarded

STOP_WAIT_S = 5.0
_TOKEN = re.compile(r"[\x21-\x7e]{16,512}")


def launch(options: argparse.Namespace) -> int:
    try:
        return _launch(options)
    except LaunchError as error:
        print(f"mcp-gateway: {error}", file=sys.stderr)
        return 1


class LaunchError(RuntimeError):
    pass


def _launch(options: argparse.Namespace) -> int:
    if options.config is None:
        raise LaunchError("--config JSON is required")
    token = os.environ.get("GATEWAY_ACCESS_TOKEN", "")
    if not _TOKEN.fullmatch(token):
        raise LaunchError("GATEWAY_ACCESS_TOKEN must be 16 to 512 printable characters")
    try:
        plans = config.parse(options.config)
    except config.ConfigError as error:
        raise LaunchError(f"invalid configuration: {error}") from None
    _check_port(options.host, options.port)
    options.state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    _write_private(options.state_dir / ".token", token)
    _write_private(options.state_dir / "config.json", options.config)
    read_end, write_end = os.pipe()
    env = {key: value for key, value in os.environ.items() if key != "GATEWAY_ACCESS_TOKEN"}
    gateway = subprocess.Popen(
        [sys.executable, "-m", __package__, "serve", "--status-fd", str(write_end), *forwarded(options)],
        pass_fds=(write_end,),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
        env=env,
    )
    os.close(write_end)
    events = _read_status(read_end, time.monotonic() + options.start_timeout + 10)
    ready = next((event for event in events if event.get("event") == "ready"), None)
    if ready is None:
        failed = next((event["error"] for event in events if event.get("event") == "failed"), None)
        if failed is None:
            running = gateway.poll() is None
            failed = "it did not start in time" if running else "the gateway exited before it served"
        _stop(gateway)
        raise LaunchError(f"{failed}\n(log: {options.log_file})")
    names = ", ".join(event["name"] for event in events if event.get("event") == "server")
    where = f"{options.host}:{options.port}/mcp"
    print(f"MCP gateway serving {ready['tools']} tools of {len(plans)} servers ({names}) on {where}")
    return 0


def _check_port(host: str, port: int) -> None:
    try:
        socket.create_server((host, port)).close()
    except OSError as error:
        reason = f"cannot listen on {host}:{port} ({error.strerror}); is a gateway already running?"
        raise LaunchError(reason) from None


def _write_private(path: Path, text: str) -> None:
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    with os.fdopen(descriptor, "w") as file:
        os.fchmod(descriptor, 0o600)
        file.write(text)


def _read_status(descriptor: int, deadline: float) -> list[dict]:
    """The gateway's status lines until it closes its end (or exits), or until ``deadline``."""
    events, pending = [], b""
    with os.fdopen(descriptor, "rb", buffering=0) as status:
        while (left := deadline - time.monotonic()) > 0:
            readable, _, _ = select.select([status], [], [], left)
            if not readable:
                break
            chunk = status.read(65536)
            if not chunk:
                break
            lines = (pending + chunk).split(b"\n")
            pending = lines.pop()[-65536:]
            events += [json.loads(line) for line in lines if line.strip()]
    return events


def _stop(gateway: subprocess.Popen) -> None:
    """SIGTERM (the gateway stops its servers), then SIGKILL to what is left of its group."""
    gateway.send_signal(signal.SIGTERM)
    try:
        gateway.wait(STOP_WAIT_S)
    except subprocess.TimeoutExpired:
        pass
    try:
        os.killpg(gateway.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    gateway.wait()
