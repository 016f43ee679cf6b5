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

import json
import shutil
from pathlib import Path

from ...errors import BackendUnavailable, NotSupported
from .oci_cli import OciCli

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


class Runsc(OciCli):
    """Runs ``runsc`` for one node (its own state directory)."""

    binary_name = "runsc"

    def __init__(self, state_dir: str = "/run/hutch/runsc", binary: str | None = None) -> None:
        found = binary or shutil.which("runsc")
        if not found:
            raise NotSupported("gVisor is not installed: apt-get install runsc (see docs/security.md)")
        super().__init__([found, "--root", state_dir, *FLAGS], state_dir)

    def run_prefix(self, bundle: Path) -> list[str]:
        return _enter_netns(_netns_of(bundle))

    async def checkpoint(self, container_id: str, image: Path, *, leave_running: bool = False) -> None:
        """Save the whole sandbox (memory, processes, kernel state) to ``image``; the container stops,
        unless ``leave_running`` (a paused one stays paused). The image is not compressed: restoring it is
        faster, at the cost of about the sandbox's memory in size (pages never written are left out)."""
        options = ["--compression=none", "--exclude-committed-zero-pages", "--image-path", str(image)]
        if leave_running:
            options.append("--leave-running")
        await self.call("checkpoint", *options, container_id)

    async def pause(self, container_id: str) -> None:
        """Stop every task of the sandbox in its Sentry (which keeps serving runsc's calls)."""
        await self.call("pause", container_id)

    async def resume(self, container_id: str) -> None:
        await self.call("resume", container_id)

    async def restore(self, container_id: str, bundle: Path, image: Path, log: Path) -> int:
        """Start the container again from ``image`` (in the background); returns the Sentry's pid."""
        return await self._start_detached(container_id, bundle, log, "restore", "--image-path", str(image))
