"""The ``mcp-gateway`` template: the base root filesystem plus what MCP servers run on and the gateway
that serves them (``hutch/mcp_gateway``) for ``Sandbox.create(mcp=...)``.

Over a copy of base, apt installs Node.js and npm (``npx`` runs the catalog's npm servers) and Python's
venv module; a venv of its own at ``VENV`` gets the pinned ``mcp`` library (the gateway's) and ``uv``
(``uvx`` runs the catalog's PyPI servers, on the image's Python); the package is copied to
``PACKAGE_DIR``; ``/usr/local/bin/mcp-gateway`` runs it; ``uv``/``uvx`` are on ``PATH``. The SDK starts
the gateway itself after a create, so the template has no start command. Cached per ``fingerprint``.
"""

from __future__ import annotations

import hashlib
import sys
import time
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path

from ..runtime.safe_path import Root
from . import base
from .cached import build_once
from .chroot import mount_for_chroot
from .commands import run_logged

TEMPLATE_ID = "mcp-gateway"
ALIASES = ["mcp-gateway"]
APT_PACKAGES = ["nodejs", "npm", "python3-venv"]
PACKAGES = ["mcp==1.30.0", "uv==0.13.9"]
VENV = "/opt/mcp-gateway/venv"
PACKAGE_DIR = "/usr/local/lib/hutch/mcp-gateway"
COMMAND = "/usr/local/bin/mcp-gateway"
_LAUNCHER = f'#!/bin/sh\nPYTHONPATH={PACKAGE_DIR} exec {VENV}/bin/python -m hutch.mcp_gateway "$@"\n'
_SOURCE = Path(__file__).resolve().parent.parent / "mcp_gateway"


def rootfs_path(cache_dir: Path) -> Path:
    """Where the image this code builds lives: a directory per ``fingerprint``."""
    return Path(cache_dir) / "templates" / TEMPLATE_ID / fingerprint()[:16] / "rootfs"


def fingerprint() -> str:
    """What the image is made of: base's recipe, the package lists, this builder and the gateway's
    sources."""
    digest = hashlib.sha256()
    recipe = (base.fingerprint(), *APT_PACKAGES, *PACKAGES, Path(__file__).read_text())
    for part in recipe:
        digest.update(part.encode() + b"\0")
    for path in _sources():
        digest.update(path.relative_to(_SOURCE).as_posix().encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def build(cache_dir: Path, *, log: Callable[[str], None] = print, force: bool = False) -> Path:
    """Build the template's root filesystem unless a cached one has the same ``fingerprint`` (the base
    first, if needed); logs how long it took and its size."""

    def make(partial: Path) -> None:
        source = base.build(cache_dir, log=log)
        log(f"building the {TEMPLATE_ID} template into {rootfs_path(cache_dir)} (apt and pip)")
        started = time.monotonic()
        run_logged(["cp", "-a", "--reflink=auto", str(source), str(partial)], log)
        with ExitStack() as mounts:
            mount_for_chroot(partial, mounts)
            apt = ["chroot", str(partial), "env", "DEBIAN_FRONTEND=noninteractive", "apt-get", "-q", "-y"]
            run_logged([*apt, "update"], log)
            run_logged([*apt, "install", "--no-install-recommends", *APT_PACKAGES], log)
            run_logged([*apt, "clean"], log)
            run_logged(["chroot", str(partial), "python3", "-m", "venv", VENV], log)
            pip = [f"{VENV}/bin/pip", "install", "--no-cache-dir", "--disable-pip-version-check"]
            run_logged(["chroot", str(partial), *pip, *PACKAGES], log)
            with Root(partial) as tree:
                tree.remove("var/lib/apt/lists")
                _install_package(tree)
                for tool in ("uv", "uvx"):
                    tree.write_file(
                        f"usr/local/bin/{tool}", f'#!/bin/sh\nexec {VENV}/bin/{tool} "$@"\n', 0o755
                    )
            run_logged(
                ["chroot", str(partial), f"{VENV}/bin/python", "-m", "compileall", "-q", PACKAGE_DIR], log
            )
        size = sum(entry.stat(follow_symlinks=False).st_size for entry in partial.rglob("*"))
        log(f"{TEMPLATE_ID}: {size / 2**30:.2f} GiB in {time.monotonic() - started:.0f} s")

    return build_once(rootfs_path(cache_dir), fingerprint(), make, force=force)


def _sources() -> list[Path]:
    return [
        path
        for path in sorted(_SOURCE.rglob("*"))
        if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc"
    ]


def _install_package(tree: Root) -> None:
    """The gateway's sources at ``PACKAGE_DIR`` (as ``hutch/mcp_gateway``), and its command."""
    destination = f"{PACKAGE_DIR.lstrip('/')}/hutch/mcp_gateway"
    tree.remove(destination)
    for path in _sources():
        tree.write_file(f"{destination}/{path.relative_to(_SOURCE).as_posix()}", path.read_bytes())
    tree.write_file(COMMAND.lstrip("/"), _LAUNCHER, 0o755)
    for path in ("etc/mcp-gateway", "var/log/mcp-gateway"):
        tree.ensure_directory(path, 0o700)


if __name__ == "__main__":
    print(build(Path(sys.argv[1] if len(sys.argv) > 1 else "/var/cache/hutch"), force="--force" in sys.argv))
