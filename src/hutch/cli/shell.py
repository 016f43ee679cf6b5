"""``hutch sandbox exec`` and ``hutch sandbox shell``: commands and a terminal in a sandbox, through the
official ``e2b`` SDK (the data plane goes through Hutch's proxy)."""

from __future__ import annotations

import contextlib
import os
import select
import shlex
import signal
import sys
import termios
import threading
import tty
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Annotated, TextIO

import typer
from e2b import CommandExitException, PtySize, Sandbox
from e2b.exceptions import SandboxException

from .client import Connection, fail
from .output import emit_json
from .sandbox import SandboxId

_NO_LIMIT = 0  # the SDK's "no timeout"

# ``hutch sandbox exec ID ls -la``: everything after the id is the command, options included.
EXEC_CONTEXT = {"allow_interspersed_args": False, "ignore_unknown_options": True}


def _connect(connection: Connection, sandbox_id: str) -> Sandbox:
    try:
        return Sandbox.connect(sandbox_id, **connection.sdk_options())
    except SandboxException as error:
        fail(str(error))


def execute(
    ctx: typer.Context,
    sandbox_id: SandboxId,
    command: Annotated[list[str], typer.Argument(help="The command (one argument runs as a shell line).")],
    user: Annotated[str | None, typer.Option(help="Run as this user (the template's default).")] = None,
    cwd: Annotated[str | None, typer.Option(help="Working directory.")] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print stdout, stderr and exit code as JSON.")
    ] = False,
) -> None:
    """Run a command in a sandbox, stream its output and exit with its exit code."""
    if command[:1] == ["--"]:
        command = command[1:]
    if not command:
        fail("no command given")
    line = command[0] if len(command) == 1 else shlex.join(command)
    sandbox = _connect(ctx.obj, sandbox_id)
    stream = not as_json
    try:
        result = sandbox.commands.run(
            line,
            user=user,
            cwd=cwd,
            timeout=_NO_LIMIT,
            on_stdout=_writer(sys.stdout) if stream else None,
            on_stderr=_writer(sys.stderr) if stream else None,
        )
        stdout, stderr, exit_code = result.stdout, result.stderr, result.exit_code
    except CommandExitException as exited:
        stdout, stderr, exit_code = exited.stdout, exited.stderr, exited.exit_code
    except SandboxException as error:
        fail(str(error))
    if as_json:
        emit_json({"stdout": stdout, "stderr": stderr, "exitCode": exit_code})
    raise typer.Exit(exit_code)


def _writer(stream: TextIO) -> Callable[[str], None]:
    def write(text: str) -> None:
        stream.write(text)
        stream.flush()

    return write


def shell(
    ctx: typer.Context,
    sandbox_id: SandboxId,
    user: Annotated[str | None, typer.Option(help="Log in as this user (the template's default).")] = None,
) -> None:
    """An interactive terminal in a sandbox; exits with the shell's exit code."""
    sandbox = _connect(ctx.obj, sandbox_id)
    stdin, stdout = sys.stdin.fileno(), sys.stdout.fileno()
    try:
        terminal = sandbox.pty.create(_size(stdout), user=user, timeout=_NO_LIMIT)
    except SandboxException as error:
        fail(str(error))
    outcome = _Outcome()

    def pump_output() -> None:
        try:
            outcome.exit_code = terminal.wait(on_pty=lambda data: os.write(stdout, data)).exit_code
        except CommandExitException as exited:
            outcome.exit_code = exited.exit_code
        except Exception as error:  # shown once the terminal is restored
            outcome.error = error

    def resize(*_signal: object) -> None:
        sandbox.pty.resize(terminal.pid, _size(stdout))

    reader = threading.Thread(target=pump_output, name="pty-output", daemon=True)
    with _raw(stdin), _on_signal(signal.SIGWINCH, resize):
        reader.start()
        while reader.is_alive():
            ready, _, _ = select.select([stdin], [], [], 0.1)
            if not ready:
                continue
            data = os.read(stdin, 4096)
            if not data:  # stdin closed: end the remote shell
                terminal.kill()
                break
            with contextlib.suppress(SandboxException):  # the shell may have just exited
                sandbox.pty.send_stdin(terminal.pid, data)
        reader.join(timeout=5)
    if outcome.error is not None:
        fail(str(outcome.error))
    raise typer.Exit(outcome.exit_code)


@dataclass
class _Outcome:
    """How the remote shell ended: its exit code, or the error that cut the connection."""

    exit_code: int = 1
    error: Exception | None = None


def _size(fd: int) -> PtySize:
    """The local terminal's size; 80x24 when it has none (not a terminal, or a new one of size 0)."""
    try:
        columns, rows = os.get_terminal_size(fd)
    except OSError:
        columns, rows = 0, 0
    return PtySize(rows=rows or 24, cols=columns or 80)


@contextlib.contextmanager
def _raw(fd: int) -> Iterator[None]:
    """The local terminal in raw mode (keys go to the sandbox as typed), restored on the way out."""
    if not os.isatty(fd):
        yield
        return
    saved = termios.tcgetattr(fd)
    try:
        tty.setraw(fd)
        yield
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)


@contextlib.contextmanager
def _on_signal(signum: int, handler: Callable[..., object]) -> Iterator[None]:
    previous = signal.signal(signum, handler)
    try:
        yield
    finally:
        signal.signal(signum, previous)
