"""Calling crun: every call runs in a private mount namespace where crun sees a cgroup layout it accepts.

On hosts with the hybrid cgroup layout (v1 controllers plus a cgroup2 mount at ``/sys/fs/cgroup/unified``)
crun 1.8 refuses to run. Each crun call therefore starts in a fresh mount namespace (copied from the host at
that moment, so overlays and ``/run/netns`` entries made just before are visible) with that one mount
removed: crun then drives plain cgroup v1. Nothing changes on the host.

The namespace is made by util-linux's ``unshare`` and a shell, not in a ``preexec_fn``: a pre-exec hook
forces a full ``fork`` of this (large) process, which blocks its event loop for milliseconds, while a
plain command line is started with ``vfork``.
"""

from __future__ import annotations

import asyncio
import json
import shutil
from pathlib import Path

from ...errors import BackendUnavailable, NotSupported
from ..linux import is_mountpoint

_UNIFIED = "/sys/fs/cgroup/unified"
_HIDE_UNIFIED = [
    "unshare", "--mount", "--propagation", "private",
    "sh", "-c", f'umount -l {_UNIFIED} && exec "$@"', "sh",
]  # fmt: skip


def hybrid_cgroups() -> bool:
    """True for the v1 + ``unified`` cgroup2 layout that crun 1.8 refuses."""
    return is_mountpoint(_UNIFIED)


class Crun:
    """Runs ``crun`` with this host's workaround, if it needs one."""

    def __init__(self, state_dir: str = "/run/hutch/crun", binary: str | None = None) -> None:
        found = binary or shutil.which("crun")
        if not found:
            raise NotSupported("crun is not installed: apt-get install crun")
        # Hutch's containers live in their own crun state directory, apart from any other crun user.
        self.state_dir = state_dir
        self.command = [*(_HIDE_UNIFIED if hybrid_cgroups() else []), found, "--root", state_dir]

    async def call(self, *args: str, check: bool = True) -> str:
        """Run ``crun ARGS`` and return its stdout."""
        process = await asyncio.create_subprocess_exec(
            *self.command,
            *args,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        stdout, stderr = await process.communicate()
        if check and process.returncode != 0:
            raise BackendUnavailable(f"crun {args[0]} failed: {stderr.decode(errors='replace').strip()}")
        return stdout.decode(errors="replace")

    async def run_detached(self, container_id: str, bundle: Path, log: Path, *, nice: int = 0) -> int:
        """Start a container in the background; returns its init's pid.

        Its init inherits crun's stdout and stderr, so both go to ``log`` (a file): a pipe would stay open
        for the container's whole life. With ``nice``, crun and the container start at that lower CPU
        priority (background work that must not slow down running sandboxes).
        """
        pid_file = bundle / "init.pid"
        niceness = ["nice", "-n", str(nice)] if nice else []
        with open(log, "ab") as out:
            process = await asyncio.create_subprocess_exec(
                *niceness, *self.command,
                "run", "--detach", "--pid-file", str(pid_file), "--bundle", str(bundle), container_id,
                stdin=asyncio.subprocess.DEVNULL, stdout=out, stderr=out,
            )  # fmt: skip
            code = await process.wait()
        if code != 0:
            tail = log.read_bytes()[-2000:].decode(errors="replace").strip()
            raise BackendUnavailable(f"crun run failed: {tail}")
        return int(pid_file.read_text().strip())

    async def delete(self, container_id: str) -> None:
        """Kill and remove a container; a missing one is fine."""
        await self.call("delete", "--force", container_id, check=False)

    async def state(self, container_id: str) -> dict:
        """crun's state of a container (``status``, ``pid``, …); empty when crun does not know it."""
        text = await self.call("state", container_id, check=False)
        try:
            return json.loads(text)
        except ValueError:
            return {}

    async def list(self) -> list[str]:
        """Ids of the containers crun knows."""
        text = await self.call("list", "--quiet", check=False)
        return [line.strip() for line in text.splitlines() if line.strip()]
