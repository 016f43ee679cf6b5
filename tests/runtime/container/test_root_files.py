"""What the host writes into a sandbox's root stays inside it, whatever links the root holds: a link to a
host file is replaced, never written through."""

from __future__ import annotations

import stat

import pytest

from hutch.runtime.container.root_files import real_tmp, write_identity, write_resolv_conf


@pytest.mark.parametrize("linked", ["files", "etc"])
def test_identity_and_resolv_conf_never_write_through_links(tmp_path, host_files, linked):
    """A root whose ``/etc/hosts``, ``/etc/hostname`` and ``/etc/resolv.conf`` (or ``/etc`` itself) are links
    to host files: the host writes inside the root or not at all."""
    root = tmp_path / "root"
    if linked == "etc":
        root.mkdir()
        (root / "etc").symlink_to(host_files.directory)
    else:
        (root / "etc").mkdir(parents=True)
        for name in ("hosts", "hostname", "resolv.conf"):
            (root / "etc" / name).symlink_to(host_files.directory / name)
    write_identity(root, "sandbox-id")
    write_resolv_conf(root, ("192.0.2.53",))
    host_files.assert_unchanged()
    if linked == "files":
        assert (root / "etc" / "hostname").read_text() == "sandbox-id\n"
        assert "sandbox-id" in (root / "etc" / "hosts").read_text()
        assert (root / "etc" / "resolv.conf").read_text() == "nameserver 192.0.2.53\n"


def test_identity_names_the_sandbox(tmp_path):
    (tmp_path / "etc").mkdir()
    write_identity(tmp_path, "sandbox-id")
    assert (tmp_path / "etc" / "hostname").read_text() == "sandbox-id\n"
    assert (tmp_path / "etc" / "hosts").read_text().splitlines() == [
        "127.0.0.1\tlocalhost",
        "::1\tlocalhost",
        "127.0.1.1\tsandbox-id",
    ]


@pytest.mark.parametrize("engine", ["crun", "gvisor"])
def test_a_linked_tmp_becomes_a_real_directory_under_gvisor(sandbox_record, host_files, engine):
    """runsc binds ``/tmp`` from the root by path and would follow a link there: under gVisor the link is
    replaced by a directory of the root; crun mounts nothing from there, and the root is left as it is."""
    sandbox = sandbox_record(engine)
    sandbox.overlay.merged.mkdir()
    tmp = sandbox.overlay.merged / "tmp"
    tmp.symlink_to(host_files.directory)
    real_tmp(sandbox)
    host_files.assert_unchanged()
    if engine == "crun":
        assert tmp.is_symlink()
        return
    assert not tmp.is_symlink() and tmp.is_dir()
    assert stat.S_IMODE(tmp.stat().st_mode) == 0o1777
    assert list(tmp.iterdir()) == []
