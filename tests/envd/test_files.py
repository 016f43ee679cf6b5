"""envd's filesystem through the sync SDK: ``files.*`` over ``/files`` and the ``filesystem`` RPCs."""

from __future__ import annotations

import contextlib
import gzip
import io
import os
import pwd
import stat
import subprocess
import tempfile
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from e2b import (
    FileNotFoundException,
    FileType,
    InvalidArgumentException,
    NotEnoughSpaceException,
    SandboxException,
)
from e2b.sandbox.filesystem.filesystem import WriteEntry

from tests.envd.host import group_of, make_file, owner, read_disk

# -- write / read ------------------------------------------------------------------------------------------


def test_write_and_read_text(sandbox, workdir, envd):
    path = os.path.join(workdir, "hello.txt")
    text = "héllo wörld ✓\nsecond line\n"
    info = sandbox.files.write(path, text)
    assert info.path == path
    assert info.name == "hello.txt"
    assert info.type == FileType.FILE
    assert read_disk(path) == text.encode("utf-8")
    assert sandbox.files.read(path) == text
    assert owner(path) == envd.user


def test_write_and_read_bytes(sandbox, workdir):
    path = os.path.join(workdir, "blob.bin")
    data = bytes(range(256)) * 64 + b"\x00\xff"
    sandbox.files.write(path, data)
    assert read_disk(path) == data
    got = sandbox.files.read(path, format="bytes")
    assert isinstance(got, bytearray)
    assert got == data


def test_empty_file(sandbox, workdir):
    path = os.path.join(workdir, "empty")
    sandbox.files.write(path, b"")
    assert os.path.getsize(path) == 0
    assert sandbox.files.read(path) == ""
    assert sandbox.files.read(path, format="bytes") == bytearray()


def test_read_stream(sandbox, workdir):
    path = os.path.join(workdir, "big.bin")
    data = os.urandom(3 * 1024 * 1024 + 17)
    make_file(path, data)
    with sandbox.files.read(path, format="stream") as stream:
        got = b"".join(stream)
    assert got == data


def test_write_binary_file_object(sandbox, workdir):
    path = os.path.join(workdir, "from-io.bin")
    data = os.urandom(600_000)
    sandbox.files.write(path, io.BytesIO(data))
    assert read_disk(path) == data


def test_write_text_file_object(sandbox, workdir):
    path = os.path.join(workdir, "from-text-io.txt")
    text = "ünïcode line\n" * 5000
    sandbox.files.write(path, io.StringIO(text))
    assert read_disk(path) == text.encode("utf-8")


def test_write_iterable_of_chunks(sandbox, workdir):
    path = os.path.join(workdir, "chunks.bin")
    chunks = [os.urandom(70_000) for _ in range(5)]
    sandbox.files.write(path, iter(chunks))
    assert read_disk(path) == b"".join(chunks)


def test_write_real_file(sandbox, workdir):
    data = os.urandom(300_000)
    with tempfile.TemporaryFile() as local:
        local.write(data)
        local.seek(0)
        path = os.path.join(workdir, "copied.bin")
        sandbox.files.write(path, local)
    assert read_disk(path) == data


def test_octet_stream_upload(sandbox, workdir, envd):
    path = os.path.join(workdir, "octet", "raw.bin")
    data = b"raw body \x00\x01\x02" * 1000
    info = sandbox.files.write(path, data, use_octet_stream=True)
    assert info.path == path
    assert info.name == "raw.bin"
    assert read_disk(path) == data
    assert owner(path) == envd.user
    assert owner(os.path.dirname(path)) == envd.user


def test_gzip_upload(sandbox, workdir):
    path = os.path.join(workdir, "gz", "upload.txt")
    data = b"compress me please " * 20_000
    info = sandbox.files.write(path, data, gzip=True)
    assert info.path == path
    assert read_disk(path) == data  # stored decompressed


def test_gzip_upload_streamed(sandbox, workdir):
    path = os.path.join(workdir, "gz-stream.bin")
    chunks = [os.urandom(50_000) for _ in range(4)]
    sandbox.files.write(path, iter(chunks), gzip=True)
    assert read_disk(path) == b"".join(chunks)


def test_gzip_download(sandbox, workdir, envd):
    path = os.path.join(workdir, "download.txt")
    data = b"the same line over and over\n" * 50_000
    make_file(path, data)
    assert sandbox.files.read(path, format="bytes", gzip=True) == data
    assert sandbox.files.read(path, gzip=True) == data.decode()
    with sandbox.files.read(path, format="stream", gzip=True) as stream:
        assert b"".join(stream) == data
    # What the SDK asked for really came compressed.
    with httpx.stream(
        "GET", f"{envd.url}/files", params={"path": path}, headers={"Accept-Encoding": "gzip"}
    ) as raw:
        assert raw.status_code == 200
        assert raw.headers["content-encoding"] == "gzip"
        body = b"".join(raw.iter_raw())
    assert len(body) < len(data) // 10
    assert gzip.decompress(body) == data


def test_plain_download_not_compressed(envd, workdir):
    path = os.path.join(workdir, "plain.txt")
    make_file(path, b"x" * 10_000)
    raw = httpx.get(f"{envd.url}/files", params={"path": path})
    assert raw.status_code == 200
    assert "content-encoding" not in raw.headers
    assert raw.content == b"x" * 10_000


def test_overwrite_truncates(sandbox, workdir):
    path = os.path.join(workdir, "over.txt")
    sandbox.files.write(path, "a much longer first version of the file")
    sandbox.files.write(path, "short")
    assert read_disk(path) == b"short"
    sandbox.files.write(path, b"octet", use_octet_stream=True)
    assert sandbox.files.read(path) == "octet"


def test_write_creates_parents_owned_by_user(sandbox, workdir, envd):
    path = os.path.join(workdir, "a", "b", "c", "deep.txt")
    sandbox.files.write(path, "deep")
    assert read_disk(path) == b"deep"
    for directory in ("a", "a/b", "a/b/c"):
        full = os.path.join(workdir, directory)
        assert owner(full) == envd.user, directory
        assert stat.S_IMODE(os.stat(full).st_mode) == 0o755
    assert owner(path) == envd.user
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o644


def test_write_as_root(sandbox, workdir):
    path = os.path.join(workdir, "rootdir", "root.txt")
    sandbox.files.write(path, "by root", user="root")
    assert owner(path) == "root"
    assert owner(os.path.dirname(path)) == "root"
    assert sandbox.files.read(path, user="root") == "by root"
    assert sandbox.files.get_info(path).owner == "root"


def test_overwrite_changes_owner_to_writer(sandbox, workdir, envd):
    path = os.path.join(workdir, "owned.txt")
    sandbox.files.write(path, "root first", user="root")
    assert owner(path) == "root"
    sandbox.files.write(path, "user second")
    assert owner(path) == envd.user
    assert read_disk(path) == b"user second"


def test_write_files_many(sandbox, workdir, envd):
    rel = os.path.basename(workdir)
    entries = []
    expected = {}
    for i in range(12):
        if i % 2:
            path = os.path.join(workdir, "abs", f"file-{i}.txt")
            shown = path
        else:
            shown = f"{rel}/rel/sub-{i}/file-{i}.txt"
            path = os.path.join(envd.home, shown)
        content = f"content {i} " * (i + 1)
        entries.append(WriteEntry(path=shown, data=content))
        expected[path] = content.encode()
    entries.append(WriteEntry(path=os.path.join(workdir, "bin.dat"), data=b"\x00\x01binary"))
    expected[os.path.join(workdir, "bin.dat")] = b"\x00\x01binary"

    infos = sandbox.files.write_files(entries)
    assert sorted(i.path for i in infos) == sorted(expected)
    for info in infos:
        assert info.name == os.path.basename(info.path)
        assert info.type == FileType.FILE
    for path, content in expected.items():
        assert read_disk(path) == content
        assert owner(path) == envd.user
    assert owner(os.path.join(workdir, "rel", "sub-0")) == envd.user


def test_write_files_unicode_names(sandbox, workdir):
    names = ["ünï cødé.txt", "with space and #hash.txt", "日本語.txt", "a+b&c=d%20e?.txt", "semi;colon's.txt"]
    infos = sandbox.files.write_files([WriteEntry(path=os.path.join(workdir, n), data=n) for n in names])
    assert sorted(i.name for i in infos) == sorted(names)
    for n in names:
        assert read_disk(os.path.join(workdir, n)) == n.encode()
        assert sandbox.files.read(os.path.join(workdir, n)) == n


def test_odd_names_single_file(sandbox, workdir):
    for name in ("a+b&c=d%20e?.txt", "ünï cødé.txt", "-leading dash"):
        path = os.path.join(workdir, name)
        assert sandbox.files.write(path, name).path == path
        assert sandbox.files.write(path, name.encode(), use_octet_stream=True).path == path
        assert sandbox.files.read(path) == name
        assert sandbox.files.get_info(path).name == name
    assert sorted(os.listdir(workdir)) == sorted(["a+b&c=d%20e?.txt", "ünï cødé.txt", "-leading dash"])


def test_write_files_duplicate_destination(sandbox, workdir):
    path = os.path.join(workdir, "dup.txt")
    with pytest.raises(InvalidArgumentException):
        sandbox.files.write_files([WriteEntry(path=path, data="one"), WriteEntry(path=path, data="two")])


def test_write_files_octet_stream(sandbox, workdir):
    entries = [WriteEntry(path=os.path.join(workdir, f"o{i}.bin"), data=bytes([i]) * 1000) for i in range(4)]
    infos = sandbox.files.write_files(entries, use_octet_stream=True)
    assert [i.path for i in infos] == [e["path"] for e in entries]
    for i in range(4):
        assert read_disk(os.path.join(workdir, f"o{i}.bin")) == bytes([i]) * 1000


def test_write_files_empty_list(sandbox):
    assert sandbox.files.write_files([]) == []


def test_write_to_directory_is_invalid(sandbox, workdir):
    os.mkdir(os.path.join(workdir, "adir"))
    with pytest.raises(InvalidArgumentException):
        sandbox.files.write(os.path.join(workdir, "adir"), "nope")
    with pytest.raises(InvalidArgumentException):
        sandbox.files.write(os.path.join(workdir, "adir"), b"nope", use_octet_stream=True)
    assert os.path.isdir(os.path.join(workdir, "adir"))


def test_write_below_a_file_is_invalid(sandbox, workdir):
    make_file(os.path.join(workdir, "plainfile"), b"x")
    with pytest.raises(InvalidArgumentException):
        sandbox.files.write(os.path.join(workdir, "plainfile", "child.txt"), "nope")


# -- metadata ----------------------------------------------------------------------------------------------


def test_metadata_round_trip(sandbox, workdir):
    path = os.path.join(workdir, "meta.txt")
    info = sandbox.files.write(path, "m", metadata={"Owner": "alice", "build-id": "42"})
    assert info.metadata == {"owner": "alice", "build-id": "42"}
    assert sandbox.files.get_info(path).metadata == {"owner": "alice", "build-id": "42"}
    listed = {e.name: e for e in sandbox.files.list(workdir)}
    assert listed["meta.txt"].metadata == {"owner": "alice", "build-id": "42"}

    # A rewrite replaces the whole set.
    info = sandbox.files.write(path, "m2", metadata={"stage": "two"})
    assert info.metadata == {"stage": "two"}
    assert sandbox.files.get_info(path).metadata == {"stage": "two"}

    # No metadata clears it.
    info = sandbox.files.write(path, "m3")
    assert info.metadata is None
    assert sandbox.files.get_info(path).metadata is None
    assert read_disk(path) == b"m3"


def test_metadata_octet_stream_and_many_files(sandbox, workdir):
    a, b = os.path.join(workdir, "ma.txt"), os.path.join(workdir, "mb.txt")
    sandbox.files.write(a, b"a", metadata={"k": "v"}, use_octet_stream=True)
    assert sandbox.files.get_info(a).metadata == {"k": "v"}
    infos = sandbox.files.write_files(
        [WriteEntry(path=a, data="a2"), WriteEntry(path=b, data="b2")], metadata={"batch": "1"}
    )
    assert [i.metadata for i in infos] == [{"batch": "1"}, {"batch": "1"}]
    assert sandbox.files.get_info(a).metadata == {"batch": "1"}
    assert sandbox.files.get_info(b).metadata == {"batch": "1"}


# -- list --------------------------------------------------------------------------------------------------


@pytest.fixture()
def tree(workdir):
    """workdir/{a.txt, sub/{b.txt, deeper/{c.txt}}, empty/}"""
    make_file(os.path.join(workdir, "a.txt"), b"12345")
    make_file(os.path.join(workdir, "sub", "b.txt"), b"bb")
    make_file(os.path.join(workdir, "sub", "deeper", "c.txt"), b"c")
    os.mkdir(os.path.join(workdir, "empty"))
    return workdir


def test_list_depth_1(sandbox, tree):
    entries = sandbox.files.list(tree)
    by_name = {e.name: e for e in entries}
    assert sorted(by_name) == ["a.txt", "empty", "sub"]
    assert by_name["a.txt"].type == FileType.FILE
    assert by_name["a.txt"].size == 5
    assert by_name["a.txt"].path == os.path.join(tree, "a.txt")
    assert by_name["sub"].type == FileType.DIR
    assert by_name["sub"].path == os.path.join(tree, "sub")
    assert by_name["empty"].type == FileType.DIR
    assert by_name["a.txt"].symlink_target is None


def test_list_depth_2(sandbox, tree):
    entries = sandbox.files.list(tree, depth=2)
    paths = sorted(os.path.relpath(e.path, tree) for e in entries)
    assert paths == ["a.txt", "empty", "sub", "sub/b.txt", "sub/deeper"]
    by_path = {os.path.relpath(e.path, tree): e for e in entries}
    assert by_path["sub/b.txt"].name == "b.txt"
    assert by_path["sub/b.txt"].size == 2
    assert by_path["sub/deeper"].type == FileType.DIR
    deep = sandbox.files.list(tree, depth=3)
    assert os.path.join(tree, "sub", "deeper", "c.txt") in {e.path for e in deep}


def test_list_symlinks(sandbox, tree):
    os.symlink(os.path.join(tree, "a.txt"), os.path.join(tree, "link-file"))
    os.symlink("sub", os.path.join(tree, "link-dir"))
    os.symlink(os.path.join(tree, "missing"), os.path.join(tree, "link-broken"))
    by_name = {e.name: e for e in sandbox.files.list(tree)}
    assert by_name["link-file"].type == FileType.SYMLINK
    assert by_name["link-file"].symlink_target == os.path.join(tree, "a.txt")
    assert by_name["link-file"].permissions.startswith("L")
    assert by_name["link-dir"].type == FileType.SYMLINK
    assert by_name["link-dir"].symlink_target == os.path.join(tree, "sub")
    assert by_name["link-broken"].type == FileType.SYMLINK
    assert by_name["a.txt"].symlink_target is None

    # A symlinked directory is followed; entries are shown under the path that was asked for.
    inside = sandbox.files.list(os.path.join(tree, "link-dir"))
    assert sorted(e.path for e in inside) == [
        os.path.join(tree, "link-dir", "b.txt"),
        os.path.join(tree, "link-dir", "deeper"),
    ]


def test_list_errors(sandbox, tree):
    with pytest.raises(FileNotFoundException):
        sandbox.files.list(os.path.join(tree, "nope"))
    with pytest.raises(InvalidArgumentException):
        sandbox.files.list(os.path.join(tree, "a.txt"))
    assert sandbox.files.list(os.path.join(tree, "empty")) == []


# -- exists / get_info -------------------------------------------------------------------------------------


def test_exists(sandbox, tree):
    assert sandbox.files.exists(os.path.join(tree, "a.txt")) is True
    assert sandbox.files.exists(os.path.join(tree, "sub")) is True
    assert sandbox.files.exists(os.path.join(tree, "nothing-here")) is False
    assert sandbox.files.exists(os.path.join(tree, "a.txt", "below-a-file")) is False


def test_get_info_file(sandbox, workdir, envd):
    path = os.path.join(workdir, "info.txt")
    before = datetime.now(UTC)
    sandbox.files.write(path, "0123456789")
    info = sandbox.files.get_info(path)
    assert info.name == "info.txt"
    assert info.path == path
    assert info.type == FileType.FILE
    assert info.size == 10
    assert info.mode == 0o644
    assert info.permissions == "-rw-r--r--"
    assert info.owner == envd.user
    assert info.group == group_of(envd.user)
    assert info.symlink_target is None
    assert info.metadata is None
    assert before - timedelta(seconds=2) <= info.modified_time <= datetime.now(UTC) + timedelta(seconds=2)
    mtime = os.stat(path).st_mtime
    assert abs(info.modified_time.timestamp() - mtime) < 0.001


def test_get_info_modes(sandbox, workdir):
    path = os.path.join(workdir, "modes")
    make_file(path, b"#!/bin/sh\n")
    cases = {
        0o751: "-rwxr-x--x",
        0o600: "-rw-------",
        0o4755: "urwxr-xr-x",
        0o2755: "grwxr-xr-x",
    }
    for mode, expected in cases.items():
        os.chmod(path, mode)
        info = sandbox.files.get_info(path)
        assert info.permissions == expected, oct(mode)
        assert info.mode == mode & 0o777, oct(mode)
    os.utime(path, (0, 1_000_000_000))
    assert sandbox.files.get_info(path).modified_time == datetime(2001, 9, 9, 1, 46, 40, tzinfo=UTC)


@pytest.fixture()
def spare_user():
    """A uid no user has yet, and a name to create a user for it with."""
    uid = 40000 + os.getpid() % 10000
    while True:
        try:
            pwd.getpwuid(uid)
        except KeyError:
            break
        uid += 1
    name = f"hutch-o{uid}"
    yield uid, name
    subprocess.run(["userdel", "-f", name], check=False, capture_output=True)


def test_owner_names_follow_new_users(sandbox, workdir, spare_user):
    uid, name = spare_user
    path = os.path.join(workdir, "orphan")
    make_file(path, b"o")
    os.chown(path, uid, uid)
    assert sandbox.files.get_info(path).owner == str(uid)
    subprocess.run(["useradd", "-u", str(uid), "-M", "-N", "-s", "/bin/false", name], check=True)
    assert sandbox.files.get_info(path).owner == name


def test_get_info_directory_and_symlink(sandbox, workdir):
    d = os.path.join(workdir, "d")
    os.mkdir(d, 0o755)
    os.chmod(d, 0o1777)
    info = sandbox.files.get_info(d)
    assert info.type == FileType.DIR
    assert info.permissions == "dtrwxrwxrwx"  # Go prints the sticky bit as a prefix letter
    assert info.mode == 0o777
    link = os.path.join(workdir, "l")
    os.symlink(d, link)
    info = sandbox.files.get_info(link)
    assert info.type == FileType.SYMLINK
    assert info.symlink_target == d
    assert info.name == "l"
    assert info.path == link


def test_get_info_missing(sandbox, workdir):
    with pytest.raises(FileNotFoundException):
        sandbox.files.get_info(os.path.join(workdir, "ghost"))
    make_file(os.path.join(workdir, "file"), b"")
    with pytest.raises(FileNotFoundException):
        sandbox.files.get_info(os.path.join(workdir, "file", "below"))


# -- make_dir / rename / remove ----------------------------------------------------------------------------


def test_make_dir(sandbox, workdir, envd):
    path = os.path.join(workdir, "x", "y", "z")
    assert sandbox.files.make_dir(path) is True
    assert os.path.isdir(path)
    for sub in ("x", "x/y", "x/y/z"):
        assert owner(os.path.join(workdir, sub)) == envd.user
    info = sandbox.files.get_info(path)
    assert info.type == FileType.DIR
    assert info.permissions == "drwxr-xr-x"
    assert sandbox.files.make_dir(path) is False
    assert sandbox.files.make_dir(os.path.join(workdir, "x")) is False


def test_make_dir_as_root(sandbox, workdir):
    path = os.path.join(workdir, "rootmade")
    assert sandbox.files.make_dir(path, user="root") is True
    assert owner(path) == "root"


def test_make_dir_over_file(sandbox, workdir):
    path = os.path.join(workdir, "isfile")
    make_file(path, b"f")
    with pytest.raises(InvalidArgumentException):
        sandbox.files.make_dir(path)
    with pytest.raises(InvalidArgumentException):
        sandbox.files.make_dir(os.path.join(path, "child"))
    assert read_disk(path) == b"f"


def test_rename_file(sandbox, workdir, envd):
    src = os.path.join(workdir, "src.txt")
    make_file(src, b"moving")
    dst = os.path.join(workdir, "new", "parents", "dst.txt")
    info = sandbox.files.rename(src, dst)
    assert info.path == dst
    assert info.name == "dst.txt"
    assert info.type == FileType.FILE
    assert info.size == 6
    assert not os.path.exists(src)
    assert read_disk(dst) == b"moving"
    assert owner(os.path.join(workdir, "new")) == envd.user


def test_rename_directory_and_overwrite(sandbox, workdir):
    make_file(os.path.join(workdir, "d1", "inner.txt"), b"inner")
    info = sandbox.files.rename(os.path.join(workdir, "d1"), os.path.join(workdir, "d2"))
    assert info.type == FileType.DIR
    assert read_disk(os.path.join(workdir, "d2", "inner.txt")) == b"inner"
    make_file(os.path.join(workdir, "one"), b"one")
    make_file(os.path.join(workdir, "two"), b"two")
    sandbox.files.rename(os.path.join(workdir, "one"), os.path.join(workdir, "two"))
    assert read_disk(os.path.join(workdir, "two")) == b"one"


def test_rename_missing_source(sandbox, workdir):
    with pytest.raises(FileNotFoundException):
        sandbox.files.rename(os.path.join(workdir, "nope"), os.path.join(workdir, "dst"))
    assert not os.path.exists(os.path.join(workdir, "dst"))


def test_remove(sandbox, tree):
    sandbox.files.remove(os.path.join(tree, "a.txt"))
    assert not os.path.exists(os.path.join(tree, "a.txt"))
    sandbox.files.remove(os.path.join(tree, "sub"))
    assert not os.path.exists(os.path.join(tree, "sub"))
    sandbox.files.remove(os.path.join(tree, "does", "not", "exist"))  # fine
    assert sorted(os.listdir(tree)) == ["empty"]


def test_remove_symlink_keeps_target(sandbox, tree):
    link = os.path.join(tree, "to-sub")
    os.symlink(os.path.join(tree, "sub"), link)
    sandbox.files.remove(link)
    assert not os.path.lexists(link)
    assert os.path.isfile(os.path.join(tree, "sub", "b.txt"))


# -- errors the SDK maps -----------------------------------------------------------------------------------


def test_read_missing_file(sandbox, workdir):
    with pytest.raises(FileNotFoundException):
        sandbox.files.read(os.path.join(workdir, "missing.txt"))
    with pytest.raises(FileNotFoundException):
        sandbox.files.read(os.path.join(workdir, "missing.txt"), format="bytes")
    with pytest.raises(FileNotFoundException):
        sandbox.files.read(os.path.join(workdir, "missing.txt"), format="stream")


def test_read_directory(sandbox, workdir):
    with pytest.raises(InvalidArgumentException):
        sandbox.files.read(workdir)
    with pytest.raises(InvalidArgumentException):
        sandbox.files.read(workdir, format="stream")


def test_read_fifo_does_not_block(sandbox, workdir):
    fifo = os.path.join(workdir, "fifo")
    os.mkfifo(fifo)
    with pytest.raises(InvalidArgumentException):
        sandbox.files.read(fifo, request_timeout=5)
    with pytest.raises(InvalidArgumentException):
        sandbox.files.write(fifo, "into a pipe nobody reads", request_timeout=5)
    assert sandbox.files.get_info(fifo).permissions == "prw-r--r--"


def test_other_users_home_is_rejected(sandbox):
    with pytest.raises(InvalidArgumentException):
        sandbox.files.read("~root/.bashrc")
    with pytest.raises(InvalidArgumentException):
        sandbox.files.get_info("~root")


# -- paths -------------------------------------------------------------------------------------------------


def test_home_and_relative_paths(sandbox, workdir, envd):
    rel = os.path.basename(workdir)
    info = sandbox.files.write(f"~/{rel}/tilde.txt", "tilde")
    assert info.path == os.path.join(workdir, "tilde.txt")
    assert read_disk(os.path.join(workdir, "tilde.txt")) == b"tilde"
    info = sandbox.files.write(f"{rel}/relative.txt", "relative")
    assert info.path == os.path.join(workdir, "relative.txt")
    assert sandbox.files.read(f"{rel}/tilde.txt") == "tilde"
    assert sandbox.files.read(f"~/{rel}/relative.txt") == "relative"
    assert sandbox.files.get_info(f"{rel}/./x/../relative.txt").path == os.path.join(workdir, "relative.txt")
    assert sandbox.files.get_info("~").path == envd.home
    assert sandbox.files.exists(f"~/{rel}/tilde.txt")
    assert sandbox.files.make_dir(f"{rel}/made") is True
    assert os.path.isdir(os.path.join(workdir, "made"))
    names = {e.name for e in sandbox.files.list(rel)}
    assert names == {"tilde.txt", "relative.txt", "made"}
    assert {e.path for e in sandbox.files.list(f"~/{rel}")} == {
        os.path.join(workdir, n) for n in ("tilde.txt", "relative.txt", "made")
    }
    sandbox.files.rename(f"{rel}/tilde.txt", f"~/{rel}/moved.txt")
    assert read_disk(os.path.join(workdir, "moved.txt")) == b"tilde"
    sandbox.files.remove(f"{rel}/moved.txt")
    assert not os.path.exists(os.path.join(workdir, "moved.txt"))


def test_root_relative_paths_use_root_home(sandbox):
    info = sandbox.files.get_info("~", user="root")
    assert info.path == pwd.getpwnam("root").pw_dir


# -- disk full ---------------------------------------------------------------------------------------------


@pytest.fixture()
def small_disk(workdir, envd):
    """A 1 MiB tmpfs inside workdir, writable by the test user."""
    path = os.path.join(workdir, "small")
    os.mkdir(path)
    entry = pwd.getpwnam(envd.user)
    subprocess.run(
        [
            "mount",
            "-t",
            "tmpfs",
            "-o",
            f"size=1m,uid={entry.pw_uid},gid={entry.pw_gid},mode=755",
            "tmpfs",
            path,
        ],
        check=True,
    )
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", path], check=False)


def test_disk_full(sandbox, small_disk, workdir):
    data = os.urandom(2 * 1024 * 1024)
    with pytest.raises(NotEnoughSpaceException):
        sandbox.files.write(os.path.join(small_disk, "big.bin"), data)
    with pytest.raises(NotEnoughSpaceException):
        sandbox.files.write(os.path.join(small_disk, "big2.bin"), data, use_octet_stream=True)
    # The half-written files are gone, so the space is free again.
    assert os.listdir(small_disk) == []
    sandbox.files.write(os.path.join(small_disk, "small.txt"), "fits")
    assert sandbox.files.read(os.path.join(small_disk, "small.txt")) == "fits"


def test_disk_full_answer_keeps_connection_usable(sandbox, small_disk, workdir):
    """The 507 comes while most of the body is unsent; later requests must not hit a dead connection."""
    with open(os.path.join(small_disk, "filler"), "wb") as f, contextlib.suppress(OSError):
        f.write(b"x" * 2 * 1024 * 1024)
    data = os.urandom(3 * 1024 * 1024)
    for round_ in range(3):
        with pytest.raises(NotEnoughSpaceException):
            sandbox.files.write(os.path.join(small_disk, "big.bin"), data)
        sandbox.files.write(os.path.join(workdir, "after.txt"), f"multipart {round_}")
        with pytest.raises(NotEnoughSpaceException):
            sandbox.files.write(os.path.join(small_disk, "big.bin"), data, use_octet_stream=True)
        sandbox.files.write(os.path.join(workdir, "after.txt"), f"octet {round_}")
        assert read_disk(os.path.join(workdir, "after.txt")) == f"octet {round_}".encode()
    assert os.listdir(small_disk) == ["filler"]


def test_make_dir_out_of_inodes(sandbox, workdir, envd):
    """A full filesystem under an RPC is a plain SandboxException, not the SDK's rate-limit error."""
    path = os.path.join(workdir, "tiny")
    os.mkdir(path)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k,nr_inodes=4", "tmpfs", path], check=True)
    try:
        with pytest.raises(SandboxException) as caught:
            for i in range(10):
                sandbox.files.make_dir(os.path.join(path, f"d{i}"))
        assert type(caught.value) is SandboxException
        assert "disk space" in str(caught.value)
        assert sandbox.files.exists(os.path.join(path, "d0"))
    finally:
        subprocess.run(["umount", "-l", path], check=False)


@pytest.mark.parametrize("octet", [False, True], ids=["multipart", "octet-stream"])
def test_disk_full_huge_upload(sandbox, small_disk, workdir, octet):
    """Most of a huge body is still coming when envd answers: the answer arrives, the connection closes."""
    data = bytes(80 * 1024 * 1024)
    with pytest.raises(NotEnoughSpaceException):
        sandbox.files.write(os.path.join(small_disk, "huge"), data, use_octet_stream=octet)
    sandbox.files.write(os.path.join(workdir, "next.txt"), "next")
    assert read_disk(os.path.join(workdir, "next.txt")) == b"next"
    assert os.listdir(small_disk) == []
