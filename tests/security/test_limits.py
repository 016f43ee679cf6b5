"""Resource bombs stay inside their sandbox: a fork bomb hits the sandbox's pids limit, a memory bomb its
memory limit; the sandbox's envd, its neighbours and the host keep working."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest
from e2b import CommandExitException, Sandbox

PIDS_LIMIT = 1024


@pytest.fixture()
def bombed(stack):
    sandbox = Sandbox.create(**stack.opts)
    stack.seen.add(sandbox.sandbox_id)
    yield sandbox
    sandbox.kill()


@pytest.fixture()
def neighbour(stack):
    sandbox = Sandbox.create(**stack.opts)
    stack.seen.add(sandbox.sandbox_id)
    yield sandbox
    sandbox.kill()


def _pids_current(sandbox_id: str) -> int:
    for path in (
        f"/sys/fs/cgroup/pids/hutch/{sandbox_id}/pids.current",
        f"/sys/fs/cgroup/hutch/{sandbox_id}/pids.current",
    ):
        if Path(path).exists():
            return int(Path(path).read_text())
    raise AssertionError(f"no pids cgroup for {sandbox_id}")


def test_fork_bomb_is_contained(bombed, neighbour):
    bombed.commands.run("bash -c ':(){ :|:& };:'", background=True, timeout=0)
    deadline = time.monotonic() + 20
    while _pids_current(bombed.sandbox_id) < PIDS_LIMIT * 0.9 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert _pids_current(bombed.sandbox_id) <= PIDS_LIMIT
    # The neighbour and the host still start processes.
    assert neighbour.commands.run("echo fine", timeout=20).stdout.strip() == "fine"
    assert subprocess.run(["true"], timeout=10).returncode == 0


def test_memory_bomb_is_killed_inside(bombed, neighbour):
    with pytest.raises(CommandExitException) as err:
        bombed.commands.run("python3 -c 'x = bytearray(2 * 1024 ** 3)'", timeout=60)
    assert err.value.exit_code != 0
    # The sandbox's envd survived its own OOM, and the neighbour did not notice.
    assert bombed.commands.run("echo alive").stdout.strip() == "alive"
    assert neighbour.commands.run("echo fine").stdout.strip() == "fine"


def test_node_cap_reserves_host_pids():
    pid_max = int(Path("/proc/sys/kernel/pid_max").read_text())
    cap = Path("/sys/fs/cgroup/pids/hutch/pids.max")
    if not cap.exists():
        cap = Path("/sys/fs/cgroup/hutch/pids.max")
    assert int(cap.read_text()) <= pid_max - 4096
