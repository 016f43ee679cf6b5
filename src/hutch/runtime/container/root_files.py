"""What the host writes into a sandbox's root before its processes start: ``/etc/hostname``, ``/etc/hosts``
and ``/etc/resolv.conf``, and, under gVisor, a real ``/tmp`` directory.

All of it goes through ``safe_path``: a link the template or the sandbox left there is replaced, never
followed. A gVisor sandbox's ``/tmp`` is bind-mounted from ``tmp`` in its root (so that it stays in the
writable layer, which snapshots and copies take along); since runsc follows links in a mount source, ``tmp``
is made a real directory before each run, boot and restore, while none of the sandbox's processes run.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

from ..safe_path import Root
from .egress.name_servers import resolv_conf
from .sandbox import ContainerSandbox

log = logging.getLogger("hutch.runtime")


def write_identity(root: Path, sandbox_id: str) -> None:
    """/etc/hostname and /etc/hosts naming the sandbox (sudo and many tools resolve the host name), in place
    of whatever the sandbox's root has there."""
    hosts = f"127.0.0.1\tlocalhost\n::1\tlocalhost\n127.0.1.1\t{sandbox_id}\n"
    _write_etc(root, {"hostname": f"{sandbox_id}\n", "hosts": hosts})


def write_resolv_conf(root: Path, name_servers: Sequence[str]) -> None:
    """With egress, the sandbox resolves names through the node's ``name_servers`` (``egress.name_servers``;
    none: the root's own file stays). What the sandbox's root has there (a link, say, to a host file) is
    replaced, never written through."""
    if name_servers:
        _write_etc(root, {"resolv.conf": resolv_conf(name_servers)})


def _write_etc(root: Path, files: dict[str, str]) -> None:
    """Files in the ``/etc`` of a sandbox's root. A root whose ``/etc`` leads nowhere inside it (a link out,
    say) gets none: it broke its own ``/etc``, and nothing outside it is touched."""
    with Root(root) as tree:
        for name, content in files.items():
            try:
                tree.write_file(f"etc/{name}", content)
            except OSError as err:
                log.warning("cannot write /etc/%s in %s: %s", name, root, err)


def real_tmp(sandbox: ContainerSandbox) -> None:
    """A gVisor sandbox's ``/tmp`` is bind-mounted from its root by path, and runsc would follow a link
    there onto the host: it is made a real directory before each run, boot and restore, while none of the
    sandbox's processes run (a template or an earlier life of the sandbox may have left a link)."""
    if sandbox.engine == "gvisor":
        with Root(sandbox.overlay.merged) as tree:
            tree.ensure_directory("tmp", 0o1777)
