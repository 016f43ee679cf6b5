"""Sandbox lifecycle through the official SDK against the real stack: create, info, list, timeouts, kill."""

from __future__ import annotations

import asyncio
import hashlib
import time
from pathlib import Path

import httpx
import pytest
from e2b import AsyncSandbox, CommandExitException, Sandbox, SandboxQuery
from e2b.exceptions import AuthenticationException, NotFoundException, SandboxException


def test_create_run_info_kill(stack):
    sandbox = Sandbox.create(metadata={"purpose": "e2e"}, envs={"GREETING": "hello"}, **stack.opts)
    stack.seen.add(sandbox.sandbox_id)
    result = sandbox.commands.run("echo $GREETING; whoami; hostname")
    assert result.stdout.split() == ["hello", "user", sandbox.sandbox_id]
    info = sandbox.get_info()
    assert info.sandbox_id == sandbox.sandbox_id
    assert info.template_id == "base"
    assert info.metadata == {"purpose": "e2e"}
    assert info.envd_version == "0.9.1"
    assert sandbox.kill() is True
    with pytest.raises(NotFoundException):
        Sandbox.get_info(sandbox.sandbox_id, **stack.opts)
    assert Sandbox.kill(sandbox.sandbox_id, **stack.opts) is False
    assert sandbox.is_running() is False


def test_list_filters_by_metadata(stack):
    tag = f"run-{time.monotonic_ns()}"
    first = Sandbox.create(metadata={"tag": tag, "n": "1"}, **stack.opts)
    second = Sandbox.create(metadata={"tag": tag, "n": "2"}, **stack.opts)
    stack.seen.update({first.sandbox_id, second.sandbox_id})
    try:
        listed = Sandbox.list(query=SandboxQuery(metadata={"tag": tag}), **stack.opts).next_items()
        assert {s.sandbox_id for s in listed} == {first.sandbox_id, second.sandbox_id}
        only = Sandbox.list(query=SandboxQuery(metadata={"tag": tag, "n": "2"}), **stack.opts).next_items()
        assert [s.sandbox_id for s in only] == [second.sandbox_id]
    finally:
        first.kill()
        second.kill()


def test_timeout_kills_the_sandbox(stack):
    sandbox = Sandbox.create(timeout=2, **stack.opts)
    stack.seen.add(sandbox.sandbox_id)
    assert sandbox.commands.run("true").exit_code == 0
    deadline = time.monotonic() + 10
    while sandbox.is_running() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not sandbox.is_running()
    with pytest.raises(NotFoundException):
        sandbox.get_info()


def test_set_timeout_extends_life(stack):
    sandbox = Sandbox.create(timeout=2, **stack.opts)
    stack.seen.add(sandbox.sandbox_id)
    try:
        sandbox.set_timeout(30)
        time.sleep(3)
        assert sandbox.commands.run("echo alive").stdout.strip() == "alive"
        end = sandbox.get_info().end_at
        assert end.timestamp() - time.time() > 20
    finally:
        sandbox.kill()


def test_connect_to_running_sandbox(stack, sandbox):
    sandbox.files.write("/home/user/marker.txt", "from the first client")
    again = Sandbox.connect(sandbox.sandbox_id, **stack.opts)
    assert again.files.read("/home/user/marker.txt") == "from the first client"


def test_files_and_commands_through_the_proxy(sandbox):
    payload = bytes(range(256)) * 4096  # 1 MiB
    sandbox.files.write("/home/user/data/blob.bin", payload)
    assert sandbox.files.read("/home/user/data/blob.bin", format="bytes") == payload
    names = [entry.name for entry in sandbox.files.list("/home/user/data")]
    assert names == ["blob.bin"]
    result = sandbox.commands.run(
        "sha256sum /home/user/data/blob.bin | cut -c1-16; stat -c %U /home/user/data"
    )
    assert result.stdout.split() == [hashlib.sha256(payload).hexdigest()[:16], "user"]


def _engine(sandbox) -> str:
    return sandbox.get_info().metadata["hutch.runtime"]


def test_limits_are_applied(sandbox):
    # What binds: the sandbox's cgroups on the host.
    cgroups = Path("/sys/fs/cgroup")
    memory = (cgroups / "memory/hutch" / sandbox.sandbox_id / "memory.limit_in_bytes").read_text()
    assert int(memory) == 512 * 1024 * 1024
    assert int((cgroups / "pids/hutch" / sandbox.sandbox_id / "pids.max").read_text()) > 0
    # What the sandbox sees: its cgroup under crun; under gVisor, the size of its (virtual) memory.
    if _engine(sandbox) == "gvisor":
        total_kib = sandbox.commands.run("grep MemTotal /proc/meminfo").stdout.split()[1]
        assert int(total_kib) == 512 * 1024
    else:
        seen = sandbox.commands.run("cat /sys/fs/cgroup/memory/memory.limit_in_bytes").stdout
        assert int(seen) == 512 * 1024 * 1024


def test_sudo_and_root(sandbox):
    assert sandbox.commands.run("id -u", user="root").stdout.strip() == "0"
    if _engine(sandbox) == "gvisor":
        # gVisor runs every process with no_new_privs: setuid programs keep the caller's identity.
        with pytest.raises(CommandExitException):
            sandbox.commands.run("sudo id -u")
    else:
        assert sandbox.commands.run("sudo id -u").stdout.strip() == "0"


def _reach(ip: str, port: int) -> str:
    """A shell command printing ``reached`` or ``blocked`` for a TCP connection from inside a sandbox."""
    code = f"import socket; socket.create_connection(('{ip}', {port}), 2)"
    return f'python3 -c "{code}" 2>/dev/null && echo reached || echo blocked'


async def test_many_sandboxes_at_once_are_isolated(stack):
    sandboxes = await asyncio.gather(*(AsyncSandbox.create(**stack.opts) for _ in range(6)))
    stack.seen.update(s.sandbox_id for s in sandboxes)
    try:
        await asyncio.gather(*(s.files.write("/tmp/owner.txt", s.sandbox_id) for s in sandboxes))
        await sandboxes[0].commands.run("sleep 300", background=True, timeout=0)
        for s in sandboxes:
            assert await s.files.read("/tmp/owner.txt") == s.sandbox_id
        # The first sandbox's process is invisible to the others.
        assert "sleep 300" not in (await sandboxes[1].commands.run("ps -eo args")).stdout
        # A neighbour's address is unreachable from inside.
        first_ip = (
            (await sandboxes[0].commands.run("ip -4 -o addr show eth0")).stdout.split()[3].split("/")[0]
        )
        assert (await sandboxes[1].commands.run(_reach(first_ip, 49983))).stdout.strip() == "blocked"
    finally:
        await asyncio.gather(*(s.kill() for s in sandboxes))


def test_no_route_out(sandbox):
    routes = sandbox.commands.run("ip route").stdout
    assert "default" not in routes
    host_side = routes.split()[0].split("/")[0]
    # The host end of the sandbox's link: the API (3000) and every other host port are closed to it.
    assert sandbox.commands.run(_reach(host_side, 3000)).stdout.strip() == "blocked"


def test_bad_api_key(stack):
    with pytest.raises(AuthenticationException):
        Sandbox.create(api_key="e2b_" + "0" * 40, api_url=stack.api_url, sandbox_url=stack.sandbox_url)


def test_unknown_template_is_404_naming_known_ones(stack):
    with pytest.raises(SandboxException) as err:
        Sandbox.create(template="no-such-template", **stack.opts)
    assert "base" in str(err.value)
    response = httpx.post(
        f"{stack.api_url}/v2/sandboxes",
        headers={"X-API-Key": stack.api_key},
        json={"templateID": "no-such-template", "metadata": {}, "envVars": {}},
    )
    assert response.status_code == 404
    assert response.json()["code"] == 404 and "base" in response.json()["message"]


def test_seed_template_id_resolves(stack):
    sandbox = Sandbox.create(template="base-template-000-0000-0000-000000000001", **stack.opts)
    stack.seen.add(sandbox.sandbox_id)
    try:
        assert sandbox.get_info().template_id == "base"
    finally:
        sandbox.kill()


def test_unknown_sandbox_on_the_data_plane(stack):
    response = httpx.get(
        f"{stack.sandbox_url}/health",
        headers={"E2b-Sandbox-Id": "doesnotexist000000000", "E2b-Sandbox-Port": "49983"},
    )
    assert response.status_code == 502
    assert response.json() == {
        "sandboxId": "doesnotexist000000000",
        "message": "The sandbox was not found",
        "code": 502,
    }


def test_debug_mode_reaches_the_development_sandbox(stack):
    sandbox = Sandbox.create(debug=True, sandbox_url=stack.sandbox_url)
    assert sandbox.sandbox_id == "debug_sandbox_id"
    result = sandbox.commands.run("hostname; whoami")
    hostname, user = result.stdout.split()
    assert len(hostname) == 20 and user == "user"


def test_orphans_are_reaped(sandbox):
    # The background child outlives its shell and is handed to envd (the sandbox's init), which reaps it.
    sandbox.commands.run("sh -c 'sleep 0.2 &'")
    sandbox.commands.run("sleep 0.6")
    zombies = sandbox.commands.run("ps -eo stat= | grep -c '^Z' || true").stdout.strip()
    assert zombies == "0"


def test_a_command_of_a_killed_sandbox_ends_saying_so(stack):
    # The proxy's cache still routes to the sandbox a moment after the kill; the SDK's health probe
    # must nevertheless hear "not found", so that it reports the sandbox as gone.
    sandbox = stack.create()
    command = sandbox.commands.run("sleep 60", background=True)
    sandbox.kill()
    with pytest.raises(SandboxException) as err:
        command.wait()
    assert "sandbox was killed or reached its end of life" in str(err.value)
