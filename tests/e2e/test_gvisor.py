"""The gVisor engine through the official SDK: chosen per create (metadata ``hutch.runtime``) or per
template, it really runs the sandbox under gVisor's kernel, and keeps files on the sandbox's disk."""

from __future__ import annotations

import asyncio
import os

import pytest
from e2b import Sandbox

from hutch.catalog import Catalog, register_template
from hutch.config import Settings
from hutch.templates import base

GVISOR_RELEASE = "4.4.0"


def _kernel(sandbox: Sandbox) -> str:
    """The kernel release the sandbox sees: the host's under crun, gVisor's own (4.4.0) under gVisor."""
    return sandbox.commands.run("uname -r").stdout.strip()


def test_metadata_chooses_gvisor(stack):
    sandbox = stack.create("gvisor")
    try:
        assert _kernel(sandbox) == GVISOR_RELEASE != os.uname().release
        # /tmp is on the sandbox's disk (gVisor's default would be memory), and the disk has its quota.
        assert sandbox.commands.run("stat -f -c %T /tmp").stdout.strip() != "tmpfs"
        blocks, size = sandbox.commands.run("stat -f -c '%b %S' /").stdout.split()
        assert 900 < int(blocks) * int(size) / 2**20 <= 1024
    finally:
        sandbox.kill()


@pytest.fixture()
def gvisor_template(stack):
    async def register() -> None:
        catalog = await Catalog.open(f"sqlite+aiosqlite:///{stack.data_dir / 'hutch.db'}")
        try:
            await register_template(
                catalog,
                template_id="base-gvisor",
                rootfs=base.rootfs_path(Settings().templates.cache_dir),
                default_user=base.DEFAULT_USER,
                engine="gvisor",
            )
        finally:
            await catalog.close()

    asyncio.run(register())
    return "base-gvisor"


def test_a_template_can_default_to_gvisor(stack, gvisor_template):
    sandbox = Sandbox.create(gvisor_template, **stack.opts)
    stack.seen.add(sandbox.sandbox_id)
    try:
        assert _kernel(sandbox) == GVISOR_RELEASE
    finally:
        sandbox.kill()
    # The create's metadata still wins over the template's engine.
    sandbox = Sandbox.create(gvisor_template, metadata={"hutch.runtime": "crun"}, **stack.opts)
    stack.seen.add(sandbox.sandbox_id)
    try:
        assert _kernel(sandbox) == os.uname().release
    finally:
        sandbox.kill()
