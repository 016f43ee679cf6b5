"""The ``code-interpreter-v1`` template: the base root filesystem plus the kernels, the packages agents'
code imports without asking, and the interpreter.

Built in two stages, each cached per fingerprint and built once by one node at a time:

1. **packages** (``packages_path``): a copy of the base template (which stays untouched) where apt installs
   R with its common packages and IRkernel, and the JDK (whose JShell the Java kernel drives); pip
   installs the pinned Python packages; matplotlib's font cache is built for root and ``user``, so that the
   first plot in a sandbox does not pay for it. Minutes; rebuilt only when the lists or the code that
   installs them change.
2. **the template** (``rootfs_path``): the packages stage linked file by file (``cp -al``: nothing of it
   is written in place, so the two share their bytes), ``hutch/interpreter`` copied to
   ``INTERPRETER_DIR``, its Python compiled and its Java classes built. Seconds; rebuilt when the
   interpreter's sources change.

The server starts with ``START_CMD`` as ``START_USER`` (root, as in E2B's template; the kernels start in
``/home/user``) and is ready when ``READY_CMD`` succeeds; it answers only once its default Python kernel
is up.
"""

from __future__ import annotations

import hashlib
import inspect
import sys
import time
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path

from ..runtime.safe_path import Root
from . import base
from .cached import build_once
from .chroot import mount_for_chroot as _mount_for_chroot  # build_packages' text is its fingerprint
from .commands import run_logged

TEMPLATE_ID = "code-interpreter-v1"
ALIASES = ["code-interpreter-v1", "code-interpreter"]
# The kernels' and the server's own, then what E2B's template offers (``template/requirements.txt``):
# the versions of those that install together from PyPI for the image's Python (3.11). OpenCV without
# its GUI; plotly 5 with kaleido 0.2, which carries its own browser for static images.
PACKAGES = [
    "jupyter_client==8.10.0", "ipykernel==7.4.0", "ipython==9.18.1", "bash_kernel==0.10.0",
    "deno==2.9.8", "starlette==1.10.0", "uvicorn==0.54.0", "httpx==0.28.1",
    "numpy==2.4.6", "pandas==3.1.1", "matplotlib==3.10.9", "pillow==13.0.0", "orjson==3.13.0",
    "e2b-charts==1.0.0",
    "aiohttp==3.14.5", "beautifulsoup4==4.15.0", "bokeh==3.9.2", "gensim==4.4.0", "imageio==2.38.2",
    "joblib==1.6.0", "librosa==0.11.0", "nltk==3.10.4", "opencv-python-headless==5.1.0.95",
    "openpyxl==3.1.5", "plotly==5.24.1", "kaleido==0.2.1", "pytest==9.2.0", "python-docx==1.2.0",
    "pytz==2026.6", "requests==2.34.2", "scikit-image==0.26.0", "scikit-learn==1.9.1", "scipy==1.17.1",
    "seaborn==0.13.2", "soundfile==0.14.0", "spacy==3.8.18", "textblob==0.20.1", "tornado==6.6.1",
    "urllib3==2.8.0", "xarray==2026.9.0", "xlrd==2.0.2", "sympy==1.14.0",
]  # fmt: skip
# From Debian: R, its recommended and common packages, IRkernel; the JDK.
APT_PACKAGES = [
    "r-base-core", "r-recommended", "r-cran-irkernel", "r-cran-ggplot2", "r-cran-dplyr", "r-cran-tidyr",
    "r-cran-readr", "r-cran-stringr", "r-cran-lubridate", "r-cran-jsonlite", "r-cran-data.table",
    "default-jdk-headless",
]  # fmt: skip
# Where the package lives in the image: on the server's PYTHONPATH only, not on the kernels'.
INTERPRETER_DIR = "/usr/local/lib/hutch/interpreter"
# The Java kernel's classes, compiled from ``hutch/interpreter/java/*.java`` at the build.
JAVA_CLASSES = f"{INTERPRETER_DIR}/hutch/interpreter/java/classes"
PORT = 49999
START_CMD = f"PYTHONPATH={INTERPRETER_DIR} exec python3 -m hutch.interpreter --host 0.0.0.0 --port {PORT}"
# As in E2B's template, the server and its kernels run as root (commands still default to ``user``).
START_USER = "root"
READY_CMD = f"curl -sf -o /dev/null http://127.0.0.1:{PORT}/health"
_SOURCE = Path(__file__).resolve().parent.parent / "interpreter"
_WARM_MATPLOTLIB = (
    "import matplotlib; matplotlib.use('Agg'); import matplotlib.pyplot as plt; "
    "plt.plot([1, 2]); plt.title('warm'); plt.savefig('/dev/null', format='png')"
)


def rootfs_path(cache_dir: Path) -> Path:
    """Where the image this code builds lives: a directory per ``fingerprint``, so that nodes sharing the
    cache with another version of this code never rebuild (nor remove) each other's image."""
    return Path(cache_dir) / "templates" / TEMPLATE_ID / fingerprint()[:16] / "rootfs"


def packages_path(cache_dir: Path) -> Path:
    """Where the packages stage lives: a directory per ``packages_fingerprint``."""
    return Path(cache_dir) / "templates" / TEMPLATE_ID / f"packages-{packages_fingerprint()[:16]}" / "rootfs"


def packages_fingerprint() -> str:
    """What the packages stage is made of: the base's recipe, the package lists and the code that installs
    them."""
    parts = [base.fingerprint(), *APT_PACKAGES, "", *PACKAGES, "", inspect.getsource(build_packages)]
    recipe = "\n".join(parts)
    return hashlib.sha256(recipe.encode()).hexdigest()


def fingerprint() -> str:
    """What the image is made of here: the packages stage and the interpreter's sources."""
    digest = hashlib.sha256(packages_fingerprint().encode())
    for path in sorted(_SOURCE.rglob("*")):
        if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc":
            digest.update(path.relative_to(_SOURCE).as_posix().encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def build(cache_dir: Path, *, log: Callable[[str], None] = print, force: bool = False) -> Path:
    """Build the template's root filesystem unless a cached one has the same ``fingerprint`` (the base and
    the packages stage first, if needed)."""
    packages = build_packages(cache_dir, log=log, force=force)

    def make(partial: Path) -> None:
        log(f"building the {TEMPLATE_ID} template into {rootfs_path(cache_dir)}")
        run_logged(["cp", "-al", str(packages), str(partial)], log)
        with ExitStack() as mounts:
            _mount_for_chroot(partial, mounts)
            _install_package(partial)
            run_logged(["chroot", str(partial), "python3", "-m", "compileall", "-q", INTERPRETER_DIR], log)
            java = sorted(p.relative_to(_SOURCE).as_posix() for p in _SOURCE.rglob("*.java"))
            if java:
                sources = [f"{INTERPRETER_DIR}/hutch/interpreter/{name}" for name in java]
                run_logged(["chroot", str(partial), "javac", "-d", JAVA_CLASSES, *sources], log)

    return build_once(rootfs_path(cache_dir), fingerprint(), make, force=force)


def build_packages(cache_dir: Path, *, log: Callable[[str], None] = print, force: bool = False) -> Path:
    """The packages stage, built unless cached (the base first, if needed); logs how long it took and its
    size."""

    def make(partial: Path) -> None:
        source = base.build(cache_dir, log=log)
        log(f"building the packages of {TEMPLATE_ID} into {packages_path(cache_dir)} (apt and pip, minutes)")
        started = time.monotonic()
        run_logged(["cp", "-a", "--reflink=auto", str(source), str(partial)], log)
        with ExitStack() as mounts:
            _mount_for_chroot(partial, mounts)
            apt = ["chroot", str(partial), "env", "DEBIAN_FRONTEND=noninteractive", "apt-get", "-q", "-y"]
            run_logged([*apt, "update"], log)
            run_logged([*apt, "install", "--no-install-recommends", *APT_PACKAGES], log)
            run_logged([*apt, "clean"], log)
            run_logged(["chroot", str(partial), "python3", "-m", "pip", "install", "--no-cache-dir",
                  "--disable-pip-version-check", "--root-user-action=ignore", *PACKAGES], log)  # fmt: skip
            for user, home in ((START_USER, "/root"), ("user", "/home/user")):  # the kernels', and commands'
                run_logged(["chroot", f"--userspec={user}:{user}", str(partial), "env", f"HOME={home}",
                      "python3", "-c", _WARM_MATPLOTLIB], log)  # fmt: skip
        with Root(partial) as tree:
            tree.remove("var/lib/apt/lists")
        size = sum(entry.stat(follow_symlinks=False).st_size for entry in partial.rglob("*"))
        log(f"the packages of {TEMPLATE_ID}: {size / 2**30:.2f} GiB in {time.monotonic() - started:.0f} s")

    return build_once(packages_path(cache_dir), packages_fingerprint(), make, force=force)


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


if __name__ == "__main__":
    print(build(Path(sys.argv[1] if len(sys.argv) > 1 else "/var/cache/hutch"), force="--force" in sys.argv))
