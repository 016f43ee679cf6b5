"""The seed's legacy calls on ``hutch.Sandbox``: ``sandbox.process`` and ``sandbox.filesystem``.

They map onto the official ``sandbox.commands`` and ``sandbox.files``.
"""

from __future__ import annotations

import builtins
from collections.abc import Callable

from e2b import CommandExitException, CommandHandle, Sandbox

from ._results import FileInfo, ProcessOutput, file_info, process_output

OutputCallback = Callable[[str], None]
COMMAND_TIMEOUT_S = 60.0


class Process:
    """A process started with ``sandbox.process.start``."""

    def __init__(
        self, handle: CommandHandle, on_stdout: OutputCallback | None, on_stderr: OutputCallback | None
    ) -> None:
        self._handle = handle
        self._on_stdout = on_stdout
        self._on_stderr = on_stderr

    @property
    def pid(self) -> int:
        """The process id inside the sandbox."""
        return self._handle.pid

    def wait(self) -> ProcessOutput:
        """Wait until the process ends; the output callbacks given to ``start`` run while it is read."""
        try:
            result = self._handle.wait(on_stdout=self._on_stdout, on_stderr=self._on_stderr)
        except CommandExitException as exited:
            result = exited
        return process_output(result)

    def kill(self) -> bool:
        """Kill the process with SIGKILL; ``False`` if it was already gone."""
        return self._handle.kill()


class ProcessManager:
    """``sandbox.process``: run shell commands (``bash -l -c``) in the sandbox."""

    def __init__(self, sandbox: Sandbox) -> None:
        self._sandbox = sandbox

    def start(
        self,
        cmd: str,
        *,
        on_stdout: OutputCallback | None = None,
        on_stderr: OutputCallback | None = None,
        env_vars: dict[str, str] | None = None,
        cwd: str | None = None,
        timeout: float | None = COMMAND_TIMEOUT_S,
    ) -> Process:
        """Start ``cmd`` and return at once; ``timeout`` (seconds, ``0`` for none) bounds its run."""
        handle = self._sandbox.commands.run(
            cmd, background=True, envs=env_vars, cwd=cwd or None, timeout=timeout
        )
        return Process(handle, on_stdout, on_stderr)

    def start_and_wait(
        self,
        cmd: str,
        *,
        on_stdout: OutputCallback | None = None,
        on_stderr: OutputCallback | None = None,
        env_vars: dict[str, str] | None = None,
        cwd: str | None = None,
        timeout: float | None = COMMAND_TIMEOUT_S,
    ) -> ProcessOutput:
        """Run ``cmd`` to the end and return its output, whatever its exit code."""
        return self.start(
            cmd, on_stdout=on_stdout, on_stderr=on_stderr, env_vars=env_vars, cwd=cwd, timeout=timeout
        ).wait()


class FilesystemManager:
    """``sandbox.filesystem``: read, write and list files in the sandbox."""

    def __init__(self, sandbox: Sandbox) -> None:
        self._sandbox = sandbox

    def write(self, path: str, content: str | bytes) -> None:
        """Write ``content`` to ``path``, creating the file and its parent directories."""
        self._sandbox.files.write(path, content)

    def read(self, path: str) -> str:
        """The content of the file at ``path``, as text."""
        return self._sandbox.files.read(path)

    def list(self, path: str) -> builtins.list[FileInfo]:
        """The entries of the directory at ``path``."""
        return [file_info(entry) for entry in self._sandbox.files.list(path)]
