"""The ``code-interpreter-v1`` template: the base root filesystem plus Jupyter kernels and the interpreter.

Built from a copy of the base template (which stays untouched): pip installs the pinned packages below in a
chroot, ``hutch/interpreter`` is copied to ``INTERPRETER_DIR``, and matplotlib's font cache is built for
root and ``user``, so that the first plot in a sandbox does not pay for it. The image is cached per
``fingerprint`` (the packages, this builder and the interpreter's sources), built once by one node at a
time. The server starts with ``START_CMD`` as ``START_USER`` (root, as in E2B's template; the kernels start
in ``/home/user``) and is ready when ``READY_CMD`` succeeds; it answers only once its default Python kernel
is up.
"""

from __future__ import annotations

import hashlib
import os
import stat
import sys
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path

from ..runtime.linux import detach, mount
from ..runtime.safe_path import Root
from . import base
from .cached import build_once
from .commands import run_logged

TEMPLATE_ID = "code-interpreter-v1"
ALIASES = ["code-interpreter-v1", "code-interpreter"]
PACKAGES = [
    "jupyter_client==8.10.0", "ipykernel==7.4.0", "ipython==9.18.1", "bash_kernel==0.10.0",
    "numpy==2.4.6", "pandas==3.1.1", "matplotlib==3.10.9", "deno==2.9.8",
    "starlette==1.10.0", "uvicorn==0.54.0", "httpx==0.28.1",
]  # fmt: skip
# Where the package lives in the image: on the server's PYTHONPATH only, not on the kernels'.
INTERPRETER_DIR = "/usr/local/lib/hutch/interpreter"
PORT = 49999
START_CMD = f"PYTHONPATH={INTERPRETER_DIR} exec python3 -m hutch.interpreter --host 0.0.0.0 --port {PORT}"
# As in E2B's template, the server and its kernels run as root (commands still default to ``user``).
START_USER = "root"
READY_CMD = f"curl -sf -o /dev/null http://127.0.0.1:{PORT}/health"
_CA_BUNDLE = "/etc/ssl/certs/ca-certificates.crt"
MS_BIND = 4096
_SOURCE = Path(__file__).resolve().parent.parent / "interpreter"
_WARM_MATPLOTLIB = (
    "import matplotlib; matplotlib.use('Agg'); import matplotlib.pyplot as plt; "
    "plt.plot([1, 2]); plt.title('warm'); plt.savefig('/dev/null', format='png')"
)


def rootfs_path(cache_dir: Path) -> Path:
    """Where the image this code builds lives: a directory per ``fingerprint``, so that nodes sharing the
    cache with another version of this code never rebuild (nor remove) each other's image."""
    return Path(cache_dir) / "templates" / TEMPLATE_ID / fingerprint()[:16] / "rootfs"


def fingerprint() -> str:
    """What the image is made of here: the pinned packages, this builder and the interpreter's sources."""
    digest = hashlib.sha256("\n".join(PACKAGES).encode() + Path(__file__).read_bytes())
    for path in sorted(_SOURCE.rglob("*.py")):
        digest.update(path.relative_to(_SOURCE).as_posix().encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def build(cache_dir: Path, *, log: Callable[[str], None] = print, force: bool = False) -> Path:
    """Build the template's root filesystem unless a cached one has the same ``fingerprint`` (the base
    first, if needed)."""

    def make(partial: Path) -> None:
        source = base.build(cache_dir, log=log)
        log(f"building the {TEMPLATE_ID} template into {rootfs_path(cache_dir)} (pip, about a minute)")
        run_logged(["cp", "-a", "--reflink=auto", str(source), str(partial)], log)
        with ExitStack() as mounts:
            _mount_for_chroot(partial, mounts)
            run_logged(["chroot", str(partial), "python3", "-m", "pip", "install", "--no-cache-dir",
                  "--disable-pip-version-check", "--root-user-action=ignore", *PACKAGES], log)  # fmt: skip
            _install_package(partial)
            run_logged(["chroot", str(partial), "python3", "-m", "compileall", "-q", INTERPRETER_DIR], log)
            for user, home in ((START_USER, "/root"), ("user", "/home/user")):  # the kernels', and commands'
                run_logged(["chroot", f"--userspec={user}:{user}", str(partial), "env", f"HOME={home}",
                      "python3", "-c", _WARM_MATPLOTLIB], log)  # fmt: skip

    return build_once(rootfs_path(cache_dir), fingerprint(), make, force=force)


def _install_package(rootfs: Path) -> None:
    """The interpreter's sources (no bytecode) at ``INTERPRETER_DIR`` in the image, in place of any."""
    destination = f"{INTERPRETER_DIR.lstrip('/')}/hutch/interpreter"
    with Root(rootfs) as tree:
        tree.remove(destination)
        for source in sorted(_SOURCE.rglob("*")):
            relative = source.relative_to(_SOURCE)
            if "__pycache__" in relative.parts or source.suffix == ".pyc" or not source.is_file():
                continue
            tree.write_file(f"{destination}/{relative.as_posix()}", source.read_bytes())


def _mount_for_chroot(rootfs: Path, mounts: ExitStack) -> None:
    """/proc, /dev, and the host's resolv.conf and CA bundle (pip reaches PyPI as the host does), each
    unmounted when ``mounts`` closes. Each goes onto the directory or file its path names inside the image
    (a link there is resolved within it)."""
    with Root(rootfs) as tree:
        tree.write_file("etc/resolv.conf", "")
        _mount_inside(tree, "proc", "proc", "proc", 0, mounts)
        _mount_inside(tree, "dev", "/dev", None, MS_BIND, mounts)
        _mount_inside(tree, "etc/resolv.conf", "/etc/resolv.conf", None, MS_BIND, mounts)
        bundle = tree.lstat(_CA_BUNDLE.lstrip("/"))
        if Path(_CA_BUNDLE).is_file() and bundle is not None and stat.S_ISREG(bundle.st_mode):
            _mount_inside(tree, _CA_BUNDLE.lstrip("/"), _CA_BUNDLE, None, MS_BIND, mounts)


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


if __name__ == "__main__":
    print(build(Path(sys.argv[1] if len(sys.argv) > 1 else "/var/cache/hutch"), force="--force" in sys.argv))
