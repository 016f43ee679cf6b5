"""What the container backend's tests share: a sandbox record with nothing made on the host yet, and host
files a hostile sandbox root links to."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from hutch.runtime.container.disk import Disk
from hutch.runtime.container.network import Networks
from hutch.runtime.container.rootfs import Overlay
from hutch.runtime.container.sandbox import ContainerSandbox
from hutch.runtime.types import TemplateImage

NAMES = ("hostname", "hosts", "resolv.conf")
SANDBOX_ID = "abcdefghij0123456789"


@pytest.fixture()
def sandbox_record(tmp_path) -> Callable[..., ContainerSandbox]:
    """Makes the record of a sandbox in a new directory under ``tmp_path``, as a create's first step has it
    (its network planned at index 3 of 10.99.0.0/16, nothing mounted or started)."""

    def make(engine: str = "crun", sandbox_id: str = SANDBOX_ID) -> ContainerSandbox:
        directory = tmp_path / "sandboxes" / sandbox_id
        directory.mkdir(parents=True)
        disk = Disk(directory, 256)
        template = TemplateImage("base", tmp_path / "template")
        overlay = Overlay(directory, template.rootfs, disk.mountpoint)
        network = Networks("10.99.0.0/16").plan(sandbox_id, 3)
        return ContainerSandbox(sandbox_id, directory, disk, overlay, network, template, engine=engine)

    return make


@dataclass(frozen=True)
class HostFiles:
    """A host directory with canaries where a hostile root points its links: it must stay as it is."""

    directory: Path

    def assert_unchanged(self) -> None:
        assert sorted(p.name for p in self.directory.iterdir()) == list(NAMES)
        for name in NAMES:
            assert (self.directory / name).read_text() == f"host's {name}\n"


@pytest.fixture()
def host_files(tmp_path) -> HostFiles:
    directory = tmp_path / "host"
    directory.mkdir()
    for name in NAMES:
        (directory / name).write_text(f"host's {name}\n")
    return HostFiles(directory)
