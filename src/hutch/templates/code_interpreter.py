"""The ``code-interpreter-v1`` template: the base root filesystem plus Jupyter kernels and the interpreter.

Built from a copy of the base template (which stays untouched): pip installs the pinned packages below in a
chroot, ``hutch/interpreter`` is copied to ``INTERPRETER_DIR``, and matplotlib's font cache is built for
root and ``user``, so that the first plot in a sandbox does not pay for it. A cached image is rebuilt when
its ``fingerprint`` (the packages, this builder and the interpreter's sources) changes. The server starts
with ``START_CMD`` as ``START_USER`` (root, as in E2B's template; the kernels start in ``/home/user``) and
is ready when ``READY_CMD`` succeeds; it answers only once its default Python kernel is up.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path

from ..errors import BackendUnavailable
from . import base
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
_SOURCE = Path(__file__).resolve().parent.parent / "interpreter"
_WARM_MATPLOTLIB = (
    "import matplotlib; matplotlib.use('Agg'); import matplotlib.pyplot as plt; "
    "plt.plot([1, 2]); plt.title('warm'); plt.savefig('/dev/null', format='png')"
)


def rootfs_path(cache_dir: Path) -> Path:
    return Path(cache_dir) / "templates" / TEMPLATE_ID / "rootfs"


def fingerprint() -> str:
    """What the image is made of here: the pinned packages, this builder and the interpreter's sources."""
    digest = hashlib.sha256("\n".join(PACKAGES).encode() + Path(__file__).read_bytes())
    for path in sorted(_SOURCE.rglob("*.py")):
        digest.update(path.relative_to(_SOURCE).as_posix().encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def build(cache_dir: Path, *, log: Callable[[str], None] = print, force: bool = False) -> Path:
    """Build the template's root filesystem unless a cached one has the same ``fingerprint`` (the base
    first, if needed)."""
    target = rootfs_path(cache_dir)
    stamp = target.with_name("fingerprint")
    wanted = fingerprint()
    if target.exists() and not force and stamp.exists() and stamp.read_text() == wanted:
        return target
    source = base.build(cache_dir, log=log)
    partial = target.with_name("rootfs.partial")
    _remove(partial)
    partial.parent.mkdir(parents=True, exist_ok=True)
    log(f"building the {TEMPLATE_ID} template into {target} (pip, about a minute)")
    try:
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
    except BaseException:
        _remove(partial)
        raise
    _remove(target)
    partial.rename(target)
    stamp.write_text(wanted)
    return target


def _install_package(rootfs: Path) -> None:
    destination = rootfs / INTERPRETER_DIR.lstrip("/") / "hutch" / "interpreter"
    shutil.rmtree(destination, ignore_errors=True)
    shutil.copytree(_SOURCE, destination, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))


def _mount_for_chroot(rootfs: Path, mounts: ExitStack) -> None:
    """/proc, /dev, and the host's resolv.conf and CA bundle (pip reaches PyPI as the host does), each
    unmounted when ``mounts`` closes."""
    resolv = rootfs / "etc" / "resolv.conf"
    if resolv.is_symlink():
        resolv.unlink()
    resolv.touch()
    binds = [("/dev", rootfs / "dev"), ("/etc/resolv.conf", resolv)]
    if Path(_CA_BUNDLE).is_file() and (rootfs / _CA_BUNDLE.lstrip("/")).is_file():
        binds.append((_CA_BUNDLE, rootfs / _CA_BUNDLE.lstrip("/")))
    subprocess.run(["mount", "-t", "proc", "proc", str(rootfs / "proc")], check=True)
    mounts.callback(subprocess.run, ["umount", "-l", str(rootfs / "proc")], check=False)
    for host, inside in binds:
        subprocess.run(["mount", "--bind", host, str(inside)], check=True)
        mounts.callback(subprocess.run, ["umount", "-l", str(inside)], check=False)


def _remove(path: Path) -> None:
    """Remove a (partial) root filesystem, refusing while anything is still mounted inside it."""
    if not path.exists():
        return
    mounted = subprocess.run(["findmnt", "-rn", "-o", "TARGET"], capture_output=True, text=True).stdout
    if any(line == str(path) or line.startswith(f"{path}/") for line in mounted.splitlines()):
        raise BackendUnavailable(f"{path} still has mounts inside; unmount them first")
    shutil.rmtree(path)


if __name__ == "__main__":
    print(build(Path(sys.argv[1] if len(sys.argv) > 1 else "/var/cache/hutch"), force="--force" in sys.argv))
