"""A sandbox's CPU weight, on both cgroup layouts (a directory tree in place of ``/sys/fs/cgroup``), and
the weights the warm pool relies on."""

from __future__ import annotations

import logging
import os
import subprocess

import pytest

from hutch.runtime.container import cgroups

SANDBOX = "abcdefghij0123456789"


@pytest.fixture()
def v1(tmp_path, monkeypatch):
    directory = tmp_path / "cpu" / cgroups.PARENT / SANDBOX
    directory.mkdir(parents=True)
    (directory / "cpu.shares").write_text("1024\n")
    monkeypatch.setattr(cgroups, "ROOT", tmp_path)
    return directory


@pytest.fixture()
def v2(tmp_path, monkeypatch):
    (tmp_path / "cgroup.controllers").write_text("cpu memory pids\n")
    directory = tmp_path / cgroups.PARENT / SANDBOX
    directory.mkdir(parents=True)
    (directory / "cpu.weight").write_text("100\n")
    monkeypatch.setattr(cgroups, "ROOT", tmp_path)
    return directory


def test_pooled_sandboxes_weigh_what_nice_10_weighs():
    assert cgroups.CPU_SHARES == 1024  # the kernel's default: a handed-out sandbox is like any other
    assert cgroups.POOL_CPU_SHARES == 110  # the scheduler's weight of nice 10, against 1024 for nice 0


def test_v1_sets_cpu_shares(v1):
    cgroups.set_cpu_shares(SANDBOX, cgroups.POOL_CPU_SHARES)
    assert (v1 / "cpu.shares").read_text() == "110"
    cgroups.set_cpu_shares(SANDBOX, cgroups.CPU_SHARES)
    assert (v1 / "cpu.shares").read_text() == "1024"


def test_v2_sets_the_same_share_of_cpu_weight(v2):
    cgroups.set_cpu_shares(SANDBOX, cgroups.POOL_CPU_SHARES)
    assert (v2 / "cpu.weight").read_text() == "10"
    cgroups.set_cpu_shares(SANDBOX, cgroups.CPU_SHARES)
    assert (v2 / "cpu.weight").read_text() == "100"
    cgroups.set_cpu_shares(SANDBOX, 2)
    assert (v2 / "cpu.weight").read_text() == "1"  # the least v2 takes


def test_a_sandbox_without_a_cgroup_is_only_logged(v1, caplog):
    with caplog.at_level(logging.WARNING, logger="hutch.runtime"):
        cgroups.set_cpu_shares("gone", cgroups.CPU_SHARES)
    assert "cannot set" in caplog.text


HYBRID = (
    "30 24 0:26 / /sys/fs/cgroup/cpu rw,relatime shared:9 - cgroup cgroup rw,cpu\n"
    "38 24 0:34 / /sys/fs/cgroup/unified rw,nosuid,relatime shared:17 - cgroup2 cgroup2 rw,nsdelegate\n"
)


@pytest.fixture()
def mounts(tmp_path, monkeypatch):
    """A mount table of the hybrid layout, and the ``mount`` commands run (all succeed)."""
    table = tmp_path / "mountinfo"
    table.write_text(HYBRID)
    monkeypatch.setattr(cgroups, "MOUNTS", table)
    commands: list[list[str]] = []

    def run(command, **_):
        commands.append(command)
        return subprocess.CompletedProcess(command, 0, "", "")

    monkeypatch.setattr(cgroups.subprocess, "run", run)
    return table, commands


def test_moves_are_favoured_on_the_cgroup2_mount_keeping_its_options(mounts):
    _, commands = mounts
    assert cgroups.favor_moves() == "/sys/fs/cgroup/unified"
    assert commands == [
        ["mount", "-o", "remount,rw,nosuid,relatime,nsdelegate,favordynmods", "/sys/fs/cgroup/unified"]
    ]


def test_moves_already_favoured_are_left_alone(mounts):
    table, commands = mounts
    table.write_text(HYBRID.replace("rw,nsdelegate", "rw,nsdelegate,favordynmods"))
    assert cgroups.favor_moves() == "/sys/fs/cgroup/unified"
    assert commands == []


def test_without_a_cgroup2_mount_nothing_is_done(mounts):
    table, commands = mounts
    table.write_text(HYBRID.splitlines()[0] + "\n")
    assert cgroups.favor_moves() is None
    assert commands == []


def test_a_kernel_that_refuses_it_is_logged(mounts, monkeypatch, caplog):
    def refuse(command, **_):
        return subprocess.CompletedProcess(command, 32, "", "mount: bad option")

    monkeypatch.setattr(cgroups.subprocess, "run", refuse)
    with caplog.at_level(logging.INFO, logger="hutch.runtime"):
        assert cgroups.favor_moves() is None
    assert "favordynmods" in caplog.text and "bad option" in caplog.text


@pytest.mark.skipif(os.geteuid() != 0, reason="remounts the host's cgroup2 mount")
def test_on_this_host_a_move_into_a_cgroup_does_not_wait_for_the_kernel():
    """The real thing: once favoured (as a node start leaves it), the mount says so."""
    point = cgroups.favor_moves()
    if point is None:
        pytest.skip("no cgroup2 mount, or a kernel without favordynmods")
    table = cgroups.MOUNTS.read_text()
    line = next(line for line in table.splitlines() if f" {point} " in line and " - cgroup2 " in line)
    assert "favordynmods" in line.split(" - ")[1]
