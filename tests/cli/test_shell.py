"""``hutch sandbox shell`` driven through a real pseudo-terminal."""

from __future__ import annotations

import fcntl
import os
import pty
import select
import signal
import struct
import subprocess
import sys
import termios
import time

from tests.cli.conftest import Hutch, clean_env
from tests.stack import Stack


def _read_until(fd: int, wanted: bytes, timeout: float = 30) -> bytes:
    seen = b""
    deadline = time.monotonic() + timeout
    while wanted not in seen:
        assert time.monotonic() < deadline, seen
        ready, _, _ = select.select([fd], [], [], 0.5)
        if ready:
            try:
                seen += os.read(fd, 4096)
            except OSError:  # the other side closed
                break
    return seen


def test_shell_runs_a_command_and_exits_with_the_shells_code(hutch: Hutch, stack: Stack, tmp_path) -> None:
    sandbox_id = hutch("sandbox", "create", "--timeout", "120").stdout.strip()
    stack.seen.add(sandbox_id)
    primary, secondary = pty.openpty()
    cooked = termios.tcgetattr(secondary)
    process = subprocess.Popen(
        [sys.executable, "-m", "hutch.cli.main", "sandbox", "shell", sandbox_id],
        stdin=secondary,
        stdout=secondary,
        stderr=secondary,
        env=clean_env(**stack.env()),
        cwd=tmp_path,
        start_new_session=True,
    )
    try:
        _read_until(primary, b"$ ")  # the prompt of an interactive bash, 80x24 on a terminal of size 0
        assert termios.tcgetattr(secondary)[3] & termios.ECHO == 0  # raw mode while the shell runs
        # The local terminal grows; the sandbox's follows on SIGWINCH.
        fcntl.ioctl(primary, termios.TIOCSWINSZ, struct.pack("HHHH", 33, 101, 0, 0))
        process.send_signal(signal.SIGWINCH)
        time.sleep(0.5)
        os.write(primary, b"stty size; echo hi-from-$((40 + 2))-shell; exit 7\n")
        output = _read_until(primary, b"hi-from-42-shell")
        assert b"33 101" in output
        assert process.wait(timeout=30) == 7
        assert termios.tcgetattr(secondary) == cooked  # the terminal is restored
    finally:
        if process.poll() is None:
            process.kill()
        os.close(primary)
        os.close(secondary)
        hutch("sandbox", "kill", sandbox_id)
