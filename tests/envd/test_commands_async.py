"""envd's process service through the async SDK: ``AsyncSandbox.commands``."""

from __future__ import annotations

import asyncio
import hashlib
import os
import pwd
import time
import uuid

import pytest
from e2b import (
    AuthenticationException,
    CommandExitException,
    InvalidArgumentException,
    NotFoundException,
    SandboxException,
    TimeoutException,
)
from e2b.sandbox_async.commands import command as async_command_module

from tests.envd.host import alive


async def listed_pids(sandbox) -> set[int]:
    return {p.pid for p in await sandbox.commands.list()}


async def eventually(check, timeout: float = 3.0) -> bool:
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return True
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.02)


# -- foreground runs ------------------------------------------------------------------------------------


async def test_run_stdout_and_stderr(async_sandbox):
    result = await async_sandbox.commands.run("echo out; echo err >&2")
    assert (result.stdout, result.stderr, result.exit_code, result.error) == ("out\n", "err\n", 0, None)


async def test_run_sync_and_async_callbacks(async_sandbox):
    stdout: list[str] = []
    stderr: list[str] = []

    async def on_stderr(text: str) -> None:
        await asyncio.sleep(0)
        stderr.append(text)

    result = await async_sandbox.commands.run(
        "for i in 1 2 3; do echo o$i; echo e$i >&2; done", on_stdout=stdout.append, on_stderr=on_stderr
    )
    assert "".join(stdout) == "o1\no2\no3\n" == result.stdout
    assert "".join(stderr) == "e1\ne2\ne3\n" == result.stderr


async def test_nonzero_exit_raises_with_output(async_sandbox):
    with pytest.raises(CommandExitException) as info:
        await async_sandbox.commands.run("echo partial; echo broken >&2; exit 42")
    assert info.value.exit_code == 42
    assert info.value.stdout == "partial\n"
    assert info.value.stderr == "broken\n"
    assert info.value.error == "exit status 42"


async def test_unicode_output(async_sandbox):
    text = "ünïcödé ✓ 漢字 🚀"
    result = await async_sandbox.commands.run(f"printf '%s' '{text}'")
    assert result.stdout == text


async def test_large_output_complete_and_in_order(async_sandbox):
    n = 700_000
    result = await async_sandbox.commands.run(f"seq 1 {n} >&2", timeout=30)
    assert result.stderr == "".join(f"{i}\n" for i in range(1, n + 1))
    assert result.stdout == ""


async def test_concurrent_commands(async_sandbox):
    results = await asyncio.gather(
        *(async_sandbox.commands.run(f"sleep 0.{i % 3}; echo job-{i}") for i in range(20))
    )
    assert [r.stdout for r in results] == [f"job-{i}\n" for i in range(20)]


# -- background, wait, kill -----------------------------------------------------------------------------


async def test_background_then_wait(async_sandbox):
    seen: list[str] = []
    handle = await async_sandbox.commands.run(
        "echo start; sleep 0.2; echo end", background=True, on_stdout=seen.append
    )
    assert handle.pid > 0
    assert handle.exit_code is None
    result = await handle.wait()
    assert result.stdout == "start\nend\n" == "".join(seen)
    assert handle.exit_code == 0


async def test_handle_kill(async_sandbox):
    handle = await async_sandbox.commands.run("echo ready; sleep 30", background=True)
    assert handle.pid in await listed_pids(async_sandbox)
    assert await handle.kill() is True
    with pytest.raises(CommandExitException) as info:
        await handle.wait()
    assert info.value.exit_code == -1
    assert info.value.error == "signal: killed"
    assert await eventually(lambda: not alive(handle.pid))
    assert await async_sandbox.commands.kill(handle.pid) is False


async def test_commands_kill_live_and_unknown(async_sandbox):
    handle = await async_sandbox.commands.run("sleep 30", background=True)
    assert await async_sandbox.commands.kill(handle.pid) is True
    with pytest.raises(CommandExitException):
        await handle.wait()
    assert await async_sandbox.commands.kill(4_000_000) is False


# -- stdin ----------------------------------------------------------------------------------------------


async def test_send_stdin_and_close(async_sandbox):
    handle = await async_sandbox.commands.run("cat", background=True, stdin=True)
    await async_sandbox.commands.send_stdin(handle.pid, "line one\n")
    await handle.send_stdin(b"\xc3\xa9t\xc3\xa9\n")
    await handle.close_stdin()
    assert (await handle.wait()).stdout == "line one\nété\n"


async def test_interactive_stdin(async_sandbox):
    seen: list[str] = []
    handle = await async_sandbox.commands.run(
        "while read l; do echo got-$l; done", background=True, stdin=True, on_stdout=seen.append
    )
    for word in ("a", "b", "c"):
        await handle.send_stdin(f"{word}\n")
        assert await eventually(lambda w=word: f"got-{w}\n" in "".join(seen))
    await async_sandbox.commands.close_stdin(handle.pid)
    assert (await handle.wait()).stdout == "got-a\ngot-b\ngot-c\n"


async def test_send_stdin_without_stdin_fails(async_sandbox):
    handle = await async_sandbox.commands.run("sleep 30", background=True)
    try:
        with pytest.raises(SandboxException):
            await async_sandbox.commands.send_stdin(handle.pid, "x")
    finally:
        await handle.kill()


async def test_close_stdin_while_a_write_waits(async_sandbox):
    handle = await async_sandbox.commands.run("sleep 30", background=True, stdin=True)
    try:
        # Nobody reads: the write fills the pipe and waits.
        pending = asyncio.ensure_future(handle.send_stdin(b"x" * 2_000_000))
        await asyncio.sleep(0.2)
        assert not pending.done()
        await handle.close_stdin()
        with pytest.raises(SandboxException):
            await asyncio.wait_for(pending, 3)
        assert alive(handle.pid)
    finally:
        await handle.kill()


async def test_send_stdin_unknown_pid(async_sandbox):
    with pytest.raises(NotFoundException):
        await async_sandbox.commands.send_stdin(4_000_000, "x")
    with pytest.raises(NotFoundException):
        await async_sandbox.commands.close_stdin(4_000_000)


async def test_stream_input_handle(async_sandbox):
    seen: list[str] = []
    handle = await async_sandbox.commands.run(
        "while read l; do echo got-$l; done", background=True, stdin=True, on_stdout=seen.append
    )
    async with async_sandbox.commands.stream_input(handle.pid) as stream:
        await stream.send("one\n")
        # Input is delivered while the stream is still open, not only at its end.
        assert await eventually(lambda: "got-one\n" in seen)
        await stream.send(b"two\n")
    await handle.close_stdin()
    assert (await handle.wait()).stdout == "got-one\ngot-two\n"


async def test_stream_input_large(async_sandbox):
    handle = await async_sandbox.commands.run("sha256sum", background=True, stdin=True)
    chunks = [os.urandom(50_000) for _ in range(40)]
    async with async_sandbox.commands.stream_input(handle.pid) as stream:
        for chunk in chunks:
            await stream.send(chunk)
    await handle.close_stdin()
    assert (await handle.wait()).stdout.split()[0] == hashlib.sha256(b"".join(chunks)).hexdigest()


async def test_stream_input_unknown_pid(async_sandbox):
    stream = async_sandbox.commands.stream_input(4_000_000)
    with pytest.raises(NotFoundException):
        await stream.close()


# -- list and connect -----------------------------------------------------------------------------------


async def test_list_shows_config_as_started(async_sandbox, workdir):
    cmd = f"sleep 30 # {uuid.uuid4().hex}"
    handle = await async_sandbox.commands.run(cmd, background=True, envs={"A": "1", "B": "two"}, cwd=workdir)
    try:
        (info,) = [p for p in await async_sandbox.commands.list() if p.pid == handle.pid]
        assert (info.cmd, info.args, info.envs, info.cwd, info.tag) == (
            "/bin/bash",
            ["-l", "-c", cmd],
            {"A": "1", "B": "two"},
            workdir,
            None,
        )
    finally:
        await handle.kill()
    assert await eventually(lambda: _gone(async_sandbox, handle.pid))


async def _gone(sandbox, pid: int) -> bool:
    return pid not in await listed_pids(sandbox)


async def test_connect_two_subscribers(async_sandbox):
    first: list[str] = []
    second: list[str] = []
    handle = await async_sandbox.commands.run(
        "read l; echo got-$l; echo warn >&2", background=True, stdin=True, on_stdout=first.append
    )
    other = await async_sandbox.commands.connect(handle.pid, on_stdout=second.append)
    assert other.pid == handle.pid
    await handle.send_stdin("z\n")
    r1, r2 = await asyncio.gather(handle.wait(), other.wait())
    assert r1.stdout == r2.stdout == "got-z\n"
    assert r1.stderr == r2.stderr == "warn\n"
    assert "".join(first) == "".join(second) == "got-z\n"


async def test_connect_unknown_pid(async_sandbox):
    with pytest.raises(NotFoundException):
        await async_sandbox.commands.connect(4_000_000)


async def test_process_survives_disconnect(async_sandbox):
    handle = await async_sandbox.commands.run("read l; echo got-$l", background=True, stdin=True)
    await handle.disconnect()
    await asyncio.sleep(0.2)  # give envd a moment to notice the closed stream
    assert handle.pid in await listed_pids(async_sandbox)
    assert alive(handle.pid)
    again = await async_sandbox.commands.connect(handle.pid)
    await again.send_stdin("back\n")
    assert (await again.wait()).stdout == "got-back\n"


# -- environment, cwd, user -----------------------------------------------------------------------------


async def test_envs(async_sandbox):
    result = await async_sandbox.commands.run(
        'echo "$FOO|$HUTCH_SANDBOX_VAR|$UNI"', envs={"FOO": "bar", "UNI": "ü✓"}
    )
    assert result.stdout == "bar|sandbox-level|ü✓\n"
    result = await async_sandbox.commands.run("echo $HUTCH_SANDBOX_VAR", envs={"HUTCH_SANDBOX_VAR": "mine"})
    assert result.stdout == "mine\n"


async def test_cwd(async_sandbox, workdir):
    assert (await async_sandbox.commands.run("pwd", cwd=workdir)).stdout == f"{workdir}\n"
    with pytest.raises(InvalidArgumentException):
        await async_sandbox.commands.run("pwd", cwd=os.path.join(workdir, "nope"))


async def test_users(async_sandbox, workdir, test_user):
    assert (await async_sandbox.commands.run("whoami")).stdout == f"{test_user[0]}\n"
    assert (await async_sandbox.commands.run("whoami", user="root")).stdout == "root\n"
    with pytest.raises(AuthenticationException):
        await async_sandbox.commands.run("whoami", user="hutch-no-such-user")
    await async_sandbox.commands.run("touch made-here", cwd=workdir)
    assert os.stat(os.path.join(workdir, "made-here")).st_uid == pwd.getpwnam(test_user[0]).pw_uid


# -- timeouts and keepalive -----------------------------------------------------------------------------


async def test_timeout_kills_the_process(async_sandbox, workdir):
    started = time.monotonic()
    with pytest.raises(TimeoutException):
        await async_sandbox.commands.run("echo $$ > pid; sleep 10", cwd=workdir, timeout=1)
    assert time.monotonic() - started < 4
    with open(os.path.join(workdir, "pid")) as f:
        pid = int(f.read())
    assert await eventually(lambda: not alive(pid))
    assert await eventually(lambda: _gone(async_sandbox, pid))


async def test_keepalive_is_tolerated(async_sandbox, monkeypatch):
    monkeypatch.setattr(async_command_module, "KEEPALIVE_PING_INTERVAL_SEC", 1)
    kinds: list[str] = []
    original = async_command_module.as_stream

    async def counting(events):
        async for event in events:
            kinds.append(event.event.event.field)
            yield event

    monkeypatch.setattr(async_command_module, "as_stream", lambda events: counting(original(events)))
    result = await async_sandbox.commands.run("sleep 2.3; echo done")
    assert result.stdout == "done\n"
    assert kinds.count("keepalive") >= 2
    assert kinds[0] == "start" and kinds[-1] == "end"
