"""The record of one sandbox: where its envd, log and checkpoint are, and its hold on its container's init
(a pidfd: killing through it reaches that process, and releasing it lets the process be)."""

from __future__ import annotations

import asyncio
import os
import subprocess

from hutch.runtime.types import ENGINES, ENVD_PORT


def test_where_its_parts_are(sandbox_record):
    sandbox = sandbox_record()
    # Index 3 of 10.99.0.0/16: the host holds 10.99.0.6, the sandbox 10.99.0.7.
    assert sandbox.envd_url == f"http://10.99.0.7:{ENVD_PORT}"
    assert sandbox.log_path == sandbox.directory / "layer" / "envd.log"  # on its own disk
    assert sandbox.checkpoint_path == sandbox.directory / "checkpoint"
    assert sandbox.engine in ENGINES
    assert (sandbox.handle, sandbox.paused, sandbox.spec, sandbox.init_pidfd) == (None, None, None, None)


async def test_kill_init_ends_the_process(sandbox_record):
    sandbox = sandbox_record()
    init = subprocess.Popen(["sleep", "60"])
    try:
        sandbox.init_pidfd = os.pidfd_open(init.pid)
        sandbox.kill_init()
        assert init.wait(timeout=5) == -9
        sandbox.kill_init()  # a dead init is fine
    finally:
        init.kill()
        sandbox.release_init()


async def test_release_init_stops_watching_and_leaves_the_process(sandbox_record):
    sandbox = sandbox_record()
    init = subprocess.Popen(["sleep", "60"])
    try:
        sandbox.init_pidfd = pidfd = os.pidfd_open(init.pid)
        exited = asyncio.Event()
        asyncio.get_running_loop().add_reader(pidfd, exited.set)
        sandbox.release_init()
        assert sandbox.init_pidfd is None
        assert not asyncio.get_running_loop().remove_reader(pidfd)  # no longer watched
        assert init.poll() is None
        sandbox.release_init()  # twice is fine
    finally:
        init.kill()
        init.wait()


async def test_container_removed_waits_for_the_removal_and_forgets_it(sandbox_record):
    sandbox = sandbox_record()
    steps: list[str] = []

    async def removal() -> None:
        await asyncio.sleep(0.01)
        steps.append("removed")
        raise RuntimeError("a removal that failed is no reason to stop")

    sandbox.removing = {asyncio.ensure_future(removal()), asyncio.ensure_future(removal())}
    await sandbox.container_removed()
    assert steps == ["removed", "removed"] and not sandbox.removing
    await sandbox.container_removed()  # nothing left to wait for
