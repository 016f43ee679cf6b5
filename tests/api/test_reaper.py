"""Timeouts: a sandbox is killed (its envd process gone) when its time is up, and not before."""

from __future__ import annotations

import os
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from e2b import Sandbox
from e2b.exceptions import SandboxNotFoundException

from hutch.runtime.types import ENVD_PORT
from tests.api.conftest import Caller


def envd_pid(port: int) -> int | None:
    """The pid of the envd process serving ``port``, if one runs."""
    wanted = ["-m", "hutch.envd", "--port", str(port)]
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().decode().split("\0")
        except OSError:
            continue
        if all(part in argv for part in wanted) and argv[argv.index("--port") + 1] == str(port):
            return int(entry.name)
    return None


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return not Path(f"/proc/{pid}/stat").read_text().split(") ")[1].startswith("Z")


def wait_until_gone(caller: Caller, sandbox_id: str, deadline: datetime) -> datetime:
    while sandbox_id in caller.stack.handles():
        assert datetime.now(UTC) < deadline, "the sandbox outlived its timeout"
        time.sleep(0.05)
    return datetime.now(UTC)


def test_expiry_kills_the_envd_process_on_time(caller: Caller) -> None:
    sandbox = Sandbox.create(timeout=1, **caller.opts)
    end_at = sandbox.get_info().end_at
    _, port = caller.stack.handles()[sandbox.sandbox_id].address(ENVD_PORT)
    pid = envd_pid(port)
    assert pid is not None and alive(pid)

    gone_at = wait_until_gone(caller, sandbox.sandbox_id, end_at + timedelta(seconds=1.5))
    assert gone_at >= end_at
    assert not alive(pid)
    with pytest.raises(SandboxNotFoundException):
        sandbox.get_info()
    assert sandbox.kill() is False
    assert Sandbox.list(**caller.opts).next_items() == []


def test_set_timeout_shortens(caller: Caller) -> None:
    sandbox = Sandbox.create(timeout=300, **caller.opts)
    sandbox.set_timeout(1)
    end_at = datetime.now(UTC) + timedelta(seconds=1)
    wait_until_gone(caller, sandbox.sandbox_id, end_at + timedelta(seconds=1.5))


def test_set_timeout_extends(caller: Caller) -> None:
    sandbox = Sandbox.create(timeout=1, **caller.opts)
    Sandbox.set_timeout(sandbox.sandbox_id, 30, **caller.opts)
    time.sleep(1.5)
    info = sandbox.get_info()
    assert (info.end_at - datetime.now(UTC)).total_seconds() > 25
    assert sandbox.sandbox_id in caller.stack.handles()
    sandbox.kill()


def test_connect_keeps_an_expiring_sandbox_alive(caller: Caller) -> None:
    sandbox = Sandbox.create(timeout=1, **caller.opts)
    sandbox.connect(timeout=30)
    time.sleep(1.5)
    assert sandbox.get_info().state.value == "running"
    assert sandbox.sandbox_id in caller.stack.handles()
    sandbox.kill()
