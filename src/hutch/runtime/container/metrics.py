"""What a sandbox of the container backend uses, read on the host for the node's sampler: CPU time, CPU limit
and memory from its container's cgroup ``/hutch/<container id>`` (whose name changes when a gVisor sandbox
is started again; cgroup v1's ``cpuacct``, ``cpu`` and ``memory`` controllers,
or v2's unified tree), and its disk from ``statvfs`` of the mounted disk.

Memory used is what the sandbox cannot give back at once: its cgroup's charge less the inactive file cache
(the working set, as the kubelet counts it); its cache is the file cache charged to it, and its total its
memory limit (the host's memory when it has none). Its disk is its own file system, where what it writes
over its template's layers goes; the total is its size, the quota.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from pathlib import Path

from ..sampler import Usage
from . import cgroups

# cgroup v1's "no limit" for memory: the largest page-aligned 64-bit value.
_V1_NO_LIMIT = 1 << 62


class CgroupProbe:
    """Reads one sandbox's use: the cgroup ``container`` names (now) under ``hierarchy``
    (``/sys/fs/cgroup``) and its disk at ``disk``. Its limits are read once, with its first reading: they
    do not change while it lives (a new container of the sandbox gets the same)."""

    def __init__(
        self, container: str | Callable[[], str], disk: Path, hierarchy: Path = cgroups.ROOT
    ) -> None:
        self.container = container if callable(container) else lambda: container
        self.disk = str(disk)
        self.hierarchy = hierarchy
        self.v2 = (hierarchy / "cgroup.controllers").exists()
        self._limits: tuple[int, int] | None = None

    @property
    def _cpu(self) -> str:
        return self._cgroup("cpu")

    @property
    def _cpuacct(self) -> str:
        return self._cgroup("cpuacct")

    @property
    def _memory(self) -> str:
        return self._cgroup("memory")

    def _cgroup(self, controller: str) -> str:
        """The directory of the container's cgroup (cgroup v1: of ``controller``'s)."""
        tree = self.hierarchy if self.v2 else self.hierarchy / controller
        return f"{tree}/{cgroups.PARENT}/{self.container()}"

    def __call__(self) -> Usage:
        if self._limits is None:
            self._limits = (self.cpu_count(), self.memory_limit())
        cpu_count, mem_total = self._limits
        mem_used, mem_cache = self.memory()
        disk = os.statvfs(self.disk)
        return Usage(
            cpu_s=self.cpu_seconds(),
            cpu_count=cpu_count,
            mem_used=mem_used,
            mem_total=mem_total,
            mem_cache=mem_cache,
            disk_used=(disk.f_blocks - disk.f_bfree) * disk.f_frsize,
            disk_total=disk.f_blocks * disk.f_frsize,
        )

    def cpu_seconds(self) -> float:
        """The CPU time all of the sandbox's processes used so far."""
        if self.v2:
            [usage_us] = _stat(f"{self._cpuacct}/cpu.stat", b"usage_usec")
            return usage_us / 1e6
        return int(_read(f"{self._cpuacct}/cpuacct.usage")) / 1e9

    def cpu_count(self) -> int:
        """The CPUs its quota amounts to (rounded up); the host's without a quota."""
        if self.v2:
            quota, period = _read(f"{self._cpu}/cpu.max").split()
        else:
            quota = _read(f"{self._cpu}/cpu.cfs_quota_us").strip()
            period = _read(f"{self._cpu}/cpu.cfs_period_us").strip()
        if quota in (b"max", b"-1"):
            return os.cpu_count() or 1
        return max(1, math.ceil(int(quota) / int(period)))

    def memory_limit(self) -> int:
        """Its memory limit in bytes; the host's memory without one."""
        if self.v2:
            limit = _read(f"{self._memory}/memory.max").strip()
            return cgroups._memory_total() if limit == b"max" else int(limit)
        limit_bytes = int(_read(f"{self._memory}/memory.limit_in_bytes"))
        return cgroups._memory_total() if limit_bytes >= _V1_NO_LIMIT else limit_bytes

    def memory(self) -> tuple[int, int]:
        """Memory used (without the inactive file cache) and the file cache, in bytes."""
        if self.v2:
            charged = int(_read(f"{self._memory}/memory.current"))
            inactive, cache = _stat(f"{self._memory}/memory.stat", b"inactive_file", b"file")
        else:
            charged = int(_read(f"{self._memory}/memory.usage_in_bytes"))
            inactive, cache = _stat(f"{self._memory}/memory.stat", b"total_inactive_file", b"total_cache")
        return max(0, charged - inactive), cache


def _read(path: str) -> bytes:
    with open(path, "rb") as file:
        return file.read()


def _stat(path: str, *names: bytes) -> list[int]:
    """The values of ``names`` in a cgroup file of ``name value`` lines."""
    values = dict(line.split(b" ", 1) for line in _read(path).splitlines() if line.startswith(names))
    missing = [name for name in names if name not in values]
    if missing:
        raise ValueError(f"{path} has no {b', '.join(missing).decode()}")
    return [int(values[name]) for name in names]
