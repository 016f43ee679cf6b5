"""Calling gVisor's ``runsc``: the hardened engine, where a user-space kernel (the Sentry) stands between
the sandbox and the host's kernel.

runsc runs with the ``systrap`` platform (``kvm`` does not work on every host, ``ptrace`` is slower) and its
own network stack (``--network=sandbox``): it takes over the veth of the sandbox's namespace, so the host
kernel's TCP/IP code never sees the sandbox's sockets. Writes go straight to the sandbox's overlay
(``--overlay2=none``), where the disk quota applies and a restarted node finds them. The Sentry also
applies the sandbox's seccomp filter to the sandbox's processes (``--oci-seccomp``): calls the filter
refuses under crun are refused under gVisor too, even those the Sentry could emulate harmlessly.

runsc refuses to set up networking when ``/proc/sys/net/core/rmem_default`` is visible after it joined the
namespace (its test for "this is the host's namespace"), which is true of every namespace on kernels that
made that setting per namespace. Each start therefore enters the sandbox's namespace in a private mount
namespace first and hides that directory there; nothing changes on the host or in the sandbox.
"""

from __future__ import annotations

import asyncio
import json
import shutil
from pathlib import Path

from ...errors import BackendUnavailable, NotSupported

FLAGS = ["--platform=systrap", "--network=sandbox", "--overlay2=none", "--oci-seccomp"]


def _enter_netns(netns_path: str) -> list[str]:
    return [
        "unshare", "--mount", "--propagation", "private", "nsenter", f"--net={netns_path}",
        "sh", "-c", 'mount -t tmpfs -o size=4k,mode=555 hutch /proc/sys/net/core && exec "$@"', "sh",
    ]  # fmt: skip


def _netns_of(bundle: Path) -> str:
    """The network namespace the bundle's ``config.json`` names."""
    config = json.loads((bundle / "config.json").read_text())
    for namespace in config["linux"]["namespaces"]:
        if namespace["type"] == "network" and namespace.get("path"):
            return str(namespace["path"])
    raise BackendUnavailable("a gVisor sandbox needs a network namespace of its own")


class Runsc:
    """Runs ``runsc`` for one node (its own state directory)."""

    name = "gvisor"

    def __init__(self, state_dir: str = "/run/hutch/runsc", binary: str | None = None) -> None:
        found = binary or shutil.which("runsc")
        if not found:
            raise NotSupported("gVisor is not installed: apt-get install runsc (see docs/security.md)")
        self.state_dir = state_dir
        self.command = [found, "--root", state_dir, *FLAGS]

    async def call(self, *args: str, check: bool = True) -> str:
        """Run ``runsc ARGS`` and return its stdout."""
        process = await asyncio.create_subprocess_exec(
            *self.command,
            *args,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        stdout, stderr = await process.communicate()
        if check and process.returncode != 0:
            raise BackendUnavailable(f"runsc {args[0]} failed: {stderr.decode(errors='replace').strip()}")
        return stdout.decode(errors="replace")

    async def run_detached(self, container_id: str, bundle: Path, log: Path, *, nice: int = 0) -> int:
        """Start a sandbox in the background; returns the pid of its Sentry (killing it ends them all)."""
        pid_file = bundle / "init.pid"
        netns_path = _netns_of(bundle)
        niceness = ["nice", "-n", str(nice)] if nice else []
        with open(log, "ab") as out:
            process = await asyncio.create_subprocess_exec(
                *niceness, *_enter_netns(netns_path), *self.command,
                "run", "--detach", "--pid-file", str(pid_file), "--bundle", str(bundle), container_id,
                stdin=asyncio.subprocess.DEVNULL, stdout=out, stderr=out,
            )  # fmt: skip
            code = await process.wait()
        if code != 0:
            tail = log.read_bytes()[-2000:].decode(errors="replace").strip()
            raise BackendUnavailable(f"runsc run failed: {tail}")
        return int(pid_file.read_text().strip())

    async def delete(self, container_id: str) -> None:
        """Kill and remove a sandbox; a missing one is fine."""
        await self.call("delete", "--force", container_id, check=False)

    async def state(self, container_id: str) -> dict:
        """runsc's state of a sandbox (``status``, ``pid``, …); empty when runsc does not know it."""
        text = await self.call("state", container_id, check=False)
        try:
            return json.loads(text)
        except ValueError:
            return {}

    async def list(self) -> list[str]:
        """Ids of the sandboxes runsc knows."""
        text = await self.call("list", "--quiet", check=False)
        return [line.strip() for line in text.splitlines() if line.strip()]
