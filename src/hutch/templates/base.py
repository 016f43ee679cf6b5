"""The ``base`` template: a Debian bookworm root filesystem built with mmdebstrap, cached on disk.

It has what E2B's base image offers a user: bash, coreutils, procps, python3 (also as ``python``), pip,
numpy, git, curl, CA certificates, sudo and iproute2, and a user ``user`` (home ``/home/user``) with
passwordless sudo. envd is not baked in: the runtime mounts the node's copy at
``/usr/local/lib/hutch/envd.pyz``, whose mount point the image provides.
"""

from __future__ import annotations

import shutil
import sys
from collections.abc import Callable
from pathlib import Path

from ..errors import BackendUnavailable
from .commands import run_logged

TEMPLATE_ID = "base"
ALIASES = ["base", "base-template-000-0000-0000-000000000001"]
SUITE = "bookworm"
MIRRORS = [
    "deb http://deb.debian.org/debian bookworm main",
    "deb http://deb.debian.org/debian bookworm-updates main",
    "deb http://deb.debian.org/debian-security bookworm-security main",
]
PACKAGES = [
    "bash", "coreutils", "procps", "python3", "python-is-python3", "python3-pip", "python3-numpy", "git",
    "curl", "ca-certificates", "sudo", "iproute2", "less", "nano", "locales",
]  # fmt: skip
DEFAULT_USER = "user"
CUSTOMIZE = [
    # the default user, with passwordless sudo, as in E2B's base image
    f'chroot "$1" useradd --create-home --shell /bin/bash --groups sudo {DEFAULT_USER}',
    f'echo "{DEFAULT_USER} ALL=(ALL:ALL) NOPASSWD: ALL" > "$1/etc/sudoers.d/{DEFAULT_USER}"',
    f'chmod 0440 "$1/etc/sudoers.d/{DEFAULT_USER}"',
    # envd's mount point, and pip allowed to install for the user (PEP 668 would refuse it)
    'mkdir -p "$1/usr/local/lib/hutch" && touch "$1/usr/local/lib/hutch/envd.pyz"',
    'rm -f "$1"/usr/lib/python3*/EXTERNALLY-MANAGED',
    'echo "127.0.0.1 localhost" > "$1/etc/hosts"',
]
CLEANUP = ['rm -rf "$1"/var/cache/apt/archives/*.deb "$1"/var/lib/apt/lists/*']


def rootfs_path(cache_dir: Path) -> Path:
    return Path(cache_dir) / "templates" / TEMPLATE_ID / "rootfs"


def mmdebstrap_command(
    target: Path, packages: list[str], hooks: list[str], dpkg_options: tuple[str, ...] = ()
) -> list[str]:
    """mmdebstrap's command line for a root filesystem of ``SUITE`` at ``target``: ``packages`` (without
    their recommends) over the minimal base, then the customize ``hooks`` in order."""
    return [
        "mmdebstrap",
        "--variant=minbase",
        "--mode=root",
        "--format=directory",
        f"--include={','.join(packages)}",
        *[f"--dpkgopt={option}" for option in dpkg_options],
        *[f"--customize-hook={hook}" for hook in hooks],
        SUITE,
        str(target),
        *MIRRORS,
    ]


def build(cache_dir: Path, *, log: Callable[[str], None] = print, force: bool = False) -> Path:
    """Build the base root filesystem unless it is cached; returns its path."""
    target = rootfs_path(cache_dir)
    if target.exists() and not force:
        return target
    if shutil.which("mmdebstrap") is None:
        raise BackendUnavailable("mmdebstrap is not installed: apt-get install mmdebstrap")
    partial = target.with_name("rootfs.partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.parent.mkdir(parents=True, exist_ok=True)
    command = mmdebstrap_command(partial, PACKAGES, [*CUSTOMIZE, *CLEANUP])
    log(f"building the base template into {target} (mmdebstrap, about a minute)")
    try:
        run_logged(command, log)
    except BackendUnavailable:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    if target.exists():
        shutil.rmtree(target)
    partial.rename(target)
    return target


if __name__ == "__main__":
    print(build(Path(sys.argv[1] if len(sys.argv) > 1 else "/var/cache/hutch"), force="--force" in sys.argv))
