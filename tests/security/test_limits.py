"""Resource bombs stay inside their sandbox, on each engine: a fork bomb hits the sandbox's pids limit, a
memory bomb its memory limit, a disk filler its disk quota (the SDK's ``NotEnoughSpaceException``), and so
does a flood of its init's output (its log); the sandbox's envd, its neighbours and the host keep
working."""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

import pytest
from e2b import CommandExitException, NotEnoughSpaceException, SandboxException

from tests.stack import ENGINES

PIDS_LIMIT = 1024
DISK_MB = 1024  # the base template's disk


@pytest.fixture(params=ENGINES)
def engine(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture()
def bombed(stack, engine):
    sandbox = stack.create(engine)
    yield sandbox
    sandbox.kill()


@pytest.fixture()
def neighbour(stack, engine):
    sandbox = stack.create(engine)
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


def test_memory_bomb_is_killed_inside(bombed, neighbour, engine):
    if engine == "gvisor":
        # gVisor's kernel lives in the sandbox's memory cgroup: over the limit, the host's OOM killer ends
        # the whole sandbox. The client learns it at once, the sandbox is removed, the neighbour is fine.
        start = time.monotonic()
        with pytest.raises(SandboxException):
            bombed.commands.run("python3 -c 'x = bytearray(2 * 1024 ** 3)'", timeout=60)
        assert time.monotonic() - start < 20
        deadline = time.monotonic() + 15
        while bombed.is_running() and time.monotonic() < deadline:
            time.sleep(0.5)
        assert not bombed.is_running()
        assert neighbour.commands.run("echo fine").stdout.strip() == "fine"
        return
    with pytest.raises(CommandExitException) as err:
        bombed.commands.run("python3 -c 'x = bytearray(2 * 1024 ** 3)'", timeout=60)
    assert err.value.exit_code != 0
    # The sandbox's envd survived its own OOM, and the neighbour did not notice.
    assert bombed.commands.run("echo alive").stdout.strip() == "alive"
    assert neighbour.commands.run("echo fine").stdout.strip() == "fine"


def test_disk_filler_hits_its_quota(stack, bombed, neighbour):
    free_before = shutil.disk_usage(stack.data_dir).free
    bombed.commands.run("dd if=/dev/zero of=/home/user/fill bs=1M 2>/dev/null; df -m /", timeout=120)
    with pytest.raises(NotEnoughSpaceException):
        bombed.files.write("/home/user/more.bin", b"x" * (4 * 1024 * 1024))
    # The filler took at most its quota of the host's disk; envd and the neighbour are fine.
    assert free_before - shutil.disk_usage(stack.data_dir).free < (DISK_MB + 64) * 1024 * 1024
    assert bombed.commands.run("echo alive").stdout.strip() == "alive"
    neighbour.files.write("/home/user/fine.txt", "fine")
    assert neighbour.files.read("/home/user/fine.txt") == "fine"


def test_writes_to_the_inits_output_hit_the_disk_quota(stack, bombed, neighbour):
    # envd's stdout is its log on the host; root in the sandbox can write to it through /proc/1/fd/1.
    free_before = shutil.disk_usage(stack.data_dir).free
    flood = f"head -c {(DISK_MB + 256) * 1024 * 1024} /dev/zero > /proc/1/fd/1; echo $?"
    assert bombed.commands.run(flood, user="root", timeout=120).stdout.strip() != "0"
    assert free_before - shutil.disk_usage(stack.data_dir).free < (DISK_MB + 64) * 1024 * 1024
    assert bombed.commands.run("echo alive").stdout.strip() == "alive"
    assert neighbour.commands.run("echo fine").stdout.strip() == "fine"


def test_node_cap_reserves_host_pids():
    pid_max = int(Path("/proc/sys/kernel/pid_max").read_text())
    cap = Path("/sys/fs/cgroup/pids/hutch/pids.max")
    if not cap.exists():
        cap = Path("/sys/fs/cgroup/hutch/pids.max")
    assert int(cap.read_text()) <= pid_max - 4096
