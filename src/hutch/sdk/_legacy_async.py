"""The seed's legacy calls on ``hutch.AsyncSandbox``, awaitable: ``sandbox.process``, ``sandbox.filesystem``.

They map onto the official ``sandbox.commands`` and ``sandbox.files``.
"""

from __future__ import annotations

import builtins

from e2b import AsyncCommandHandle, AsyncSandbox, CommandExitException, OutputHandler

from ._legacy import COMMAND_TIMEOUT_S
from ._results import FileInfo, ProcessOutput, file_info, process_output


class AsyncProcess:
    """A process started with ``await sandbox.process.start(...)``."""

    def __init__(self, handle: AsyncCommandHandle) -> None:
        self._handle = handle

    @property
    def pid(self) -> int:
        """The process id inside the sandbox."""
        return self._handle.pid

    async def wait(self) -> ProcessOutput:
        """Wait until the process ends and return its output, whatever its exit code."""
        try:
            result = await self._handle.wait()
        except CommandExitException as exited:
            result = exited
        return process_output(result)

    async def kill(self) -> bool:
        """Kill the process with SIGKILL; ``False`` if it was already gone."""
        return await self._handle.kill()


class AsyncProcessManager:
    """``sandbox.process``: run shell commands (``bash -l -c``) in the sandbox."""

    def __init__(self, sandbox: AsyncSandbox) -> None:
        self._sandbox = sandbox

    async def start(
        self,
        cmd: str,
        *,
        on_stdout: OutputHandler[str] | None = None,
        on_stderr: OutputHandler[str] | None = None,
        env_vars: dict[str, str] | None = None,
        cwd: str | None = None,
        timeout: float | None = COMMAND_TIMEOUT_S,
    ) -> AsyncProcess:
        """Start ``cmd`` and return once it runs; output callbacks run as the output arrives."""
        handle = await self._sandbox.commands.run(
            cmd,
            background=True,
            envs=env_vars,
            cwd=cwd or None,
            on_stdout=on_stdout,
            on_stderr=on_stderr,
            timeout=timeout,
        )
        return AsyncProcess(handle)

    async def start_and_wait(
        self,
        cmd: str,
        *,
        on_stdout: OutputHandler[str] | None = None,
        on_stderr: OutputHandler[str] | None = None,
        env_vars: dict[str, str] | None = None,
        cwd: str | None = None,
        timeout: float | None = COMMAND_TIMEOUT_S,
    ) -> ProcessOutput:
        """Run ``cmd`` to the end and return its output, whatever its exit code."""
        process = await self.start(
            cmd, on_stdout=on_stdout, on_stderr=on_stderr, env_vars=env_vars, cwd=cwd, timeout=timeout
        )
        return await process.wait()


class AsyncFilesystemManager:
    """``sandbox.filesystem``: read, write and list files in the sandbox."""

    def __init__(self, sandbox: AsyncSandbox) -> None:
        self._sandbox = sandbox

    async def write(self, path: str, content: str | bytes) -> None:
        """Write ``content`` to ``path``, creating the file and its parent directories."""
        await self._sandbox.files.write(path, content)

    async def read(self, path: str) -> str:
        """The content of the file at ``path``, as text."""
        return await self._sandbox.files.read(path)

    async def list(self, path: str) -> builtins.list[FileInfo]:
        """The entries of the directory at ``path``."""
        return [file_info(entry) for entry in await self._sandbox.files.list(path)]
