"""Calling crun: a run starts in a private mount namespace where crun sees a cgroup layout it accepts.

On hosts with the hybrid cgroup layout (v1 controllers plus a cgroup2 mount at ``/sys/fs/cgroup/unified``)
crun 1.8 refuses to run a container. A ``run`` therefore starts in a fresh mount namespace (copied from the
host at that moment, so overlays and ``/run/netns`` entries made just before are visible) with that one
mount removed: crun then drives plain cgroup v1. Nothing changes on the host. crun's other calls
(``delete``, ``state``, ``list``) work on that layout as it is, and run without the copy, whose cost grows
with the host's mounts.

A ``run`` also prepares what the sandbox's user namespace needs, in that private namespace and in the
sandbox's network namespace (whose owner is the host's user namespace, not the sandbox's):
- its root overlay, ``nosuid`` on the host, is remounted there without ``nosuid`` (still ``nodev``), so
  that the container's copy of it lets ``sudo`` work inside while the host's stays inert;
- a sysfs is mounted from inside the network namespace (so it shows the sandbox's interfaces only) where
  the config's ``/sys`` bind takes it from (``oci.SYSFS`` in the bundle);
- ports below 1024 are opened to every user of the network namespace
  (``net.ipv4.ip_unprivileged_port_start=0``), as ``CAP_NET_BIND_SERVICE`` counts only in the namespace's
  owner: without it, root in the sandbox could not listen on port 80.

The node's crun launcher (:mod:`.crun_launcher`, a small process of its own) does all of it by system
calls in a child it forks, which then executes crun: no fork of this (large) process, which a
``preexec_fn`` would force, and no chain of ``unshare``, ``nsenter``, a shell and ``mount`` processes.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

from ...errors import BackendUnavailable, NotSupported
from ..linux import is_mountpoint
from . import oci
from .oci_cli import OciCli

_UNIFIED = "/sys/fs/cgroup/unified"
_LAUNCHER = Path(__file__).with_name("crun_launcher.py")
MAX_ANSWER = 4096


def hybrid_cgroups() -> bool:
    """True for the v1 + ``unified`` cgroup2 layout that crun 1.8 refuses."""
    return is_mountpoint(_UNIFIED)


def _root_and_netns(bundle: Path) -> tuple[str, str]:
    """The root (a path relative to the bundle, or absolute) and the network namespace the bundle's
    ``config.json`` names."""
    config = json.loads((bundle / "config.json").read_text())
    for namespace in config["linux"]["namespaces"]:
        if namespace["type"] == "network" and namespace.get("path"):
            return str(bundle / config["root"]["path"]), str(namespace["path"])
    raise BackendUnavailable("a crun sandbox needs a network namespace of its own")


class Launcher:
    """The node's crun launcher process: started on first use, and again if it has ended."""

    def __init__(self) -> None:
        self._process: subprocess.Popen[bytes] | None = None
        self._control: socket.socket | None = None

    async def run(self, request: dict, stdin: int, output: int) -> int:
        """Have the launcher run ``request`` with ``stdin`` and ``output``; the exit code. A run it began
        is waited for even when the caller is cancelled."""
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        with ours:
            with theirs:
                self._send(json.dumps(request).encode(), [theirs.fileno(), stdin, output])
            ours.setblocking(False)
            answer = asyncio.ensure_future(asyncio.get_running_loop().sock_recv(ours, MAX_ANSWER))
            try:
                text = await asyncio.shield(answer)
            except asyncio.CancelledError:
                await answer
                raise
        if not text:
            raise BackendUnavailable("the crun launcher ended during a run")
        return int(json.loads(text)["status"])

    def _send(self, message: bytes, fds: list[int]) -> None:
        """One request; the launcher is started again once if it has gone."""
        for attempt in range(2):
            try:
                socket.send_fds(self._started(), [message], fds)
                return
            except OSError as err:
                if attempt:
                    raise BackendUnavailable(f"crun's launcher is unreachable: {err}") from err
                self.close()

    def _started(self) -> socket.socket:
        if self._process is not None and self._process.poll() is None and self._control is not None:
            return self._control
        self.close()
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        with theirs:
            self._process = subprocess.Popen(
                [sys.executable, "-I", "-S", str(_LAUNCHER), str(theirs.fileno())],
                pass_fds=[theirs.fileno()],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
            )
        self._control = ours
        return ours

    def close(self) -> None:
        """Close the control socket (the launcher then exits) and reap the launcher."""
        if self._control is not None:
            self._control.close()
            self._control = None
        if self._process is not None:
            try:
                self._process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
            self._process = None


class Crun(OciCli):
    """Runs ``crun`` with this host's workaround, if it needs one."""

    binary_name = "crun"

    def __init__(self, state_dir: str = "/run/hutch/crun", binary: str | None = None) -> None:
        found = binary or shutil.which("crun")
        if not found:
            raise NotSupported("crun is not installed: apt-get install crun")
        self.hybrid = hybrid_cgroups()
        # Hutch's containers live in their own crun state directory, apart from any other crun user.
        command = [found, "--root", state_dir]
        super().__init__(command, state_dir)
        self.launcher = Launcher()

    async def _start(self, argv: list[str], bundle: Path, stdin: int | None, output: int) -> int:
        root, netns = _root_and_netns(bundle)
        sysfs = bundle / oci.SYSFS
        sysfs.mkdir(exist_ok=True)
        request = {"argv": argv, "netns": netns, "root": root, "sysfs": str(sysfs), "hybrid": self.hybrid}
        if stdin is not None:
            return await self.launcher.run(request, stdin, output)
        null = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
        try:
            return await self.launcher.run(request, null, output)
        finally:
            os.close(null)

    def close(self) -> None:
        self.launcher.close()
