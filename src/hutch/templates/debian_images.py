"""Debian-family image names (``debian:bookworm-slim``, ``python:3.11``…) built locally with mmdebstrap
from the Debian archive, instead of pulled from a registry.

| name | built as |
|---|---|
| ``debian``, ``debian:latest``, ``debian:stable``, ``debian:trixie``, ``debian:13`` | Debian 13 minbase |
| ``debian:oldstable``, ``debian:bookworm``, ``debian:12`` | Debian 12 minbase |
| any of these with ``-slim`` | the same without documentation, man pages and locales |
| ``python:3.11`` (``-slim``, ``-bookworm``…) | Debian 12 + Python 3.11, pip, venv |
| ``python:3.13``, ``python:3``, ``python:latest`` (``-slim``…) | Debian 13 + Python 3.13, pip, venv |

Every such image also gets ``sudo`` (the default user ``user`` has passwordless sudo, as in E2B's images)
and ``ca-certificates``; in the Python images ``pip`` may install system-wide, as in Docker's. Other names
(other Python versions, other distributions) are left to the registry path. Images are cached under
``<cache_dir>/images/debian/<suite>[-slim][-python]`` and rebuilt when their recipe changes.
"""

from __future__ import annotations

import hashlib
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ..errors import BackendUnavailable
from .commands import run_logged

SUITES = {"bookworm": "3.11", "trixie": "3.13"}
_ALIASES = {"12": "bookworm", "oldstable": "bookworm", "13": "trixie", "stable": "trixie", "latest": "trixie"}
_SLIM_EXCLUDES = ["/usr/share/doc/*", "/usr/share/man/*", "/usr/share/info/*", "/usr/share/locale/*"]
_COMMON = ["sudo", "ca-certificates"]
_PYTHON = ["python3", "python3-pip", "python3-venv", "python-is-python3"]
_HOOKS = [
    'rm -f "$1"/usr/lib/python3*/EXTERNALLY-MANAGED',
    'echo "127.0.0.1 localhost" > "$1/etc/hosts"',
    'rm -rf "$1"/var/cache/apt/archives/*.deb "$1"/var/lib/apt/lists/*',
]


@dataclass(frozen=True)
class DebianImage:
    suite: str
    slim: bool = False
    python: bool = False

    @property
    def name(self) -> str:
        return self.suite + ("-slim" if self.slim else "") + ("-python" if self.python else "")

    @property
    def packages(self) -> list[str]:
        return _COMMON + (_PYTHON if self.python else [])

    def mirrors(self) -> list[str]:
        return [
            f"deb http://deb.debian.org/debian {self.suite} main",
            f"deb http://deb.debian.org/debian {self.suite}-updates main",
            f"deb http://deb.debian.org/debian-security {self.suite}-security main",
        ]

    def command(self, target: Path) -> list[str]:
        excludes = [f"--dpkgopt=path-exclude={pattern}" for pattern in _SLIM_EXCLUDES] if self.slim else []
        return [
            "mmdebstrap",
            "--variant=minbase",
            "--mode=root",
            "--format=directory",
            f"--include={','.join(self.packages)}",
            *excludes,
            *[f"--customize-hook={hook}" for hook in _HOOKS],
            self.suite,
            str(target),
            *self.mirrors(),
        ]

    def fingerprint(self) -> str:
        return hashlib.sha256("\n".join(self.command(Path("/"))).encode()).hexdigest()


def parse(reference: str) -> DebianImage | None:
    """The Debian image a name stands for, or None when the name is not one this module builds."""
    name, _, tag = _strip_registry(reference).partition(":")
    tag = tag or "latest"
    if name == "debian":
        slim = tag.endswith("-slim") or tag == "slim"
        suite = tag.removesuffix("-slim").removesuffix("slim") or "latest"
        suite = _ALIASES.get(suite, suite)
        return DebianImage(suite, slim) if suite in SUITES else None
    if name == "python":
        return _python(tag)
    return None


def _python(tag: str) -> DebianImage | None:
    version, *variants = tag.split("-")
    slim = "slim" in variants
    suites = [variant for variant in variants if variant != "slim"]
    if version in ("3", "latest", "slim"):
        version = SUITES["trixie"]
    matching = [suite for suite, python in SUITES.items() if python == version]
    if not matching or len(suites) > 1 or (suites and suites[0] not in matching):
        return None
    return DebianImage(matching[0], slim, python=True)


def _strip_registry(reference: str) -> str:
    for prefix in ("docker.io/library/", "docker.io/", "library/"):
        if reference.startswith(prefix):
            return reference[len(prefix) :]
    return reference


def rootfs_path(cache_dir: Path, image: DebianImage) -> Path:
    return Path(cache_dir) / "images" / "debian" / image.name / "rootfs"


def build(image: DebianImage, cache_dir: Path, *, log: Callable[[str], None] = print) -> Path:
    """The image's root filesystem, built with mmdebstrap unless cached with the same recipe."""
    target = rootfs_path(cache_dir, image)
    stamp = target.with_name("fingerprint")
    if target.is_dir() and stamp.is_file() and stamp.read_text() == image.fingerprint():
        return target
    if shutil.which("mmdebstrap") is None:
        raise BackendUnavailable("mmdebstrap is not installed: apt-get install mmdebstrap")
    partial = target.with_name("rootfs.partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.parent.mkdir(parents=True, exist_ok=True)
    log(f"building {image.name} from the Debian archive (mmdebstrap)")
    run_logged(image.command(partial), log)
    if target.exists():
        shutil.rmtree(target)
    partial.rename(target)
    stamp.write_text(image.fingerprint())
    return target
