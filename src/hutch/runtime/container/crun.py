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

The namespace is made by ``unshare`` and a shell, not in a ``preexec_fn``: a pre-exec hook forces a full
``fork`` of this (large) process, which blocks its event loop for milliseconds, while a plain command line
is started with ``vfork``. They are the host's static busybox's when it has one (``busybox``: it starts
faster, and its ``mount`` does not read every mount of the host), util-linux's and ``sh`` otherwise.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from ...errors import BackendUnavailable, NotSupported
from ..linux import is_mountpoint
from . import oci
from .busybox import static_busybox
from .oci_cli import OciCli

_UNIFIED = "/sys/fs/cgroup/unified"


def _tools() -> tuple[list[str], list[str], list[str], str]:
    """How ``unshare``, ``nsenter``, ``sh`` and ``mount``/``umount`` are called."""
    found = static_busybox()
    if found is None:
        return ["unshare"], ["nsenter"], ["sh"], ""
    busybox = str(found)
    return [busybox, "unshare"], [busybox, "nsenter"], [busybox, "sh"], f"{busybox} "


def _prepare_run(hybrid: bool) -> str:
    """Run with the sandbox's root as $1 and its sysfs mount point as $2, then the crun command line."""
    tool = _tools()[3]
    return (
        f'{tool}mount -o remount,bind,nodev,suid "$1"'
        f' && {tool}mount -t sysfs -o ro,nosuid,nodev,noexec sysfs "$2" && shift 2'
        " && echo 0 > /proc/sys/net/ipv4/ip_unprivileged_port_start"
        + (f" && {tool}umount -l {_UNIFIED}" if hybrid else "")
        + ' && exec "$@"'
    )


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

    def run_prefix(self, bundle: Path) -> list[str]:
        root, netns = _root_and_netns(bundle)
        sysfs = bundle / oci.SYSFS
        sysfs.mkdir(exist_ok=True)
        unshare, nsenter, sh, _ = _tools()
        return [
            *unshare, "--mount", "--propagation", "private", *nsenter, f"--net={netns}",
            *sh, "-c", _prepare_run(self.hybrid), "sh", root, str(sysfs),
        ]  # fmt: skip
