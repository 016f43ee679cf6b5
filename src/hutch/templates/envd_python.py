"""The Python that runs envd in every sandbox, whatever the template has: a self-contained directory built
from the base template's root filesystem and mounted read-only into each sandbox.

It holds the files of Debian's ``python3.X-minimal``, ``libpython3.X-minimal`` and ``libpython3.X-stdlib``
and of everything they depend on, as the base image's dpkg database lists them (``/etc``, ``/var`` and
``/usr/share`` left out), with the bytecode the image compiled for them. Symbolic links are resolved inside
the image: a link to a file becomes a relative link within the directory, so nothing in it points into the
sandbox's own file system. Three links at its top make its entry points independent of architecture and
version: ``ld.so`` (the dynamic loader), ``lib`` (the loader's library directory) and ``python3``. The
runtime starts envd as ``<dir>/ld.so --library-path <dir>/lib <dir>/python3 …``: the loader finds the
libraries without ``LD_LIBRARY_PATH``, and Python finds its standard library next to its executable, so
the processes envd starts inherit nothing of it. It is cached per base image (a digest of its dpkg status
file) under ``<cache_dir>/envd-runtime/``.
"""

from __future__ import annotations

import errno
import hashlib
import os
import re
import shutil
import stat
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path, PurePosixPath

from ..errors import BackendUnavailable
from ..runtime.safe_path import Root

PYTHON = "python3.11"
PACKAGES = (f"{PYTHON}-minimal", f"lib{PYTHON}-minimal", f"lib{PYTHON}-stdlib")
LEFT_OUT = ("etc", "var", "usr/share")
LAYOUT = "1"  # the directory's layout; a change rebuilds every cached copy
MAX_LINKS = 40
STATUS = "var/lib/dpkg/status"
INFO = "var/lib/dpkg/info"
MAX_DATABASE = 64 * 1024 * 1024  # the most of a dpkg database file read


def path(cache_dir: Path, rootfs: Path) -> Path:
    """Where the runtime built from ``rootfs`` lives."""
    with Root(rootfs) as tree:
        status = tree.read_bytes(STATUS, MAX_DATABASE)
    digest = hashlib.sha256(LAYOUT.encode() + status).hexdigest()[:16]
    return Path(cache_dir) / "envd-runtime" / digest


def build(cache_dir: Path, rootfs: Path) -> Path:
    """The runtime for ``rootfs``, built unless cached (into a partial directory, then renamed)."""
    target = path(cache_dir, rootfs)
    if target.exists():
        return target
    partial = target.with_name(f"{target.name}.partial-{os.getpid()}")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    try:
        with Root(rootfs) as tree:
            _populate(tree, partial)
        partial.rename(target)
    except OSError:
        if not target.exists():
            raise  # else another build finished first
    finally:
        shutil.rmtree(partial, ignore_errors=True)
    return target


def _populate(tree: Root, out: Path) -> None:
    """Copy the packages' files into ``out`` and add the links to its entry points."""
    installed = _installed(tree.read_text(STATUS, MAX_DATABASE))
    missing = [package for package in PACKAGES if package not in installed]
    if missing:
        raise BackendUnavailable(f"the base image lacks {', '.join(missing)}: rebuild it")
    for package in sorted(_closure(installed, PACKAGES)):
        for entry in _listed(tree, package, installed[package]["Architecture"]):
            _copy(tree, entry, out)
    libc = _listed(tree, "libc6", installed["libc6"]["Architecture"])
    loader = next(_inside(tree, p) for p in libc if PurePosixPath(p).name.startswith("ld-linux"))
    _link(out / "ld.so", out / _rel(loader))
    _link(out / "lib", out / _rel(loader.parent))
    _link(out / "python3", out / "usr/bin" / PYTHON)


# -- the dpkg database ------------------------------------------------------------------------------


def _installed(status: str) -> dict[str, dict[str, str]]:
    """The installed packages' fields, by name; a virtual package maps to a package providing it."""
    packages: dict[str, dict[str, str]] = {}
    provided: dict[str, dict[str, str]] = {}
    for stanza in status.split("\n\n"):
        fields = dict(re.findall(r"^([\w-]+): ?(.*(?:\n .*)*)", stanza, re.M))
        if "Package" not in fields or not fields.get("Status", "").endswith(" installed"):
            continue
        packages[fields["Package"]] = fields
        for name in _names(fields.get("Provides", "")):
            provided.setdefault(name, fields)
    return {**provided, **packages}


def _names(relations: str) -> Iterator[str]:
    """The package names of a comma-separated relation field, without versions or architectures."""
    for relation in filter(None, (r.strip() for r in relations.split(","))):
        yield relation.split()[0].split(":")[0]


def _closure(installed: dict[str, dict[str, str]], roots: Iterable[str]) -> set[str]:
    """``roots`` and what they depend on, each alternative satisfied by its first installed choice."""
    seen: set[str] = set()
    todo = list(roots)
    while todo:
        fields = installed[todo.pop()]
        if fields["Package"] in seen:
            continue
        seen.add(fields["Package"])
        for relation in f"{fields.get('Pre-Depends', '')},{fields.get('Depends', '')}".split(","):
            choices = [next(_names(alt), "") for alt in relation.split("|")]
            todo.extend(next(([c] for c in choices if c in installed), []))
    return seen


def _listed(tree: Root, package: str, arch: str) -> list[str]:
    """The paths a package installed, from ``info/<package>[:<arch>].list``."""
    try:
        listing = tree.read_text(f"{INFO}/{package}:{arch}.list", MAX_DATABASE)
    except FileNotFoundError:
        listing = tree.read_text(f"{INFO}/{package}.list", MAX_DATABASE)
    return [line for line in listing.splitlines() if line not in ("", "/.")]


# -- copying out of the image -----------------------------------------------------------------------


def _inside(tree: Root, name: str, *, follow: bool = True) -> PurePosixPath:
    """``name`` with its symbolic links resolved as if ``tree`` were ``/`` (the last one only with
    ``follow``)."""
    done, todo, hops = PurePosixPath("/"), list(PurePosixPath(name).parts[1:]), 0
    while todo:
        part = todo.pop(0)
        if part == "..":
            done = done.parent
            continue
        here = _rel(done / part)
        if not _is(tree, here, stat.S_ISLNK) or (not todo and not follow):
            done = done / part
            continue
        hops += 1
        if hops > MAX_LINKS:
            raise OSError(errno.ELOOP, "too many symbolic links", name)
        target = PurePosixPath(tree.readlink(here))
        if target.is_absolute():
            done = PurePosixPath("/")
        todo[:0] = [p for p in target.parts if p not in ("/", ".")]
    return done


def _rel(name: PurePosixPath) -> str:
    return str(name.relative_to("/"))


def _is(tree: Root, name: str, kind: Callable[[int], bool]) -> bool:
    """Whether ``name`` in ``tree`` (a link as itself) is of ``kind`` (``stat.S_ISLNK``, ...)."""
    found = tree.lstat(name)
    return found is not None and kind(found.st_mode)


def _copy(tree: Root, name: str, out: Path) -> None:
    """One listed path: a directory, a file (with its bytecode) or a link to a file made relative."""
    where = _inside(tree, name, follow=False)
    if any(where.is_relative_to(f"/{part}") for part in LEFT_OUT) or (out / _rel(where)).is_symlink():
        return
    if _is(tree, _rel(where), stat.S_ISLNK):
        real = _inside(tree, name)
        if _is(tree, _rel(real), stat.S_ISREG):
            _copy_file(tree, PurePosixPath(_rel(real)), out / _rel(real))
            _link(out / _rel(where), out / _rel(real))
    elif _is(tree, _rel(where), stat.S_ISDIR):
        (out / _rel(where)).mkdir(parents=True, exist_ok=True)
    elif _is(tree, _rel(where), stat.S_ISREG):
        _copy_file(tree, PurePosixPath(_rel(where)), out / _rel(where))


def _copy_file(tree: Root, source: PurePosixPath, dest: Path) -> None:
    """A regular file of the image, with its permissions (no setuid or setgid bit) and times, and the
    bytecode compiled for it (which names the file's modification time)."""
    if dest.exists():
        return
    dest.parent.mkdir(parents=True, exist_ok=True)
    with os.fdopen(tree.open_file(source), "rb") as file, open(dest, "xb") as copy:
        shutil.copyfileobj(file, copy)
        found = os.fstat(file.fileno())
        os.fchmod(copy.fileno(), stat.S_IMODE(found.st_mode) & 0o1777)
    os.utime(dest, ns=(found.st_atime_ns, found.st_mtime_ns))
    if source.suffix == ".py":
        cache = source.parent / "__pycache__"
        try:
            compiled = tree.listdir(cache)
        except (FileNotFoundError, NotADirectoryError):
            return
        for name in sorted(compiled):
            if name.startswith(f"{source.stem}.") and name.endswith(".pyc"):
                _copy_file(tree, cache / name, dest.parent / "__pycache__" / name)


def _link(link: Path, target: Path) -> None:
    link.parent.mkdir(parents=True, exist_ok=True)
    link.symlink_to(os.path.relpath(target, link.parent))
