"""crun's launcher on the real kernel: what it starts runs in a private mount namespace and the sandbox's
network namespace, with the root remounted without ``nosuid`` there only, the network namespace's own
sysfs, ports below 1024 open to its users, the unified cgroup hierarchy detached (hybrid hosts), and no
descriptor but its three; a run that cannot be prepared fails with the reason, a cancelled run is waited
for, and a launcher that ended is started again."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
from pathlib import Path

import pytest

from hutch.errors import BackendUnavailable
from hutch.runtime.container.crun import Launcher, hybrid_cgroups

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="namespaces and mounts need root")

NETNS = f"hutch-test-launcher-{os.getpid()}"
PORTS = "/proc/sys/net/ipv4/ip_unprivileged_port_start"


@pytest.fixture()
def place(tmp_path: Path):
    """A network namespace, and a ``root`` bind-mounted ``nosuid`` on the host with a ``sysfs`` directory."""
    subprocess.run(["ip", "netns", "add", NETNS], check=True)
    root, sysfs = tmp_path / "root", tmp_path / "sysfs"
    root.mkdir()
    sysfs.mkdir()
    subprocess.run(["mount", "--bind", str(root), str(root)], check=True)
    subprocess.run(["mount", "-o", "remount,bind,nosuid,nodev", str(root)], check=True)
    try:
        yield root, sysfs
    finally:
        subprocess.run(["umount", "-l", str(root)], check=False)
        subprocess.run(["ip", "netns", "del", NETNS], check=False)


async def _run(launcher: Launcher, place: tuple[Path, Path], script: str, tmp_path: Path) -> tuple[int, str]:
    root, sysfs = place
    out = tmp_path / "out.log"
    request = {
        "argv": ["/bin/sh", "-c", script],
        "netns": f"/run/netns/{NETNS}",
        "root": str(root),
        "sysfs": str(sysfs),
        "hybrid": hybrid_cgroups(),
    }
    with open(out, "wb") as output, open(os.devnull, "rb") as stdin:
        code = await launcher.run(request, stdin.fileno(), output.fileno())
    return code, out.read_text()


def _options(mountinfo: str, path: Path) -> set[str]:
    for line in mountinfo.splitlines():
        fields = line.split()
        if fields[4] == str(path):
            return set(fields[5].split(","))
    raise AssertionError(f"{path} is not mounted")


async def test_a_run_starts_in_the_sandboxs_namespaces(place, tmp_path: Path) -> None:
    launcher = Launcher()
    root, sysfs = place
    host_ports = Path(PORTS).read_text()
    script = "; echo ==; ".join(
        ("ls /proc/self/fd", "cat /proc/self/mountinfo", f"ls {sysfs}/class/net", f"cat {PORTS}")
    )
    try:
        code, out = await _run(launcher, place, script, tmp_path)
    finally:
        launcher.close()
    assert code == 0, out
    descriptors, mountinfo, interfaces, ports = out.split("==\n")
    assert set(descriptors.split()) <= {"0", "1", "2", "3"}  # 3: the listing's own
    assert "nosuid" not in _options(mountinfo, root) and "nodev" in _options(mountinfo, root)
    assert "nosuid" in _options(Path("/proc/self/mountinfo").read_text(), root)  # the host's stays inert
    assert interfaces.split() == ["lo"]
    assert ports.strip() == "0" and Path(PORTS).read_text() == host_ports
    if hybrid_cgroups():
        assert " /sys/fs/cgroup/unified " not in mountinfo
        assert hybrid_cgroups()  # still there for the host


async def test_a_run_that_cannot_be_prepared_says_why(place, tmp_path: Path) -> None:
    launcher = Launcher()
    root, sysfs = place
    out = tmp_path / "out.log"
    request = {"argv": ["/bin/true"], "netns": "/run/netns/none-such", "root": str(root), "sysfs": str(sysfs)}
    try:
        with open(out, "wb") as output, open(os.devnull, "rb") as stdin:
            code = await launcher.run({**request, "hybrid": False}, stdin.fileno(), output.fileno())
    finally:
        launcher.close()
    assert code == 127
    assert "none-such" in out.read_text()


async def test_a_cancelled_run_is_waited_for(place, tmp_path: Path) -> None:
    launcher = Launcher()
    marker = tmp_path / "finished"
    try:
        run = asyncio.ensure_future(_run(launcher, place, f"sleep 0.5; touch {marker}", tmp_path))
        await asyncio.sleep(0.2)
        run.cancel()
        with pytest.raises(asyncio.CancelledError):
            await run
        assert marker.exists()
    finally:
        launcher.close()


def _launchers() -> set[int]:
    """This process's children that are crun launchers."""
    children = Path(f"/proc/self/task/{os.getpid()}/children").read_text().split()
    return {int(pid) for pid in children if b"crun_launcher.py" in Path(f"/proc/{pid}/cmdline").read_bytes()}


async def test_a_launcher_that_ended_is_started_again_and_a_closed_one_ends(place, tmp_path: Path) -> None:
    launcher = Launcher()
    try:
        assert (await _run(launcher, place, "true", tmp_path))[0] == 0
        (first,) = _launchers()
        os.kill(first, signal.SIGKILL)
        # Until it is a zombie: its descriptors are closed only then (its memory, and so its command line,
        # goes earlier), and a request sent before that would still reach its socket.
        while Path(f"/proc/{first}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z":
            await asyncio.sleep(0.01)
        assert (await _run(launcher, place, "exit 3", tmp_path))[0] == 3
        (second,) = _launchers()
        assert second != first

        # One that ends while a run is in flight: that run fails, the next one starts it again.
        run = asyncio.ensure_future(_run(launcher, place, "sleep 0.3", tmp_path))
        await asyncio.sleep(0.1)
        os.kill(second, signal.SIGKILL)
        with pytest.raises(BackendUnavailable, match="launcher ended"):
            await run
        assert (await _run(launcher, place, "exit 4", tmp_path))[0] == 4
    finally:
        launcher.close()
    assert not _launchers()
