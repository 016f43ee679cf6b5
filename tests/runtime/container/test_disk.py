"""A sandbox's disk: a copy of a blank file system of its size, on a loop device that frees itself when
the disk is unmounted; its size is the quota."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from hutch.runtime.container.disk import Disk, _blank, _copy_sparse


def _backed_by(image: Path) -> list[str]:
    found = []
    for backing in Path("/sys/block").glob("loop*/loop/backing_file"):
        if backing.read_text().strip() == str(image):
            found.append(backing.parent.parent.name)
    return found


def _options(mountpoint: Path) -> list[str]:
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        fields = line.split()
        if fields[4] == str(mountpoint):
            return fields[5].split(",")
    return []


@pytest.fixture()
def blanks(tmp_path: Path) -> Path:
    if os.geteuid() != 0:
        pytest.fail("the disk tests need root")
    return tmp_path / "blanks"


def _disk(tmp_path: Path, blanks: Path, name: str, size_mb: int = 64) -> Disk:
    directory = tmp_path / name
    directory.mkdir()
    return Disk(directory, size_mb)


def test_a_disk_is_a_mounted_copy_of_its_blank(tmp_path, blanks):
    first, second = _disk(tmp_path, blanks, "a"), _disk(tmp_path, blanks, "b")
    first.create(blanks)
    blank = _blank(blanks, 64)
    made = blank.stat().st_mtime_ns
    second.create(blanks)
    try:
        assert blank.stat().st_mtime_ns == made and len(list(blanks.iterdir())) == 1  # made once
        for disk in (first, second):
            assert {"nosuid", "nodev", "rw"} <= set(_options(disk.mountpoint))
            assert len(_backed_by(disk.image.resolve())) == 1
            assert disk.image.stat().st_mode & 0o777 == 0o600
            assert disk.image.stat().st_blocks * 512 < 4 * 1024 * 1024  # sparse
        (first.mountpoint / "mine").write_text("first's")
        assert not (second.mountpoint / "mine").exists()
        fs = os.statvfs(first.mountpoint)
        assert fs.f_blocks * fs.f_frsize <= 64 * 1024 * 1024
    finally:
        first.remove()
        second.remove()
    assert not _options(first.mountpoint) and not _backed_by(first.image.resolve())  # the device freed itself
    assert not _backed_by(second.image.resolve())


def test_its_size_is_its_quota(tmp_path, blanks):
    disk = _disk(tmp_path, blanks, "full", size_mb=16)
    disk.create(blanks)
    try:
        with pytest.raises(OSError) as raised, open(disk.mountpoint / "fill", "wb") as f:
            for _ in range(32):
                f.write(b"\0" * 1024 * 1024)
                f.flush()
                os.fsync(f.fileno())
        assert raised.value.errno == errno.ENOSPC
    finally:
        disk.remove()


def test_a_sparse_copy_is_identical_and_keeps_its_holes(tmp_path):
    source = tmp_path / "source"
    with open(source, "wb") as f:
        f.truncate(8 * 1024 * 1024)
        f.seek(1024 * 1024)
        f.write(b"data" * 1024)
        f.seek(6 * 1024 * 1024)
        f.write(b"tail" * 1024)
    copy = tmp_path / "copy"
    _copy_sparse(source, copy)
    assert copy.read_bytes() == source.read_bytes()
    assert copy.stat().st_blocks * 512 < 1024 * 1024
    with pytest.raises(FileExistsError):  # never over an existing file
        _copy_sparse(source, copy)
