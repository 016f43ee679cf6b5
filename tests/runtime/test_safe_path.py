"""``safe_path`` resolves every path inside its root, with the kernel's ``openat2`` and with the walk that
stands in for it, and never writes, reads, removes or lists anything outside: links at every component,
absolute links, ``..``, and a directory swapped for a link between calls and during them."""

from __future__ import annotations

import os
import stat
import threading
from pathlib import Path

import pytest

from hutch.runtime import safe_path
from hutch.runtime.safe_path import Root, UnsafePath, copy_tree
from hutch.templates import envd_python
from hutch.templates.oci_image import _drop_device_nodes

SWAPS = 2000  # directory/link swaps a racing thread makes at most
WRITES = 300  # writes made while it swaps


@pytest.fixture(params=["kernel", "walk"])
def resolver(request, monkeypatch) -> str:
    """Each test runs with ``openat2`` and with the per-component walk."""
    monkeypatch.setattr(safe_path, "kernel_resolves", None if request.param == "kernel" else False)
    if request.param == "kernel" and not safe_path._has_openat2():
        pytest.skip("this kernel has no openat2")
    return request.param


@pytest.fixture()
def host(tmp_path) -> Path:
    """A host directory outside the root with a canary file, which must never change."""
    outside = tmp_path / "host"
    outside.mkdir()
    (outside / "canary").write_text("host\n")
    return outside


@pytest.fixture()
def root(tmp_path) -> Path:
    inside = tmp_path / "root"
    (inside / "etc").mkdir(parents=True)
    return inside


def _unchanged(host: Path) -> None:
    assert sorted(p.name for p in host.iterdir()) == ["canary"]
    assert (host / "canary").read_text() == "host\n"


def test_the_kernel_path_is_openat2(resolver) -> None:
    assert safe_path._has_openat2() is (resolver == "kernel")


@pytest.mark.parametrize("bad", ["/etc/hosts", "../host/canary", "etc/../../host", "etc/\0hosts"])
def test_a_path_that_is_not_plainly_inside_is_refused(resolver, root, bad) -> None:
    with Root(root) as tree, pytest.raises(UnsafePath):
        tree.write_file(bad, "x")


@pytest.mark.parametrize("depth", [0, 1, 2, 3])
@pytest.mark.parametrize("absolute", [True, False])
def test_a_link_at_any_component_stays_inside(resolver, root, host, depth, absolute) -> None:
    """``a/b/c/file`` with one of its components a link to the host directory: a write lands inside the
    root (where the link resolves to there) or fails, never in the host's directory."""
    names = ["a", "b", "c", "file"]
    parent = root.joinpath(*names[:depth])
    parent.mkdir(parents=True, exist_ok=True)
    target = str(host) if absolute else os.path.relpath(host, parent)
    (parent / names[depth]).symlink_to(target)
    with Root(root) as tree:
        try:
            tree.write_file("/".join(names), "tenant\n")
        except OSError:
            pass
        with pytest.raises(OSError):
            tree.read_text(f"{'/'.join(names[: depth + 1])}/canary", 100)
    _unchanged(host)


def test_a_link_is_replaced_not_written_through(resolver, root, host) -> None:
    (root / "etc" / "hosts").symlink_to(host / "canary")
    (root / "etc" / "hostname").symlink_to(host / "new")
    with Root(root) as tree:
        tree.write_file("etc/hosts", "127.0.0.1 localhost\n")
        tree.write_file("etc/hostname", "sandbox\n")
    assert (root / "etc" / "hosts").read_text() == "127.0.0.1 localhost\n"
    assert not (root / "etc" / "hosts").is_symlink()
    assert (root / "etc" / "hostname").read_text() == "sandbox\n"
    _unchanged(host)


def test_an_absolute_link_resolves_from_the_root(resolver, root, host) -> None:
    """``/etc`` a link to ``/usr/etc``: the file goes to the root's ``usr/etc``."""
    (root / "usr" / "etc").mkdir(parents=True)
    (root / "etc").rmdir()
    (root / "etc").symlink_to("/usr/etc")
    (root / "up").symlink_to("../../../../../../..")
    with Root(root) as tree:
        tree.write_file("etc/hosts", "inside\n")
        tree.write_file("up/etc/resolv.conf", "inside\n")
        assert tree.read_text("up/up/etc/hosts", 100) == "inside\n"
    assert (root / "usr" / "etc" / "hosts").read_text() == "inside\n"
    assert (root / "usr" / "etc" / "resolv.conf").read_text() == "inside\n"
    _unchanged(host)


def test_a_link_to_a_host_file_is_not_read(resolver, root, host) -> None:
    (root / "etc" / "passwd").symlink_to(host / "canary")
    with Root(root) as tree, pytest.raises(FileNotFoundError):
        tree.read_text("etc/passwd", 100)


def test_reads_are_bounded_and_take_regular_files_only(resolver, root) -> None:
    (root / "big").write_bytes(b"x" * 101)
    os.mkfifo(root / "fifo")
    with Root(root) as tree:
        assert tree.read_bytes("big", 101) == b"x" * 101
        with pytest.raises(OSError, match="larger than"):
            tree.read_bytes("big", 100)
        with pytest.raises(OSError, match="not a regular file"):
            tree.read_bytes("fifo", 100)  # would block, were it opened for reading as it is


def test_a_directory_is_made_in_place_of_a_link(resolver, root, host) -> None:
    (root / "tmp").symlink_to(host)
    (root / "file").write_text("x")
    with Root(root) as tree:
        tree.ensure_directory("tmp", 0o1777)
        tree.ensure_directory("file", 0o755)
        tree.ensure_directory("tmp", 0o700)  # a real directory stays as it is
    assert stat.S_ISDIR(os.lstat(root / "tmp").st_mode)
    assert stat.S_IMODE(os.lstat(root / "tmp").st_mode) == 0o1777
    assert (root / "file").is_dir()
    _unchanged(host)


def test_a_file_replaces_a_directory(resolver, root) -> None:
    (root / "etc" / "hosts" / "deep").mkdir(parents=True)
    with Root(root) as tree:
        tree.write_file("etc/hosts", "x\n", 0o600)
    assert (root / "etc" / "hosts").read_text() == "x\n"
    assert stat.S_IMODE((root / "etc" / "hosts").stat().st_mode) == 0o600


def test_remove_takes_the_link_not_its_target(resolver, root, host) -> None:
    (root / "etc" / "linked").symlink_to(host)
    (root / "tree" / "sub").mkdir(parents=True)
    (root / "tree" / "sub" / "host").symlink_to(host)
    with Root(root) as tree:
        tree.remove("etc/linked")
        tree.remove("tree")
        tree.remove("missing/entirely")
    assert not (root / "etc" / "linked").exists()
    assert not (root / "tree").exists()
    _unchanged(host)


def test_walk_does_not_follow_links(resolver, root, host) -> None:
    (root / "etc" / "host").symlink_to(host)
    with Root(root) as tree:
        seen = {(directory, name) for directory, dirs, files, _fd in tree.walk() for name in dirs + files}
    assert ("./etc", "host") in seen
    assert not any("canary" in name for _directory, name in seen)


def test_a_directory_swapped_for_a_link_between_calls(resolver, root, host) -> None:
    with Root(root) as tree:
        tree.write_file("etc/hosts", "first\n")
        (root / "etc" / "hosts").unlink()
        (root / "etc").rmdir()
        (root / "etc").symlink_to(host)
        with pytest.raises(FileNotFoundError):
            tree.write_file("etc/hosts", "second\n")
        tree.remove("etc/hosts")
        tree.ensure_directory("etc", 0o755)
        tree.write_file("etc/hosts", "third\n")
    assert (root / "etc" / "hosts").read_text() == "third\n"
    _unchanged(host)


def test_a_directory_swapped_for_a_link_while_writing(resolver, root, host) -> None:
    """A racing thread keeps swapping ``etc`` between a directory and a link to the host directory while
    the host writes ``etc/hosts``: every write lands in the root or fails."""
    done = threading.Event()

    def swap() -> None:
        for count in range(SWAPS):
            if done.is_set():
                return
            try:
                os.rename(root / "etc", root / f"etc.{count}")
                os.symlink(host, root / "etc")
                os.unlink(root / "etc")
                os.rename(root / f"etc.{count}", root / "etc")
            except OSError:
                pass

    swapper = threading.Thread(target=swap)
    swapper.start()
    try:
        with Root(root) as tree:
            for _ in range(WRITES):
                try:
                    tree.write_file("etc/hosts", "inside\n")
                except OSError:
                    pass
    finally:
        done.set()
        swapper.join(timeout=30)
    assert not swapper.is_alive()
    _unchanged(host)


async def test_copy_tree_copies_links_as_links(tmp_path, host) -> None:
    source = tmp_path / "source"
    (source / "dir").mkdir(parents=True)
    (source / "dir" / "file").write_text("data")
    (source / "host").symlink_to(host)
    (source / "canary").symlink_to(host / "canary")
    await copy_tree(source, tmp_path / "copy")
    assert (tmp_path / "copy" / "dir" / "file").read_text() == "data"
    assert os.readlink(tmp_path / "copy" / "host") == str(host)
    assert os.readlink(tmp_path / "copy" / "canary") == str(host / "canary")
    _unchanged(host)


def test_device_nodes_are_dropped_inside_the_image_only(root, tmp_path) -> None:
    """An image's device nodes go; a host device node its link leads to stays."""
    host_devices = tmp_path / "host-devices"
    host_devices.mkdir()
    os.mknod(host_devices / "null", stat.S_IFCHR | 0o600, os.makedev(1, 3))
    (root / "dev").mkdir()
    os.mknod(root / "dev" / "null", stat.S_IFCHR | 0o600, os.makedev(1, 3))
    os.mknod(root / "dev" / "loop", stat.S_IFBLK | 0o600, os.makedev(7, 0))
    (root / "dev" / "host").symlink_to(host_devices)
    (root / "etc" / "host").symlink_to(host_devices / "null")
    _drop_device_nodes(root, lambda line: None)
    assert sorted(os.listdir(root / "dev")) == ["host"]
    assert (root / "etc" / "host").is_symlink()
    assert stat.S_ISCHR(os.lstat(host_devices / "null").st_mode)


def _package(name: str) -> str:
    return f"Package: {name}\nStatus: install ok installed\nArchitecture: amd64\nDepends: libc6\n"


def test_the_envd_python_copies_nothing_from_outside_the_image(tmp_path, host) -> None:
    """An image whose package files link out of it (absolutely, and with ``..`` past its top): what is
    copied is the image's own, never the host's file."""
    image = tmp_path / "image"
    info = image / "var/lib/dpkg/info"
    info.mkdir(parents=True)
    names = ("python3.11-minimal", "libpython3.11-minimal", "libpython3.11-stdlib", "libc6")
    (image / "var/lib/dpkg/status").write_text("\n".join(_package(name) for name in names))
    listed = {
        "python3.11-minimal": ["/usr", "/usr/bin", "/usr/bin/python3.11"],
        "libpython3.11-minimal": ["/usr/lib", "/usr/lib/python3.11", "/usr/lib/python3.11/os.py"],
        "libpython3.11-stdlib": ["/usr/lib/python3.11/host-dir"],
        "libc6": ["/lib64", "/lib64/ld-linux-x86-64.so.2"],
    }
    for name, paths in listed.items():
        (info / f"{name}:amd64.list").write_text("\n".join(paths) + "\n")
    (image / "usr/lib/python3.11").mkdir(parents=True)
    (image / "usr/bin").mkdir(parents=True)
    (image / "lib64").mkdir()
    (image / "lib64/ld-linux-x86-64.so.2").write_text("loader")
    (image / "usr/bin/python3.11").symlink_to(host / "canary")
    (image / "usr/lib/python3.11/os.py").symlink_to("../../../../../../../../" + str(host / "canary"))
    (image / "usr/lib/python3.11/host-dir").symlink_to(host)
    built = envd_python.build(tmp_path / "cache", image)
    copied = [path for path in built.rglob("*") if path.is_file() and not path.is_symlink()]
    assert [path.read_text() for path in copied] == ["loader"]
    _unchanged(host)


def test_the_envd_python_refuses_a_database_that_is_no_file(tmp_path) -> None:
    """A dpkg database that is a FIFO is refused at once rather than read (a read would block)."""
    image = tmp_path / "image"
    (image / "var/lib/dpkg").mkdir(parents=True)
    os.mkfifo(image / "var/lib/dpkg/status")
    with pytest.raises(OSError, match="not a regular file"):
        envd_python.path(tmp_path / "cache", image)
