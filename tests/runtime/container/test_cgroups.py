"""A sandbox's CPU weight, on both cgroup layouts (a directory tree in place of ``/sys/fs/cgroup``), and
the weights the warm pool relies on."""

from __future__ import annotations

import logging

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
