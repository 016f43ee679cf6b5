"""What a built-in template's builder mounts into an image before it runs apt, pip or a compiler there by
``chroot``: ``mount_for_chroot``."""

from __future__ import annotations

import os
import stat
from contextlib import ExitStack
from pathlib import Path

from ..runtime.linux import detach, mount
from ..runtime.safe_path import Root

CA_BUNDLE = "/etc/ssl/certs/ca-certificates.crt"
MS_BIND = 4096


def mount_for_chroot(rootfs: Path, mounts: ExitStack) -> None:
    """/proc, /dev, and the host's resolv.conf and CA bundle (apt and pip reach the mirrors as the host
    does) into the image at ``rootfs``, each unmounted when ``mounts`` closes. Each goes onto the directory
    or file its path names inside the image (a link there is resolved within it)."""
    with Root(rootfs) as tree:
        tree.write_file("etc/resolv.conf", "")
        _mount_inside(tree, "proc", "proc", "proc", 0, mounts)
        _mount_inside(tree, "dev", "/dev", None, MS_BIND, mounts)
        _mount_inside(tree, "etc/resolv.conf", "/etc/resolv.conf", None, MS_BIND, mounts)
        bundle = tree.lstat(CA_BUNDLE.lstrip("/"))
        if Path(CA_BUNDLE).is_file() and bundle is not None and stat.S_ISREG(bundle.st_mode):
            _mount_inside(tree, CA_BUNDLE.lstrip("/"), CA_BUNDLE, None, MS_BIND, mounts)


def _mount_inside(
    tree: Root, inside: str, source: str, kind: str | None, flags: int, mounts: ExitStack
) -> None:
    """Mount ``source`` over ``inside`` of ``tree`` through a descriptor of what the path resolves to."""
    fd = tree.open(inside, os.O_PATH)
    try:
        target = os.readlink(f"/proc/self/fd/{fd}")
        mount(source, f"/proc/self/fd/{fd}", kind, flags)
    finally:
        os.close(fd)
    mounts.callback(detach, target)
