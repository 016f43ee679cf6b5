"""The official SDK through the proxy: commands, files and watches on two sandboxes, and the 502 errors
the SDK turns into its own exceptions."""

from __future__ import annotations

import asyncio
import os
import time

import pytest
from e2b import AsyncSandbox, Sandbox
from e2b.exceptions import SandboxNotRunningException, SandboxUnreachableException
from e2b.sandbox.filesystem.watch_handle import FilesystemEventType

from .conftest import SANDBOX_A, SANDBOX_B, SANDBOX_CLOSED, UNKNOWN_SANDBOX, sdk_sandbox


@pytest.fixture()
def sandbox_a(proxy) -> Sandbox:
    return sdk_sandbox(Sandbox, proxy, SANDBOX_A)


@pytest.fixture()
def sandbox_b(proxy) -> Sandbox:
    return sdk_sandbox(Sandbox, proxy, SANDBOX_B)


def test_commands_run_in_the_sandbox_named(sandbox_a, sandbox_b, proxy):
    assert sandbox_a.is_running()
    assert sandbox_a.commands.run("whoami").stdout.strip() == proxy.envds[SANDBOX_A].user
    assert sandbox_b.commands.run("whoami").stdout.strip() == proxy.envds[SANDBOX_B].user


def test_debug_mode_reaches_the_sandbox_the_resolver_picks(proxy):
    # Debug mode: no control plane, the id `debug_sandbox_id`, every call to E2B_SANDBOX_URL.
    sandbox = Sandbox.create(debug=True, sandbox_url=proxy.url)
    assert sandbox.sandbox_id == "debug_sandbox_id"
    assert sandbox.commands.run("whoami").stdout.strip() == proxy.envds[SANDBOX_A].user


def test_output_streams_message_by_message(sandbox_a):
    arrivals: list[tuple[float, str]] = []
    result = sandbox_a.commands.run(
        "for i in 1 2 3; do echo line$i; sleep 0.3; done",
        on_stdout=lambda line: arrivals.append((time.monotonic(), line)),
    )
    assert result.exit_code == 0
    assert [line.strip() for _, line in arrivals] == ["line1", "line2", "line3"]
    # Buffered output would arrive all at once, at the end.
    assert arrivals[-1][0] - arrivals[0][0] > 0.45


def test_background_command_and_connect(sandbox_a):
    handle = sandbox_a.commands.run("sleep 0.5; echo done", background=True)
    again = sandbox_a.commands.connect(handle.pid)
    result = again.wait()
    assert result.exit_code == 0
    assert result.stdout.strip() == "done"


def test_large_file_round_trip(sandbox_a, proxy):
    data = os.urandom(20 * 1024 * 1024)
    sandbox_a.files.write("large.bin", data)
    assert os.path.getsize(os.path.join(proxy.envds[SANDBOX_A].home, "large.bin")) == len(data)
    assert sandbox_a.files.read("large.bin", format="bytes") == data
    sandbox_a.files.remove("large.bin")


def test_gzip_download_passes_through(sandbox_a):
    data = b"compressible " * 10_000
    sandbox_a.files.write("gz.txt", data)
    assert sandbox_a.files.read("gz.txt", format="bytes", gzip=True) == data


def test_two_sandboxes_keep_their_files_apart(sandbox_a, sandbox_b, proxy):
    sandbox_a.files.write("whose.txt", "a")
    sandbox_b.files.write("whose.txt", "b")
    sandbox_a.files.write("only-a.txt", "a")
    assert sandbox_a.files.read("whose.txt") == "a"
    assert sandbox_b.files.read("whose.txt") == "b"
    assert not sandbox_b.files.exists("only-a.txt")
    assert os.path.exists(os.path.join(proxy.envds[SANDBOX_A].home, "only-a.txt"))


async def test_watch_streams_events(proxy):
    sandbox = sdk_sandbox(AsyncSandbox, proxy, SANDBOX_A)
    directory = os.path.join(proxy.envds[SANDBOX_A].home, "watched")
    await sandbox.files.make_dir(directory)
    created = asyncio.Event()
    names: list[str] = []

    def on_event(event) -> None:
        names.append(event.name)
        if event.type == FilesystemEventType.CREATE:
            created.set()

    handle = await sandbox.files.watch_dir(directory, on_event)
    try:
        await sandbox.files.write(f"{directory}/new.txt", "x")
        await asyncio.wait_for(created.wait(), 5)
    finally:
        await handle.stop()
    assert "new.txt" in names


def test_unknown_sandbox_is_not_running(proxy):
    sandbox = sdk_sandbox(Sandbox, proxy, UNKNOWN_SANDBOX)
    assert sandbox.is_running() is False
    with pytest.raises(SandboxNotRunningException):
        sandbox.commands.run("true")
    with pytest.raises(SandboxNotRunningException):
        sandbox.files.read("anything.txt")


def test_closed_port_is_unreachable(proxy):
    sandbox = sdk_sandbox(Sandbox, proxy, SANDBOX_CLOSED)
    with pytest.raises(SandboxUnreachableException, match="port is not open"):
        sandbox.commands.run("true")
    with pytest.raises(SandboxUnreachableException, match="port is not open"):
        sandbox.files.read("anything.txt")
