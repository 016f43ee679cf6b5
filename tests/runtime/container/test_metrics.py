"""Reading a sandbox's use from its cgroup, on cgroup v1 (``cpuacct``, ``cpu``, ``memory`` controllers)
and v2 (one unified tree): CPU time, the CPUs its quota amounts to, memory without the inactive file
cache, the limit (the host's memory without one), and its disk's fill."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from hutch.runtime.container import cgroups
from hutch.runtime.container.metrics import CgroupProbe

SANDBOX = "abcdefghij0123456789"
MIB = 1024 * 1024


def _write(directory: Path, files: dict[str, str]) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (directory / name).write_text(text)


def _v1(root: Path, *, quota: str = "150000", limit: int = 512 * MIB) -> None:
    _write(root / "cpuacct" / "hutch" / SANDBOX, {"cpuacct.usage": "2500000000\n"})
    cpu = {"cpu.cfs_quota_us": f"{quota}\n", "cpu.cfs_period_us": "100000\n"}
    _write(root / "cpu" / "hutch" / SANDBOX, cpu)
    stat = "cache 50000000\ntotal_cache 60000000\ntotal_rss 40000000\ntotal_inactive_file 30000000\n"
    _write(
        root / "memory" / "hutch" / SANDBOX,
        {"memory.usage_in_bytes": "100000000\n", "memory.limit_in_bytes": f"{limit}\n", "memory.stat": stat},
    )


def _v2(root: Path, *, cpu_max: str = "200000 100000", memory_max: str = str(256 * MIB)) -> None:
    _write(root, {"cgroup.controllers": "cpu memory pids\n"})
    stat = "anon 40000000\nfile 70000000\nactive_file 20000000\ninactive_file 50000000\n"
    _write(
        root / "hutch" / SANDBOX,
        {
            "cpu.stat": "usage_usec 1500000\nuser_usec 1000000\nsystem_usec 500000\n",
            "cpu.max": f"{cpu_max}\n",
            "memory.current": "120000000\n",
            "memory.max": f"{memory_max}\n",
            "memory.stat": stat,
        },
    )


def test_cgroup_v1(tmp_path: Path) -> None:
    _v1(tmp_path / "cgroup")
    usage = CgroupProbe(SANDBOX, tmp_path, hierarchy=tmp_path / "cgroup")()
    assert usage.cpu_s == 2.5
    assert usage.cpu_count == 2  # 1.5 CPUs of quota, rounded up
    assert (usage.mem_used, usage.mem_total, usage.mem_cache) == (70_000_000, 512 * MIB, 60_000_000)
    disk = os.statvfs(tmp_path)
    assert usage.disk_total == disk.f_blocks * disk.f_frsize
    assert 0 < usage.disk_used <= usage.disk_total


def test_cgroup_v1_without_limits(tmp_path: Path) -> None:
    _v1(tmp_path / "cgroup", quota="-1", limit=9223372036854771712)
    usage = CgroupProbe(SANDBOX, tmp_path, hierarchy=tmp_path / "cgroup")()
    assert usage.cpu_count == os.cpu_count()
    assert usage.mem_total == cgroups._memory_total()


def test_cgroup_v2(tmp_path: Path) -> None:
    _v2(tmp_path / "cgroup")
    usage = CgroupProbe(SANDBOX, tmp_path, hierarchy=tmp_path / "cgroup")()
    assert usage.cpu_s == 1.5
    assert usage.cpu_count == 2
    assert (usage.mem_used, usage.mem_total, usage.mem_cache) == (70_000_000, 256 * MIB, 70_000_000)


def test_cgroup_v2_without_limits(tmp_path: Path) -> None:
    _v2(tmp_path / "cgroup", cpu_max="max 100000", memory_max="max")
    usage = CgroupProbe(SANDBOX, tmp_path, hierarchy=tmp_path / "cgroup")()
    assert usage.cpu_count == os.cpu_count()
    assert usage.mem_total == cgroups._memory_total()


def test_a_sandbox_without_a_cgroup_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "cgroup" / "cpuacct").mkdir(parents=True)
    with pytest.raises(FileNotFoundError):
        CgroupProbe(SANDBOX, tmp_path, hierarchy=tmp_path / "cgroup")()
