"""Node-wide limits: the parent cgroup of all sandboxes (``/hutch``) keeps a reserve of the host for Hutch
itself and the system, whatever the sandboxes do together. Also: freezing a sandbox's processes (pause), a
sandbox's CPU weight against the others (low while it waits in the warm pool), and moves into cgroups that
do not wait (``favor_moves``).

Each sandbox's container has its own cgroup, ``/hutch/<container id>`` (``sandbox``: the sandbox's id, or
``<sandbox id>-<n>`` after a gVisor sandbox was started again), and its own limits (set by the OCI config);
the parent caps their sum: processes (a fork bomb in every
sandbox still leaves ``pid_max`` room) and memory. cgroup v1 (``/sys/fs/cgroup/<controller>/hutch``) and
v2 (``/sys/fs/cgroup/hutch``) are both handled.
"""

from __future__ import annotations

import errno
import logging
import subprocess
import time
from pathlib import Path

log = logging.getLogger("hutch.runtime")

ROOT = Path("/sys/fs/cgroup")
MOUNTS = Path("/proc/self/mountinfo")
FAVOR_MOVES = "favordynmods"
PARENT = "hutch"
PID_RESERVE = 4096
MEMORY_RESERVE_FRACTION = 0.10
MEMORY_RESERVE_MIN = 1024 * 1024 * 1024
# A sandbox's CPU weight against its siblings (cgroup v1 ``cpu.shares``; the kernel's default). A sandbox
# waiting in the warm pool gets what nice 10 gets against nice 0 (the scheduler's weights 110 and 1024), so
# that refilling the pool never slows down the sandboxes in use; its cgroup, not its processes, carries the
# weight, so that what the pool started (envd, the template's start command) gets the default back at once
# when it is handed out.
CPU_SHARES = 1024
POOL_CPU_SHARES = 110


def _memory_total() -> int:
    with open("/proc/meminfo") as meminfo:
        for line in meminfo:
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) * 1024
    raise OSError("no MemTotal in /proc/meminfo")


def node_limits() -> dict[str, int]:
    """The caps for all sandboxes together: ``pids`` and ``memory`` (bytes)."""
    pid_max = int(Path("/proc/sys/kernel/pid_max").read_text())
    total = _memory_total()
    reserve = max(MEMORY_RESERVE_MIN, int(total * MEMORY_RESERVE_FRACTION))
    return {"pids": max(1024, pid_max - PID_RESERVE), "memory": max(total // 2, total - reserve)}


def apply_node_limits() -> dict[str, int]:
    """Create the parent cgroup and set its caps; returns them (best effort on unusual layouts)."""
    limits = node_limits()
    if (ROOT / "cgroup.controllers").exists():  # cgroup v2
        parent = ROOT / PARENT
        parent.mkdir(exist_ok=True)
        _write(ROOT / "cgroup.subtree_control", "+pids +memory")
        _write(parent / "pids.max", str(limits["pids"]))
        _write(parent / "memory.max", str(limits["memory"]))
    else:
        for controller, name, value in (
            ("pids", "pids.max", limits["pids"]),
            ("memory", "memory.limit_in_bytes", limits["memory"]),
        ):
            parent = ROOT / controller / PARENT
            if (ROOT / controller).is_dir():
                parent.mkdir(exist_ok=True)
                _write(parent / name, str(value))
    return limits


def favor_moves() -> str | None:
    """Have the kernel favour moving processes between cgroups over forks and exits: cgroup2's
    ``favordynmods``, set on the host's cgroup2 mount (pure v2, or the hybrid layout's ``unified``), for
    the whole host, since every hierarchy shares the lock it changes. A sandbox's start moves processes
    twice (crun's init, envd); without it each move waits for an RCU grace period (9 to 19 ms on a 2-CPU
    VM), with it ~0.1 ms, while every fork and exit on the host pays an atomic operation more. The mount's
    other options are given again as they are. Returns the mount point; None without a cgroup2 mount, or
    where the kernel (before 6.0) or the mount refuses it, which is logged."""
    found = _cgroup2_mount()
    if found is None:
        return None
    path, mount_options, options = found
    if FAVOR_MOVES in options:
        return path
    kept = [*mount_options, *(option for option in options if option not in [*mount_options, "rw", "ro"])]
    done = subprocess.run(
        ["mount", "-o", ",".join(["remount", *kept, FAVOR_MOVES]), path], capture_output=True, text=True
    )
    if done.returncode != 0:
        log.info(
            "moves into cgroups wait for the kernel: %s refused %s: %s",
            path,
            FAVOR_MOVES,
            done.stderr.strip(),
        )
        return None
    return path


def _cgroup2_mount() -> tuple[str, list[str], list[str]] | None:
    """The cgroup2 mount point, its mount's options and its file system's, from the mount table."""
    for line in MOUNTS.read_text().splitlines():
        fields, _, tail = line.partition(" - ")
        kind, _source, options = [*tail.split(" "), "", ""][:3]
        if kind == "cgroup2":
            point, mount_options = fields.split(" ")[4:6]
            return point.encode().decode("unicode_escape"), mount_options.split(","), options.split(",")
    return None


def _write(path: Path, value: str) -> None:
    try:
        path.write_text(value)
    except OSError as err:
        log.warning("cannot set %s to %s: %s", path, value, err)


def set_cpu_shares(container_id: str, shares: int) -> None:
    """Set the CPU weight of all of a container's processes (cgroup v2: ``cpu.weight``, whose default is
    100 where ``cpu.shares``' is 1024); best effort, as a weight only shapes how the CPU is shared."""
    if (ROOT / "cgroup.controllers").exists():
        _write(ROOT / PARENT / container_id / "cpu.weight", str(max(1, shares * 100 // CPU_SHARES)))
    else:
        _write(ROOT / "cpu" / PARENT / container_id / "cpu.shares", str(shares))


def _hierarchies() -> list[Path]:
    """cgroup v2's tree, and v1's controllers."""
    return [ROOT, *(path for path in ROOT.iterdir() if path.is_dir())]


def containers_of(sandbox_id: str) -> set[str]:
    """The names of the cgroups of a sandbox's containers that are there now (in any hierarchy)."""
    names = set()
    for hierarchy in _hierarchies():
        parent = hierarchy / PARENT
        if parent.is_dir():
            names.update(path.name for path in parent.glob(f"{sandbox_id}-*") if path.is_dir())
            if (parent / sandbox_id).is_dir():
                names.add(sandbox_id)
    return names


def remove_sandbox(container_id: str, wait_s: float = 3.0) -> None:
    """Remove a dead container's cgroups that its engine left (runsc does after a failed start). A cgroup
    goes once its last process has exited: killed processes may take a moment, so this waits a little."""
    deadline = time.monotonic() + wait_s
    for directory in (hierarchy / PARENT / container_id for hierarchy in _hierarchies()):
        while True:
            try:
                directory.rmdir()
            except FileNotFoundError:
                break
            except OSError as err:
                if err.errno == errno.EBUSY and time.monotonic() < deadline:
                    time.sleep(0.05)
                    continue
                log.warning("cannot remove cgroup %s: %s", directory, err)
            break


def freeze(container_id: str, frozen: bool, wait_s: float = 5.0) -> None:
    """Freeze (or thaw) every process of a sandbox with the cgroup freezer: they stay in memory and use no
    CPU. Returns once the kernel reports the new state."""
    v2 = ROOT / PARENT / container_id / "cgroup.freeze"
    if v2.exists():
        v2.write_text("1" if frozen else "0")
        events, wanted = v2.parent / "cgroup.events", f"frozen {1 if frozen else 0}"
    else:
        events = ROOT / "freezer" / PARENT / container_id / "freezer.state"
        events.write_text("FROZEN" if frozen else "THAWED")
        wanted = "FROZEN" if frozen else "THAWED"
    deadline = time.monotonic() + wait_s
    delay = 0.0005
    while wanted not in events.read_text().split("\n"):
        if time.monotonic() > deadline:
            raise TimeoutError(f"container {container_id} did not become {'frozen' if frozen else 'thawed'}")
        time.sleep(delay)
        delay = min(delay * 2, 0.02)
