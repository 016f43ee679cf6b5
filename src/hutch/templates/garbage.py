"""Garbage collection of the template cache: the layers and pulled images that nothing refers to.

Several installations (data directories, each with its own catalog) may share one cache directory, so each
marks what its builds use: ``<cache_dir>/users/<installation>/`` holds a file per layer or image of its
templates (``layer-<id>``, ``image-<bundle>``) and ``data_dir``, the data directory it stands for. An
installation collects only what it marked: an entry that none of its templates, builds or sandboxes uses
(a sandbox it keeps state for, in ``<data_dir>/sandboxes/<id>/sandbox.json``, or any mounted overlay) loses
its mark, and is deleted when no other installation whose data directory still exists marks it. What no
installation marked (a layer of a build still running, of a snapshot) is never deleted here. Run at the
node's start and after a template is deleted, while no build of the installation runs; a cluster's node,
whose catalog rows other processes write, runs it now and then and spares what it marked lately.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from . import layers

_MOUNTS = Path("/proc/self/mountinfo")
_DATA_DIR = "data_dir"


@dataclass(frozen=True)
class Collected:
    """How many layers and images were deleted."""

    layers: int
    images: int


def mark(cache_dir: Path, data_dir: Path, rootfs: str) -> None:
    """Record that the installation of ``data_dir`` uses the layers and images of ``rootfs``."""
    own = _users(cache_dir) / _installation(data_dir)
    own.mkdir(mode=0o700, parents=True, exist_ok=True)
    (own / _DATA_DIR).write_text(str(Path(data_dir).resolve()))
    for path in layers.split(rootfs):
        name = _marker(Path(cache_dir), path)
        if name is not None:
            (own / name).touch()


def collect(cache_dir: Path, data_dir: Path, referenced: Iterable[str], *, min_age_s: float = 0) -> Collected:
    """Delete what the installation of ``data_dir`` marked and neither ``referenced`` (root filesystems,
    ``:``-joined layer chains) nor its sandboxes use, unless another installation marked it too, or it
    was marked less than ``min_age_s`` ago (its catalog row may be on the way)."""
    cache_dir = Path(cache_dir)
    marked_before = time.time() - min_age_s
    own = _users(cache_dir) / _installation(data_dir)
    if not own.is_dir():
        return Collected(0, 0)
    chains = [*referenced, *_sandbox_chains(Path(data_dir)), *_mounted_chains()]
    in_use = {name for chain in chains for path in layers.split(chain) if (name := _marker(cache_dir, path))}
    others = [user for user in _users(cache_dir).iterdir() if user != own and _alive(user)]
    removed = {"layer": 0, "image": 0}
    for marker in own.iterdir():
        if marker.name == _DATA_DIR or marker.name in in_use or _marked_since(marker, marked_before):
            continue
        marker.unlink()
        if any((other / marker.name).exists() for other in others):
            continue
        kind, _, name = marker.name.partition("-")
        target = _layers(cache_dir) / name if kind == "layer" else _images(cache_dir) / name
        shutil.rmtree(target, ignore_errors=True)
        removed[kind] += 1
    keys = _layers(cache_dir).parent
    for link in keys.iterdir() if keys.is_dir() else ():
        if link.is_symlink() and not link.exists():
            link.unlink(missing_ok=True)
    return Collected(layers=removed["layer"], images=removed["image"])


def _marked_since(marker: Path, moment: float) -> bool:
    try:
        return marker.stat().st_mtime > moment
    except OSError:
        return True


def _users(cache_dir: Path) -> Path:
    return Path(cache_dir) / "users"


def _layers(cache_dir: Path) -> Path:
    return cache_dir / "layers" / "data"


def _images(cache_dir: Path) -> Path:
    return cache_dir / "images" / "oci"


def _installation(data_dir: Path) -> str:
    return hashlib.sha256(str(Path(data_dir).resolve()).encode()).hexdigest()[:16]


def _alive(user: Path) -> bool:
    """Whether the installation that marked ``user`` still has its data directory."""
    try:
        return Path((user / _DATA_DIR).read_text()).is_dir()
    except OSError:
        return False


def _marker(cache_dir: Path, path: Path) -> str | None:
    """The marker's name for a layer or image directory of ``cache_dir`` (None for anything else, and for a
    path that went away while it was resolved: a mount's ``/proc/<pid>/fd/<n>`` whose descriptor closed)."""
    try:
        resolved = path.resolve()
    except OSError:
        return None
    if resolved.parent == _layers(cache_dir).resolve() and not resolved.name.startswith("."):
        return f"layer-{resolved.name}"
    if resolved.name == "rootfs" and resolved.parent.parent == _images(cache_dir).resolve():
        return f"image-{resolved.parent.name}"
    return None


def _sandbox_chains(data_dir: Path) -> list[str]:
    """The root filesystems of the sandboxes the runtime keeps state for."""
    chains = []
    for state_file in (data_dir / "sandboxes").glob("*/sandbox.json"):
        try:
            state = json.loads(state_file.read_text())
        except (OSError, ValueError):
            continue
        spec = state.get("spec") or {}
        chains += [str(state.get("rootfs") or ""), str((spec.get("template") or {}).get("rootfs") or "")]
    return chains


def _mounted_chains() -> list[str]:
    """The lower directories of the overlays mounted in this process's mount namespace."""
    chains = []
    for line in _MOUNTS.read_text().splitlines():
        _, _, after = line.partition(" - ")
        fields = after.split(" ")
        if len(fields) < 3 or fields[0] != "overlay":
            continue
        for option in fields[2].split(","):
            name, _, value = option.partition("=")
            if name in ("lowerdir", "lowerdir+"):
                chains.append(value.replace("\\040", " "))
    return chains
