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

import shutil

from ...errors import NotSupported
from ..linux import is_mountpoint
from .engine import OciCli

_UNIFIED = "/sys/fs/cgroup/unified"
_HIDE_UNIFIED = [
    "unshare", "--mount", "--propagation", "private",
    "sh", "-c", f'umount -l {_UNIFIED} && exec "$@"', "sh",
]  # fmt: skip


def hybrid_cgroups() -> bool:
    """True for the v1 + ``unified`` cgroup2 layout that crun 1.8 refuses."""
    return is_mountpoint(_UNIFIED)


class Crun(OciCli):
    """Runs ``crun`` with this host's workaround, if it needs one."""

    binary_name = "crun"

    def __init__(self, state_dir: str = "/run/hutch/crun", binary: str | None = None) -> None:
        found = binary or shutil.which("crun")
        if not found:
            raise NotSupported("crun is not installed: apt-get install crun")
        # Hutch's containers live in their own crun state directory, apart from any other crun user.
        super().__init__(
            [*(_HIDE_UNIFIED if hybrid_cgroups() else []), found, "--root", state_dir], state_dir
        )
