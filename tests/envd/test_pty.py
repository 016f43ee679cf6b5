"""envd's PTY processes through the SDK: ``Sandbox.pty`` and ``AsyncSandbox.pty``.

Typed input is echoed by the terminal, so each check looks for text only the shell's *output* contains
(``$((6*7))`` is echoed as typed and printed as ``42``).
"""

from __future__ import annotations

import asyncio
import os
import pwd
import random
import re
import time

import pytest
from e2b import CommandExitException, NotFoundException, PtySize, SandboxException

from tests.envd.host import open_descriptors

MARK = "echo $((6*7))-mark"
MARKED = b"42-mark"
# A prompt the shell prints only when readline waits for a line (the echo shows the quotes).
SET_PROMPT = b"PS1='rdy''> '\n"
PROMPT = b"rdy> "


def collect(handle) -> bytes:
    """Read a sync PTY handle to its end; returns the output (exit code checked by the caller)."""
    out = bytearray()
    handle.wait(on_pty=out.extend)
    return bytes(out)


def read_until(handle, needle: bytes, out: bytearray) -> None:
    """Iterate a sync PTY handle until ``needle`` shows up in its output."""
    for _, _, pty in handle:
        if pty is not None:
            out.extend(pty)
            if needle in out:
                return
    raise AssertionError(f"{needle!r} never came; got {bytes(out)!r}")


def foreground_process(argv: list[str]) -> bool:
    """Whether a process runs ``argv`` as the foreground job of its terminal."""
    wanted = "\0".join(argv).encode() + b"\0"
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                if f.read() != wanted:
                    continue
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rpartition(")")[2].split()
        except OSError:
            continue
        # fields: state ppid pgrp session tty_nr tpgid ...
        if fields[2] == fields[5]:
            return True
    return False


async def async_wait_for(out: bytearray, needle: bytes, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while needle not in out:
        if time.monotonic() > deadline:
            raise AssertionError(f"{needle!r} never came; got {bytes(out)!r}")
        await asyncio.sleep(0.01)


# -- sync -----------------------------------------------------------------------------------------------


def test_pty_create_with_size(sandbox):
    handle = sandbox.pty.create(PtySize(rows=33, cols=111), timeout=10)
    assert handle.pid > 0
    sandbox.pty.send_stdin(handle.pid, b"stty size; tty; exit\n")
    out = collect(handle)
    assert b"33 111" in out
    assert re.search(rb"/dev/pts/\d+", out)
    assert b"no job control" not in out


def test_pty_output_via_send_stdin(sandbox):
    handle = sandbox.pty.create(PtySize(rows=24, cols=80), timeout=10)
    sandbox.pty.send_stdin(handle.pid, f"{MARK}; exit\n".encode())
    out = collect(handle)
    assert MARKED in out


def test_pty_resize(sandbox):
    handle = sandbox.pty.create(PtySize(rows=24, cols=80), timeout=10)
    out = bytearray()
    sandbox.pty.send_stdin(handle.pid, b"stty size\n")
    read_until(handle, b"24 80", out)
    sandbox.pty.resize(handle.pid, PtySize(rows=40, cols=132))
    sandbox.pty.send_stdin(handle.pid, b"stty size; exit\n")
    out.extend(collect(handle))
    assert b"40 132" in out


def test_pty_resize_delivers_sigwinch(sandbox):
    handle = sandbox.pty.create(PtySize(rows=24, cols=80), timeout=10)
    out = bytearray()
    sandbox.pty.send_stdin(handle.pid, b"trap 'echo winch-$((1+1))' WINCH; " + SET_PROMPT)
    read_until(handle, PROMPT, out)  # readline waits: the trap runs as soon as the signal comes
    sandbox.pty.resize(handle.pid, PtySize(rows=25, cols=81))
    read_until(handle, b"winch-2", out)
    sandbox.pty.kill(handle.pid)


def test_pty_exit_with_ctrl_d(sandbox):
    handle = sandbox.pty.create(PtySize(rows=24, cols=80), timeout=10)
    out = bytearray()
    # Ctrl-D is EOF only while readline reads the terminal; typed ahead, it reaches readline as NUL.
    sandbox.pty.send_stdin(handle.pid, SET_PROMPT)
    read_until(handle, PROMPT, out)
    sandbox.pty.send_stdin(handle.pid, b"\x04")
    result = handle.wait()
    assert result.exit_code == 0
    assert handle.pid not in {p.pid for p in sandbox.commands.list()}


def test_pty_ctrl_c_interrupts_the_foreground_job(sandbox):
    handle = sandbox.pty.create(PtySize(rows=24, cols=80), timeout=20)
    duration = f"30.{random.randrange(10**6):06d}"
    sandbox.pty.send_stdin(handle.pid, SET_PROMPT + f"sleep {duration}\n".encode())
    # Interrupt only once sleep is the terminal's foreground job (before that, ^C reaches the shell).
    deadline = time.monotonic() + 5
    while not foreground_process(["sleep", duration]):
        assert time.monotonic() < deadline
        time.sleep(0.02)
    started = time.monotonic()
    sandbox.pty.send_stdin(handle.pid, b"\x03")
    # The interrupted shell prompts again; input typed before that may be flushed with the ^C.
    after = bytearray()
    read_until(handle, PROMPT, after)
    assert time.monotonic() - started < 5
    sandbox.pty.send_stdin(handle.pid, b"exit 0\n")
    handle.wait()


def test_pty_exit_code(sandbox):
    handle = sandbox.pty.create(PtySize(rows=24, cols=80), timeout=10)
    sandbox.pty.send_stdin(handle.pid, b"exit 7\n")
    with pytest.raises(CommandExitException) as info:
        handle.wait()
    assert info.value.exit_code == 7


def test_pty_kill(sandbox):
    handle = sandbox.pty.create(PtySize(rows=24, cols=80), timeout=10)
    assert handle.pid in {p.pid for p in sandbox.commands.list()}
    assert sandbox.pty.kill(handle.pid) is True
    with pytest.raises(CommandExitException) as info:
        handle.wait()
    assert info.value.exit_code == -1
    assert sandbox.pty.kill(handle.pid) is False


def test_pty_listed_with_its_config(sandbox):
    handle = sandbox.pty.create(PtySize(rows=24, cols=80), envs={"PTY_VAR": "p"}, timeout=10)
    try:
        (info,) = [p for p in sandbox.commands.list() if p.pid == handle.pid]
        assert info.cmd == "/bin/bash"
        assert info.args == ["-i", "-l"]
        assert info.envs["PTY_VAR"] == "p"
        assert info.envs["TERM"] == "xterm-256color"
    finally:
        handle.kill()


def test_pty_connect(sandbox):
    handle = sandbox.pty.create(PtySize(rows=24, cols=80), timeout=10)
    other = sandbox.pty.connect(handle.pid, timeout=10)
    assert other.pid == handle.pid
    sandbox.pty.send_stdin(handle.pid, f"{MARK}; exit\n".encode())
    assert MARKED in collect(handle)
    assert MARKED in collect(other)


def test_pty_survives_disconnect(sandbox):
    handle = sandbox.pty.create(PtySize(rows=24, cols=80), timeout=10)
    handle.disconnect()
    again = sandbox.pty.connect(handle.pid, timeout=10)
    sandbox.pty.send_stdin(handle.pid, f"{MARK}; exit\n".encode())
    assert MARKED in collect(again)


def test_pty_connect_unknown_pid(sandbox):
    with pytest.raises(NotFoundException):
        sandbox.pty.connect(4_000_000)


def test_pty_send_stdin_unknown_pid(sandbox):
    with pytest.raises(NotFoundException):
        sandbox.pty.send_stdin(4_000_000, b"x")


def test_pty_resize_unknown_pid(sandbox):
    with pytest.raises(NotFoundException):
        sandbox.pty.resize(4_000_000, PtySize(rows=1, cols=1))


def test_pty_rejects_pipe_input_and_close_stdin(sandbox):
    handle = sandbox.pty.create(PtySize(rows=24, cols=80), timeout=10)
    try:
        with pytest.raises(SandboxException):
            sandbox.commands.send_stdin(handle.pid, "x")
        with pytest.raises(SandboxException):
            sandbox.commands.close_stdin(handle.pid)
    finally:
        handle.kill()


def test_resize_of_pipe_process_fails(sandbox):
    handle = sandbox.commands.run("sleep 30", background=True)
    try:
        with pytest.raises(SandboxException):
            sandbox.pty.resize(handle.pid, PtySize(rows=10, cols=10))
    finally:
        handle.kill()


def test_pty_stream_input(sandbox):
    handle = sandbox.pty.create(PtySize(rows=24, cols=80), timeout=10)
    sandbox.pty.stream_input(handle.pid, [b"echo ", "$((6*7))", b"-mark; ", b"exit\n"])
    assert MARKED in collect(handle)


def test_pty_user_cwd_and_envs(sandbox, workdir, test_user):
    handle = sandbox.pty.create(PtySize(rows=24, cols=80), cwd=workdir, envs={"PTY_VAR": "pv"}, timeout=10)
    sandbox.pty.send_stdin(handle.pid, b'echo "[$(whoami)|$(pwd)|$TERM|$PTY_VAR|$HUTCH_SANDBOX_VAR]"; exit\n')
    out = collect(handle).decode()
    assert f"[{test_user[0]}|{workdir}|xterm-256color|pv|sandbox-level]" in out


def test_pty_terminal_belongs_to_the_user(sandbox, test_user):
    handle = sandbox.pty.create(PtySize(rows=24, cols=80), timeout=10)
    sandbox.pty.send_stdin(
        handle.pid, b'echo "[$(stat -c %U $(tty))]"; echo hi > $(tty) && echo wrote-$((1+1)); exit\n'
    )
    out = collect(handle)
    assert f"[{test_user[0]}]".encode() in out
    assert b"wrote-2" in out


def test_pty_as_root(sandbox):
    handle = sandbox.pty.create(PtySize(rows=24, cols=80), user="root", timeout=10)
    sandbox.pty.send_stdin(handle.pid, b'echo "[$(id -u)|$HOME]"; exit\n')
    assert f"[0|{pwd.getpwnam('root').pw_dir}]".encode() in collect(handle)


def test_pty_large_output_in_order(sandbox):
    handle = sandbox.pty.create(PtySize(rows=24, cols=80), timeout=20)
    sandbox.pty.send_stdin(handle.pid, b"seq 1 100000 | sed 's/^/n/'; exit\n")
    out = collect(handle)
    numbers = [int(n) for n in re.findall(rb"\bn(\d+)\r\n", out)]
    assert numbers == list(range(1, 100_001))


def test_pty_raw_bytes(sandbox):
    handle = sandbox.pty.create(PtySize(rows=24, cols=80), timeout=10)
    sandbox.pty.send_stdin(handle.pid, b"stty raw -echo; printf 'A\\377\\376B'; exit\n")
    assert b"A\xff\xfeB" in collect(handle)


def test_pty_timeout_kills_it(sandbox):
    handle = sandbox.pty.create(PtySize(rows=24, cols=80), timeout=1)
    started = time.monotonic()
    with pytest.raises(Exception):  # noqa: B017 - the SDK's timeout, whatever its class
        handle.wait()
    assert time.monotonic() - started < 4
    deadline = time.monotonic() + 3
    while handle.pid in {p.pid for p in sandbox.commands.list()}:
        assert time.monotonic() < deadline
        time.sleep(0.02)


def test_pty_no_descriptors_leak(sandbox, envd):
    def open_files() -> list[str]:
        return open_descriptors(envd.process.pid)

    before = open_files()
    for _ in range(3):
        handle = sandbox.pty.create(PtySize(rows=24, cols=80), timeout=10)
        sandbox.pty.send_stdin(handle.pid, b"exit\n")
        handle.wait()
        handle = sandbox.pty.create(PtySize(rows=24, cols=80), timeout=10)
        sandbox.pty.kill(handle.pid)
        with pytest.raises(CommandExitException):
            handle.wait()
    deadline = time.monotonic() + 3
    while open_files() != before:
        assert time.monotonic() < deadline, open_files()
        time.sleep(0.02)


# -- async ----------------------------------------------------------------------------------------------


async def test_async_pty_create_and_on_data(async_sandbox):
    out = bytearray()
    handle = await async_sandbox.pty.create(PtySize(rows=30, cols=90), on_data=out.extend, timeout=10)
    await async_sandbox.pty.send_stdin(handle.pid, f"stty size; {MARK}; exit\n".encode())
    result = await handle.wait()
    assert result.exit_code == 0
    assert b"30 90" in out
    assert MARKED in out


async def test_async_pty_async_callback(async_sandbox):
    out = bytearray()

    async def on_data(data: bytes) -> None:
        await asyncio.sleep(0)
        out.extend(data)

    handle = await async_sandbox.pty.create(PtySize(rows=24, cols=80), on_data=on_data, timeout=10)
    await async_sandbox.pty.send_stdin(handle.pid, f"{MARK}; exit\n".encode())
    await handle.wait()
    assert MARKED in out


async def test_async_pty_resize(async_sandbox):
    out = bytearray()
    handle = await async_sandbox.pty.create(PtySize(rows=24, cols=80), on_data=out.extend, timeout=10)
    await async_sandbox.pty.send_stdin(handle.pid, b"stty size\n")
    await async_wait_for(out, b"24 80")
    await async_sandbox.pty.resize(handle.pid, PtySize(rows=50, cols=160))
    await async_sandbox.pty.send_stdin(handle.pid, b"stty size; exit\n")
    await handle.wait()
    assert b"50 160" in out


async def test_async_pty_ctrl_d_and_kill(async_sandbox):
    out = bytearray()
    handle = await async_sandbox.pty.create(PtySize(rows=24, cols=80), on_data=out.extend, timeout=10)
    # Ctrl-D is EOF only while readline reads the terminal; typed ahead, it reaches readline as NUL.
    await async_sandbox.pty.send_stdin(handle.pid, SET_PROMPT)
    await async_wait_for(out, PROMPT)
    await async_sandbox.pty.send_stdin(handle.pid, b"\x04")
    assert (await handle.wait()).exit_code == 0

    handle = await async_sandbox.pty.create(PtySize(rows=24, cols=80), on_data=lambda _: None, timeout=10)
    assert await async_sandbox.pty.kill(handle.pid) is True
    with pytest.raises(CommandExitException) as info:
        await handle.wait()
    assert info.value.exit_code == -1
    assert await async_sandbox.pty.kill(handle.pid) is False


async def test_async_pty_connect(async_sandbox):
    first = bytearray()
    second = bytearray()
    handle = await async_sandbox.pty.create(PtySize(rows=24, cols=80), on_data=first.extend, timeout=10)
    other = await async_sandbox.pty.connect(handle.pid, on_data=second.extend, timeout=10)
    await async_sandbox.pty.send_stdin(handle.pid, f"{MARK}; exit\n".encode())
    await handle.wait()
    await other.wait()
    assert MARKED in first
    assert MARKED in second


async def test_async_pty_disconnect_and_reconnect(async_sandbox):
    handle = await async_sandbox.pty.create(PtySize(rows=24, cols=80), on_data=lambda _: None, timeout=10)
    await handle.disconnect()
    out = bytearray()
    again = await async_sandbox.pty.connect(handle.pid, on_data=out.extend, timeout=10)
    await async_sandbox.pty.send_stdin(handle.pid, f"{MARK}; exit\n".encode())
    await again.wait()
    assert MARKED in out


async def test_async_pty_connect_unknown_pid(async_sandbox):
    with pytest.raises(NotFoundException):
        await async_sandbox.pty.connect(4_000_000, on_data=lambda _: None)


async def test_async_pty_stream_input(async_sandbox):
    out = bytearray()
    handle = await async_sandbox.pty.create(PtySize(rows=24, cols=80), on_data=out.extend, timeout=10)
    async with async_sandbox.pty.stream_input(handle.pid) as stream:
        await stream.send(b"echo ")
        await stream.send("$((6*7))-mark\n")
        await async_wait_for(out, MARKED)
        await stream.send(b"exit\n")
    await handle.wait()
