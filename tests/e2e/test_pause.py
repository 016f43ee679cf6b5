"""Pause and resume through the official SDK against the real stack, on both engines: files, a background
process and its in-memory state survive a full pause; a filesystem pause keeps the files and reboots;
pausing twice is refused, and pausing and resuming again keeps everything (E2B's data-loss reports); a
timeout pauses a sandbox created with ``on_timeout: pause``, and traffic to its port resumes it; paused
sandboxes outlive a restart of Hutch."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import httpx
import pytest
from e2b import NotFoundException, Sandbox, SandboxQuery, SandboxState

from bench.memory_server import ask, start_dialer, start_server
from tests.stack import ENGINES, WORKER, Stack, start_stack, stop_stack

# The restart test's own stack, apart from the session's (and test_crash's 30+).
RESTART_SUBNET = f"10.{50 + WORKER}.0.0/16"


@pytest.mark.parametrize("engine", ENGINES)
def test_full_pause_keeps_files_processes_and_memory_twice(stack: Stack, engine: str) -> None:
    sandbox = stack.create(engine)
    try:
        sandbox.files.write("/home/user/notes.txt", "kept")
        pid = start_server(sandbox)
        token, count = ask(sandbox)
        for round_ in (1, 2):
            assert sandbox.pause() is not False
            info = Sandbox.get_info(sandbox.sandbox_id, **stack.opts)
            assert info.state.value == "paused"
            assert pause_mode(stack, sandbox.sandbox_id) == "full"
            assert Sandbox.pause(sandbox.sandbox_id, **stack.opts) is False  # already paused: 409
            paused = Sandbox.list(query=SandboxQuery(state=[SandboxState.PAUSED]), **stack.opts).next_items()
            assert sandbox.sandbox_id in {item.sandbox_id for item in paused}
            resumed = Sandbox.connect(sandbox.sandbox_id, **stack.opts)
            assert Sandbox.get_info(sandbox.sandbox_id, **stack.opts).state.value == "running"
            assert resumed.files.read("/home/user/notes.txt") == "kept"
            assert ask(resumed) == (token, count + round_)
            assert pid in {process.pid for process in resumed.commands.list()}
        # The server started before the pauses is still the SDK's to follow and to stop.
        assert Sandbox.connect(sandbox.sandbox_id, **stack.opts).commands.connect(pid).kill()
    finally:
        sandbox.kill()


@pytest.mark.parametrize("engine", ENGINES)
def test_filesystem_pause_keeps_files_and_reboots(stack: Stack, engine: str) -> None:
    sandbox = stack.create(engine)
    try:
        sandbox.files.write("/home/user/notes.txt", "kept")
        pid = start_server(sandbox)
        ask(sandbox)
        sandbox.pause(mode="filesystem")
        info = Sandbox.get_info(sandbox.sandbox_id, **stack.opts)
        assert info.state.value == "paused"
        assert pause_mode(stack, sandbox.sandbox_id) == "filesystem"
        resumed = Sandbox.connect(sandbox.sandbox_id, **stack.opts)
        assert resumed.files.read("/home/user/notes.txt") == "kept"
        assert pid not in {process.pid for process in resumed.commands.list()}
        assert resumed.commands.run("echo back").stdout == "back\n"
        # The processes are gone, so the server must be started again.
        start_server(resumed)
        assert ask(resumed)[1] == 1
    finally:
        sandbox.kill()


@pytest.mark.parametrize("engine", ENGINES)
def test_boot_id_is_kept_by_a_full_pause_and_renewed_by_a_boot(stack: Stack, engine: str) -> None:
    sandbox = stack.create(engine)
    try:
        read = "cat /proc/sys/kernel/random/boot_id"
        first = sandbox.commands.run(read).stdout
        other = stack.create(engine)
        assert first.strip() and first != other.commands.run(read).stdout
        other.kill()
        sandbox.pause()
        assert Sandbox.connect(sandbox.sandbox_id, **stack.opts).commands.run(read).stdout == first
        sandbox.pause(mode="filesystem")
        assert Sandbox.connect(sandbox.sandbox_id, **stack.opts).commands.run(read).stdout != first
    finally:
        sandbox.kill()


def test_a_gvisor_sandbox_whose_memory_cannot_be_saved_is_paused_with_its_files(stack: Stack) -> None:
    sandbox = stack.create("gvisor")
    try:
        sandbox.files.write("/home/user/notes.txt", "kept")
        dialer = start_dialer(sandbox)
        assert sandbox.pause() is not False
        # gVisor cannot save the connection: the sandbox ran on untouched, then was paused, honestly.
        assert pause_mode(stack, sandbox.sandbox_id) == "filesystem"
        resumed = Sandbox.connect(sandbox.sandbox_id, **stack.opts)
        assert resumed.files.read("/home/user/notes.txt") == "kept"
        assert dialer not in {process.pid for process in resumed.commands.list()}
    finally:
        sandbox.kill()


def pause_mode(stack: Stack, sandbox_id: str) -> str | None:
    response = httpx.get(f"{stack.api_url}/sandboxes/{sandbox_id}", headers={"X-API-Key": stack.api_key})
    return response.json().get("pauseMode")


def test_kill_of_a_paused_sandbox_frees_it(stack: Stack) -> None:
    sandbox = stack.create()
    sandbox.pause()
    assert Sandbox.kill(sandbox.sandbox_id, **stack.opts) is True
    assert sandbox.sandbox_id not in {s.sandbox_id for s in Sandbox.list(**stack.opts).next_items()}
    # Its disk, overlay and network go in the background, within moments.
    directory = stack.data_dir / "sandboxes" / sandbox.sandbox_id
    deadline = time.monotonic() + 10
    while directory.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not directory.exists()


def wait_for_state(stack: Stack, sandbox_id: str, state: str, timeout_s: float = 15) -> None:
    deadline = time.monotonic() + timeout_s
    while Sandbox.get_info(sandbox_id, **stack.opts).state.value != state:
        assert time.monotonic() < deadline, f"sandbox {sandbox_id} did not become {state}"
        time.sleep(0.1)


def test_a_timeout_pauses_and_traffic_resumes(stack: Stack) -> None:
    lifecycle = {"on_timeout": "pause", "auto_resume": True}
    sandbox = Sandbox.create(timeout=3, lifecycle=lifecycle, **stack.opts)
    stack.seen.add(sandbox.sandbox_id)
    try:
        start_server(sandbox)
        token, count = ask(sandbox)
        info = Sandbox.get_info(sandbox.sandbox_id, **stack.opts)
        assert info.lifecycle == {"on_timeout": "pause", "auto_resume": True}
        wait_for_state(stack, sandbox.sandbox_id, "paused")
        # A request to the sandbox's port through the proxy wakes it and is answered.
        headers = {"E2b-Sandbox-Id": sandbox.sandbox_id, "E2b-Sandbox-Port": "8000"}
        answer = httpx.get(f"{stack.sandbox_url}/", headers=headers, timeout=60)
        assert answer.status_code == 200 and answer.text == f"{token} {count + 1}"
        assert Sandbox.get_info(sandbox.sandbox_id, **stack.opts).state.value == "running"
    finally:
        sandbox.kill()


def test_a_timeout_pauses_the_files_then_connect_resumes(stack: Stack) -> None:
    lifecycle = {"on_timeout": {"action": "pause", "mode": "filesystem"}}
    sandbox = Sandbox.create(timeout=2, lifecycle=lifecycle, **stack.opts)
    stack.seen.add(sandbox.sandbox_id)
    try:
        sandbox.files.write("/home/user/notes.txt", "kept")
        wait_for_state(stack, sandbox.sandbox_id, "paused")
        # Without autoResume, traffic does not wake it: it is not running.
        assert not sandbox.is_running()
        resumed = Sandbox.connect(sandbox.sandbox_id, timeout=60, **stack.opts)
        assert resumed.files.read("/home/user/notes.txt") == "kept"
    finally:
        sandbox.kill()


def test_paused_sandboxes_survive_a_restart(tmp_path: Path) -> None:
    first = start_stack(tmp_path, subnet=RESTART_SUBNET)
    ports = (first.api_port, first.proxy_port)
    frozen = Sandbox.create(**first.opts)
    saved = Sandbox.create(metadata={"hutch.runtime": "gvisor"}, **first.opts)  # a checkpoint on disk
    filed = Sandbox.create(**first.opts)
    first.seen.update({frozen.sandbox_id, saved.sandbox_id, filed.sandbox_id})
    answers = {}
    for sandbox in (frozen, saved):
        start_server(sandbox)
        answers[sandbox.sandbox_id] = ask(sandbox)
        sandbox.pause()
    filed.files.write("/home/user/notes.txt", "kept")
    filed.pause(mode="filesystem")
    first.process.send_signal(signal.SIGTERM)  # a clean stop: paused sandboxes stay
    first.process.wait(120)

    second = start_stack(tmp_path, subnet=RESTART_SUBNET, ports=ports)
    second.seen.update(first.seen)
    try:
        for sandbox in (frozen, saved):
            assert Sandbox.get_info(sandbox.sandbox_id, **second.opts).state.value == "paused"
            token, count = answers[sandbox.sandbox_id]
            assert ask(Sandbox.connect(sandbox.sandbox_id, **second.opts)) == (token, count + 1)
        assert Sandbox.connect(filed.sandbox_id, **second.opts).files.read("/home/user/notes.txt") == "kept"
    finally:
        for sandbox in (frozen, saved, filed):
            Sandbox.kill(sandbox.sandbox_id, **second.opts)
        stop_stack(second)


def test_pause_and_resume_errors(stack: Stack) -> None:
    with pytest.raises(NotFoundException):
        Sandbox.pause("nosuchsandbox", **stack.opts)
    with pytest.raises(NotFoundException):
        Sandbox.connect("nosuchsandbox", **stack.opts)
    sandbox = stack.create()
    try:
        headers = {"X-API-Key": stack.api_key}
        running = httpx.post(
            f"{stack.api_url}/sandboxes/{sandbox.sandbox_id}/resume", json={}, headers=headers
        )
        assert running.status_code == 409 and running.json()["code"] == 409
        # An already running sandbox's connect is a 200, a paused one's a 201.
        assert (
            httpx.post(
                f"{stack.api_url}/v2/sandboxes/{sandbox.sandbox_id}/connect", json={}, headers=headers
            ).status_code
            == 200
        )
        sandbox.pause()
        assert (
            httpx.post(
                f"{stack.api_url}/v2/sandboxes/{sandbox.sandbox_id}/connect", json={}, headers=headers
            ).status_code
            == 201
        )
    finally:
        sandbox.kill()
