"""The servers' processes and the steps before them (a clone, an install): run as the sandbox's user, in a
process group of their own, their output logged up to a bound per server and its tail kept for errors."""

from __future__ import annotations

import asyncio
import logging
import os
import pwd
import signal
from collections import deque
from dataclasses import dataclass

log = logging.getLogger("mcp-gateway")

# What a server's stderr (and its install's output) may put in the log; the rest is counted.
LOGGED_BYTES_PER_SERVER = 1024 * 1024
MAX_LOGGED_LINE = 2000
TAIL_BYTES = 2000
# The gateway's own variable never reaches a server.
_PRIVATE = ("GATEWAY_ACCESS_TOKEN",)


class StepFailed(RuntimeError):
    """A clone, an install or a server's start that failed; the message says which and how."""


@dataclass(frozen=True)
class Account:
    """Who the servers run as: the sandbox's user (or whoever runs the gateway, when not root)."""

    name: str
    uid: int
    gid: int
    home: str

    @classmethod
    def named(cls, name: str) -> Account:
        entry = pwd.getpwuid(os.geteuid()) if os.geteuid() != 0 else pwd.getpwnam(name)
        return cls(entry.pw_name, entry.pw_uid, entry.pw_gid, entry.pw_dir)

    def environment(self, extra: dict[str, str]) -> dict[str, str]:
        """The gateway's environment (the sandbox's), without its private variables, as this account."""
        env = {key: value for key, value in os.environ.items() if key not in _PRIVATE}
        env.update(HOME=self.home, USER=self.name, LOGNAME=self.name)
        env.update(extra)
        return env


class Output:
    """A process's output as the log and the errors see it: lines logged under ``label`` up to
    ``LOGGED_BYTES_PER_SERVER`` (shared by every process of the server), the last ``TAIL_BYTES`` kept."""

    def __init__(self, label: str) -> None:
        self.label = label
        self.logged = 0
        self.dropped = 0
        self._tail: deque[bytes] = deque()
        self._tail_size = 0

    async def drain(self, stream: asyncio.StreamReader) -> None:
        pending = b""
        while chunk := await stream.read(65536):
            self._keep(chunk)
            lines = (pending + chunk).split(b"\n")
            pending = lines.pop()[-MAX_LOGGED_LINE:]
            for line in lines:
                self._log(line)
        if pending:
            self._log(pending)
        if self.dropped:
            log.info("%s: %d bytes of output not logged", self.label, self.dropped)

    def tail(self) -> str:
        return b"".join(self._tail)[-TAIL_BYTES:].decode(errors="replace").strip()

    def _keep(self, chunk: bytes) -> None:
        self._tail.append(chunk[-TAIL_BYTES:])
        self._tail_size += len(self._tail[-1])
        while self._tail_size - len(self._tail[0]) >= TAIL_BYTES:
            self._tail_size -= len(self._tail.popleft())

    def _log(self, line: bytes) -> None:
        if self.logged + len(line) > LOGGED_BYTES_PER_SERVER:
            self.dropped += len(line) + 1
            return
        self.logged += len(line) + 1
        log.info("%s: %s", self.label, line[:MAX_LOGGED_LINE].decode(errors="replace").rstrip())


async def spawn(
    argv: list[str], account: Account, cwd: str, env: dict[str, str], *, pipes: bool, limit: int = 65536
) -> asyncio.subprocess.Process:
    """``argv`` as ``account`` in ``cwd``, in a new session; with ``pipes``, stdin and stdout are pipes
    (``limit``: the longest line stdout may send), else stdout goes with stderr."""
    switch = {"user": account.uid, "group": account.gid, "extra_groups": []} if os.geteuid() == 0 else {}
    return await asyncio.create_subprocess_exec(
        *argv,
        cwd=cwd,
        env=env,
        stdin=asyncio.subprocess.PIPE if pipes else asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE if pipes else asyncio.subprocess.STDOUT,
        start_new_session=True,
        limit=limit,
        **switch,
    )


def kill_group(process: asyncio.subprocess.Process) -> None:
    """SIGKILL to the process's group (a shell's children with it, even once the shell has exited: a
    group's id is not reused while any member lives)."""
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


async def run_step(
    what: str,
    argv: list[str],
    account: Account,
    cwd: str,
    env: dict[str, str],
    output: Output,
    timeout: float,
) -> None:
    """A step before a server starts; ``StepFailed`` with its output's tail unless it exits 0 in time."""
    process = await spawn(argv, account, cwd, env, pipes=False)
    assert process.stdout is not None
    drained = asyncio.ensure_future(output.drain(process.stdout))
    try:
        code = await asyncio.wait_for(process.wait(), timeout)
    except TimeoutError:
        kill_group(process)
        await process.wait()
        raise StepFailed(f"{what} did not finish within {timeout:.0f} s: {output.tail()}") from None
    finally:
        kill_group(process)  # what it left running
        await asyncio.wait_for(drained, 5)
    if code != 0:
        raise StepFailed(f"{what} exited with {code}: {output.tail()}")
