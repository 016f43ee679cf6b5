"""``kill -9`` of the whole stack loses nothing: after a restart, running sandboxes are adopted again
(listed, reachable, their files intact, their timeouts still enforced) and the rest is cleaned up."""

from __future__ import annotations

import os
import signal
import time

import pytest
from e2b import Sandbox
from e2b.exceptions import NotFoundException

from tests.stack import WORKER, start_stack, stop_stack

SUBNET = f"10.{30 + WORKER}.0.0/16"


def test_sandboxes_survive_a_crash_of_the_stack(tmp_path):
    if os.geteuid() != 0:
        pytest.fail("the end-to-end tests need root")
    first = start_stack(tmp_path, subnet=SUBNET)
    ports = (first.api_port, first.proxy_port)
    keeper = Sandbox.create(timeout=120, metadata={"role": "keeper"}, **first.opts)
    short = Sandbox.create(timeout=15, **first.opts)
    first.seen.update({keeper.sandbox_id, short.sandbox_id})
    keeper.files.write("/home/user/state.txt", "written before the crash")
    keeper.commands.run("sleep 600", background=True, timeout=0)

    os.killpg(first.process.pid, signal.SIGKILL)  # the API, the proxy and the runtime at once
    first.process.wait()

    second = start_stack(tmp_path, subnet=SUBNET, ports=ports)
    second.seen.update(first.seen)
    try:
        again = Sandbox.connect(keeper.sandbox_id, **second.opts)
        assert again.files.read("/home/user/state.txt") == "written before the crash"
        assert any("sleep 600" in " ".join([p.cmd, *p.args]) for p in again.commands.list())
        assert again.get_info().metadata == {"role": "keeper"}
        listed = {s.sandbox_id for s in Sandbox.list(**second.opts).next_items()}
        assert {keeper.sandbox_id, short.sandbox_id} <= listed
        # The short sandbox's timeout still runs out, though the process that set it died.
        deadline = time.monotonic() + 30
        while short.sandbox_id in {s.sandbox_id for s in Sandbox.list(**second.opts).next_items()}:
            assert time.monotonic() < deadline, "the adopted sandbox's timeout was not enforced"
            time.sleep(0.3)
        with pytest.raises(NotFoundException):
            Sandbox.get_info(short.sandbox_id, **second.opts)
        # The warm pool of the crashed run was torn down, not adopted: once the background teardowns are
        # done, only the keeper, the new pool and the new development sandbox have directories.
        deadline = time.monotonic() + 15
        while True:
            directories = {p.name for p in (second.data_dir / "sandboxes").iterdir()}
            if len(directories) <= 1 + 2 + 1 or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert keeper.sandbox_id in directories
        assert len(directories) <= 1 + 2 + 1, directories
        again.kill()
    finally:
        stop_stack(second)
