"""``kill -9`` loses nothing. Of the whole stack: after a restart, running sandboxes are adopted again
(listed, reachable, their files intact, their timeouts still enforced) and the rest is cleaned up. Of the
proxy process alone: ``hutch up`` starts it again and the sandboxes are reachable within seconds. Of the
main process alone: the proxy dies with it, and a restart adopts the sandboxes as after a whole crash."""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

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

    os.killpg(first.process.pid, signal.SIGKILL)  # the API and the runtime; the proxy dies with them
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


def _proxy_pid(stack) -> int:
    """The pid of the stack's proxy process: a child of ``hutch up`` serving the proxy."""
    pid = int((stack.data_dir / "proxy.pid").read_text())
    assert f"--data-dir\0{stack.data_dir}\0" in Path(f"/proc/{pid}/cmdline").read_text()
    assert _parent_of(pid) == stack.process.pid
    return pid


def _parent_of(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[1])


def _gone(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except FileNotFoundError:
        return True
    return state in ("Z", "X")


def test_a_killed_proxy_is_replaced_and_the_api_never_notices(tmp_path):
    if os.geteuid() != 0:
        pytest.fail("the end-to-end tests need root")
    stack = start_stack(tmp_path, subnet=SUBNET)
    try:
        sandbox = stack.create(timeout=120)
        sandbox.files.write("/home/user/state.txt", "written before the proxy died")
        in_flight: list[BaseException | str] = []

        def run_through_the_proxy() -> None:
            try:
                in_flight.append(sandbox.commands.run("sleep 2; echo finished", timeout=30).stdout)
            except Exception as err:
                in_flight.append(err)

        thread = threading.Thread(target=run_through_the_proxy)
        thread.start()
        time.sleep(0.5)  # the command's stream is open through the proxy
        killed = _proxy_pid(stack)
        os.kill(killed, signal.SIGKILL)
        died = time.monotonic()

        while True:
            try:
                again = Sandbox.connect(sandbox.sandbox_id, **stack.opts)
                assert again.files.read("/home/user/state.txt") == "written before the proxy died"
                break
            except Exception:
                assert time.monotonic() - died < 3, "the sandbox was not reachable again within 3 s"
                time.sleep(0.05)
        thread.join(30)
        assert not thread.is_alive() and in_flight, "the request in flight hung"
        assert again.commands.run("echo ok").stdout == "ok\n"
        # The API and the runtime did not notice: same process, the sandbox still listed.
        assert stack.process.poll() is None
        assert sandbox.sandbox_id in {s.sandbox_id for s in Sandbox.list(**stack.opts).next_items()}
        assert _proxy_pid(stack) != killed
        log = " ".join((tmp_path / "hutch.log").read_text().split())  # the console wraps lines
        assert f"the proxy (pid {killed}) was killed by SIGKILL" in log
        sandbox.kill()
    finally:
        stop_stack(stack)


def test_a_killed_main_process_takes_the_proxy_with_it(tmp_path):
    if os.geteuid() != 0:
        pytest.fail("the end-to-end tests need root")
    first = start_stack(tmp_path, subnet=SUBNET)
    keeper = first.create(timeout=120)
    keeper.files.write("/home/user/state.txt", "kept")
    proxy = _proxy_pid(first)

    os.kill(first.process.pid, signal.SIGKILL)  # the API and the runtime only
    first.process.wait()
    deadline = time.monotonic() + 5
    while not _gone(proxy):
        assert time.monotonic() < deadline, "the proxy outlived the process that started it"
        time.sleep(0.05)

    # The port is free again: a new stack serves on the same ports and adopts the sandbox.
    second = start_stack(tmp_path, subnet=SUBNET, ports=(first.api_port, first.proxy_port))
    second.seen.update(first.seen)
    try:
        again = Sandbox.connect(keeper.sandbox_id, **second.opts)
        assert again.files.read("/home/user/state.txt") == "kept"
        again.kill()
    finally:
        stop_stack(second)
