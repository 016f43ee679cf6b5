"""What the two OCI command-line runtimes (crun and runsc) share: the calls the container backend makes,
each a subprocess of ``command`` with the node's own state directory."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from ...errors import BackendUnavailable


class OciCli:
    """``run``, ``delete``, ``state`` and ``list`` of an OCI runtime's command line."""

    binary_name = ""

    def __init__(self, command: list[str], state_dir: str, run_command: list[str] | None = None) -> None:
        self.command = command
        self.state_dir = state_dir
        # What ``run`` calls after ``run_prefix`` (by default ``command``).
        self.run_command = command if run_command is None else run_command

    def run_prefix(self, bundle: Path) -> list[str]:
        """What ``run`` is started under (a namespace or a wrapper the engine needs); nothing by default."""
        return []

    async def call(self, *args: str, check: bool = True) -> str:
        """Run the runtime with ``args`` and return its stdout."""
        process = await asyncio.create_subprocess_exec(
            *self.command,
            *args,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            umask=0o077,  # what it writes (a checkpoint's memory) is root's alone
        )
        stdout, stderr = await process.communicate()
        if check and process.returncode != 0:
            detail = stderr.decode(errors="replace").strip()
            raise BackendUnavailable(f"{self.binary_name} {args[0]} failed: {detail}")
        return stdout.decode(errors="replace")

    async def run_detached(
        self, container_id: str, bundle: Path, log: Path, *, stdin: int | None = None
    ) -> int:
        """Start a container in the background; returns the pid of its init (runsc: of its Sentry).
        Killing that pid ends every process of the container.

        The init inherits the runtime's stdout and stderr, so both go to ``log`` (a file): a pipe would stay
        open for the container's whole life. Its stdin is ``stdin`` (a descriptor), else ``/dev/null``.
        """
        return await self._start_detached(container_id, bundle, log, "run", stdin=stdin)

    async def _start_detached(
        self,
        container_id: str,
        bundle: Path,
        log: Path,
        command: str,
        *options: str,
        stdin: int | None = None,
    ) -> int:
        """``run`` (or ``restore``) a container in the background; returns the pid of its init."""
        pid_file = bundle / "init.pid"
        argv = [
            *self.run_command, command, *options,
            "--detach", "--pid-file", str(pid_file), "--bundle", str(bundle), container_id,
        ]  # fmt: skip
        with open(log, "ab") as out:
            code = await self._start(argv, bundle, stdin, out.fileno())
        if code != 0:
            tail = log.read_bytes()[-2000:].decode(errors="replace").strip()
            raise BackendUnavailable(f"{self.binary_name} {command} failed: {tail}")
        return int(pid_file.read_text().strip())

    async def _start(self, argv: list[str], bundle: Path, stdin: int | None, output: int) -> int:
        """Run ``argv`` (under ``run_prefix``) with ``output`` as its stdout and stderr; its exit code. The
        runtime finishes what it began even when the caller is cancelled, so that the undo that follows
        finds it all to remove (a ``delete`` racing a ``run`` leaves the container behind)."""
        process = await asyncio.create_subprocess_exec(
            *self.run_prefix(bundle), *argv,
            stdin=asyncio.subprocess.DEVNULL if stdin is None else stdin, stdout=output, stderr=output,
        )  # fmt: skip
        try:
            return await process.wait()
        except asyncio.CancelledError:
            await asyncio.shield(process.wait())
            raise

    async def delete(self, container_id: str) -> None:
        """Kill and remove a container; a missing one is fine."""
        await self.call("delete", "--force", container_id, check=False)

    async def state(self, container_id: str) -> dict:
        """The runtime's state of a container (``status``, ``pid``, …); empty when it does not know it."""
        text = await self.call("state", container_id, check=False)
        try:
            return json.loads(text)
        except ValueError:
            return {}

    async def list(self) -> list[str]:
        """Ids of the containers the runtime knows."""
        text = await self.call("list", "--quiet", check=False)
        return [line.strip() for line in text.splitlines() if line.strip()]
