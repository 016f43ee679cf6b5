"""What this server does not carry out, asked for through the official SDK against the real stack: each
request is an exception whose message names the field, and leaves nothing behind. A snapshot asked to keep
what its engine cannot (memory, on crun), or cannot now (memory gVisor cannot save), is refused instead of
kept with less; asked for the files only, a gVisor snapshot keeps no memory. v1's connect carries out
``memory: false`` as v2's does."""

from __future__ import annotations

from typing import Any

import pytest
from e2b import Sandbox, SandboxException, Secret
from e2b.api.client.api.sandboxes import post_sandboxes_sandbox_id_connect
from e2b.api.client.models import ConnectSandbox
from e2b.api.client_sync import get_api_client
from e2b.connection_config import ConnectionConfig

from bench.memory_server import start_dialer, start_server
from tests.e2e.test_gvisor import GVISOR_RELEASE
from tests.stack import Stack

AWS_TOKEN = Secret.iam_token(audience="sts.amazonaws.com", token_type="JWT-SVID")

CREATE_REFUSALS: list[tuple[dict[str, Any], str]] = [
    ({"iam": {"tokens": {"aws": AWS_TOKEN}}}, "iam"),
    ({"network": {"https_ports": [8443]}}, "network.httpsPorts"),
]  # fmt: skip


def running(stack: Stack) -> set[str]:
    return {item.sandbox_id for item in Sandbox.list(**stack.opts).next_items()}


def refused(error: pytest.ExceptionInfo[SandboxException], field: str) -> str:
    message = str(error.value)
    assert message.startswith(f"400: {field} is not supported by this server: "), message
    return message


@pytest.mark.parametrize(("options", "field"), CREATE_REFUSALS)
def test_a_create_with_a_field_this_server_lacks_names_it(
    stack: Stack, options: dict[str, Any], field: str
) -> None:
    before = running(stack)
    with pytest.raises(SandboxException) as error:
        Sandbox.create(**stack.opts, **options)
    refused(error, field)
    assert running(stack) == before


def test_a_strict_pause_is_refused_and_the_sandbox_runs_on(stack: Stack) -> None:
    sandbox = stack.create()
    try:
        with pytest.raises(SandboxException) as error:
            sandbox.pause(strict=True)
        refused(error, "requireHealthyGuest")
        assert sandbox.get_info().state.value == "running"
        assert sandbox.commands.run("echo on").stdout == "on\n"
    finally:
        sandbox.kill()


def test_a_memory_snapshot_of_a_crun_sandbox_is_refused(stack: Stack) -> None:
    sandbox = stack.create("crun")
    try:
        with pytest.raises(SandboxException) as error:
            sandbox.create_snapshot(mode="full")
        message = str(error.value)
        assert message.startswith("400: memory is not supported for snapshots of crun sandboxes: "), message
        assert "keeps files only" in message
        assert not Sandbox.list_snapshots(sandbox_id=sandbox.sandbox_id, **stack.opts).next_items()
        info = sandbox.create_snapshot(mode="filesystem")
        assert Sandbox.delete_snapshot(info.snapshot_id, **stack.opts) is True
    finally:
        sandbox.kill()


def test_a_files_only_snapshot_of_a_gvisor_sandbox_keeps_no_memory(stack: Stack) -> None:
    sandbox = stack.create("gvisor")
    try:
        sandbox.files.write("/home/user/notes.txt", "kept")
        pid = start_server(sandbox)
        info = sandbox.create_snapshot(mode="filesystem")
        child = Sandbox.create(info.snapshot_id, **stack.opts)
        stack.seen.add(child.sandbox_id)
        try:
            assert child.commands.run("uname -r").stdout.strip() == GVISOR_RELEASE  # the snapshot's engine
            assert child.files.read("/home/user/notes.txt") == "kept"
            assert pid not in {process.pid for process in child.commands.list()}  # booted afresh
        finally:
            child.kill()
        assert Sandbox.delete_snapshot(info.snapshot_id, **stack.opts) is True
    finally:
        sandbox.kill()


def test_a_gvisor_memory_snapshot_that_cannot_be_saved_is_refused(stack: Stack) -> None:
    sandbox = stack.create("gvisor")
    try:
        dialer = start_dialer(sandbox)
        with pytest.raises(SandboxException) as error:
            sandbox.create_snapshot(mode="full")
        message = str(error.value)
        expected = f"409: the memory of sandbox {sandbox.sandbox_id} cannot be saved now"
        assert message.startswith(expected), message
        assert not Sandbox.list_snapshots(sandbox_id=sandbox.sandbox_id, **stack.opts).next_items()
        assert dialer in {process.pid for process in sandbox.commands.list()}  # the sandbox ran on
    finally:
        sandbox.kill()


def test_a_v1_connect_without_memory_boots_the_paused_sandbox_again(stack: Stack) -> None:
    sandbox = stack.create()
    try:
        sandbox.files.write("/home/user/notes.txt", "kept")
        pid = start_server(sandbox)
        sandbox.pause()
        client = get_api_client(ConnectionConfig(**stack.opts))
        connected = post_sandboxes_sandbox_id_connect.sync_detailed(
            sandbox.sandbox_id, client=client, body=ConnectSandbox(timeout=60, memory=False)
        )
        assert connected.status_code == 201, connected.content
        resumed = Sandbox.connect(sandbox.sandbox_id, **stack.opts)
        assert resumed.files.read("/home/user/notes.txt") == "kept"
        assert pid not in {process.pid for process in resumed.commands.list()}
    finally:
        sandbox.kill()
