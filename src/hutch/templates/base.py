"""The ``base`` template: a Debian bookworm root filesystem built with mmdebstrap, cached on disk.

It has what E2B's base image offers a user: bash, coreutils, procps, python3 (also as ``python``), pip,
numpy, git, curl, CA certificates, sudo and iproute2, and a user ``user`` (home ``/home/user``) with
passwordless sudo. envd is not baked in: the runtime mounts the node's copy at
``/usr/local/lib/hutch/envd.pyz``, whose mount point the image provides. Its login files start no program
a login shell does not need (``login_profile.sh``): every command runs in one.

The image lives in a directory per ``fingerprint`` (the recipe: suite, mirrors, packages, hooks and the
scripts they run), so that a changed recipe builds a new one, and the templates made from it follow.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import shutil
import sys
from collections.abc import Callable
from pathlib import Path

from ..errors import BackendUnavailable
from .cached import build_once
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
LOGIN_PROFILE = Path(__file__).with_name("login_profile.sh")
CUSTOMIZE = [
    # the login files without needless programs, before useradd copies /etc/skel
    f'sh {LOGIN_PROFILE} "$1"',
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
    """Where the image this recipe builds lives: a directory per ``fingerprint``."""
    return Path(cache_dir) / "templates" / TEMPLATE_ID / fingerprint()[:16] / "rootfs"


def fingerprint() -> str:
    """What the image is made of: the suite, mirrors, packages, hooks, the script the hooks run and the
    command line that puts them together."""
    customize = [step.replace(str(LOGIN_PROFILE), LOGIN_PROFILE.name) for step in CUSTOMIZE]  # not where
    recipe = [SUITE, MIRRORS, PACKAGES, customize, CLEANUP, inspect.getsource(mmdebstrap_command)]
    digest = hashlib.sha256(json.dumps(recipe).encode())
    digest.update(LOGIN_PROFILE.read_bytes())
    return digest.hexdigest()


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
    """Build the base root filesystem unless a cached one has the same ``fingerprint``; returns its path."""
    target = rootfs_path(cache_dir)

    def make(partial: Path) -> None:
        if shutil.which("mmdebstrap") is None:
            raise BackendUnavailable("mmdebstrap is not installed: apt-get install mmdebstrap")
        log(f"building the base template into {target} (mmdebstrap, about a minute)")
        run_logged(mmdebstrap_command(partial, PACKAGES, [*CUSTOMIZE, *CLEANUP]), log)

    return build_once(target, fingerprint(), make, force=force)


if __name__ == "__main__":
    print(build(Path(sys.argv[1] if len(sys.argv) > 1 else "/var/cache/hutch"), force="--force" in sys.argv))
