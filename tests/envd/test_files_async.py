"""envd's filesystem through the async SDK (``AsyncSandbox.files``)."""

from __future__ import annotations

import asyncio
import io
import os
from collections.abc import AsyncIterator

import pytest
from e2b import (
    AuthenticationException,
    FileNotFoundException,
    FileType,
    InvalidArgumentException,
    NotEnoughSpaceException,
)
from e2b.sandbox.filesystem.filesystem import WriteEntry

from tests.envd.host import make_file, owner, read_disk
from tests.envd.test_files import small_disk  # noqa: F401  (fixture)


async def achunks(chunks: list[bytes]) -> AsyncIterator[bytes]:
    for chunk in chunks:
        await asyncio.sleep(0)
        yield chunk


async def test_text_round_trip(async_sandbox, workdir, envd):
    path = os.path.join(workdir, "a", "text.txt")
    text = "async ✓ text\n" * 100
    info = await async_sandbox.files.write(path, text)
    assert (info.path, info.name, info.type) == (path, "text.txt", FileType.FILE)
    assert read_disk(path) == text.encode()
    assert await async_sandbox.files.read(path) == text
    assert owner(path) == envd.user
    assert owner(os.path.dirname(path)) == envd.user


async def test_bytes_round_trip(async_sandbox, workdir):
    path = os.path.join(workdir, "b.bin")
    data = os.urandom(1_000_000)
    await async_sandbox.files.write(path, data)
    assert read_disk(path) == data
    got = await async_sandbox.files.read(path, format="bytes")
    assert isinstance(got, bytearray) and got == data


async def test_read_stream(async_sandbox, workdir):
    path = os.path.join(workdir, "s.bin")
    data = os.urandom(2 * 1024 * 1024 + 3)
    make_file(path, data)
    parts = []
    async with await async_sandbox.files.read(path, format="stream") as stream:
        async for chunk in stream:
            parts.append(chunk)
    assert b"".join(parts) == data


async def test_write_streams(async_sandbox, workdir):
    chunks = [os.urandom(40_000) for _ in range(6)]
    path = os.path.join(workdir, "aiter.bin")
    await async_sandbox.files.write(path, achunks(chunks))
    assert read_disk(path) == b"".join(chunks)
    path = os.path.join(workdir, "io.bin")
    await async_sandbox.files.write(path, io.BytesIO(b"file-like" * 10_000))
    assert read_disk(path) == b"file-like" * 10_000
    path = os.path.join(workdir, "textio.txt")
    await async_sandbox.files.write(path, io.StringIO("ü" * 10_000))
    assert read_disk(path) == ("ü" * 10_000).encode()


async def test_octet_stream_and_gzip(async_sandbox, workdir):
    path = os.path.join(workdir, "o.bin")
    await async_sandbox.files.write(path, b"octet body", use_octet_stream=True)
    assert read_disk(path) == b"octet body"
    data = b"gzip me " * 50_000
    await async_sandbox.files.write(path, data, gzip=True)
    assert read_disk(path) == data
    chunks = [os.urandom(30_000) for _ in range(3)]
    await async_sandbox.files.write(path, achunks(chunks), gzip=True)
    assert read_disk(path) == b"".join(chunks)
    assert await async_sandbox.files.read(path, format="bytes", gzip=True) == b"".join(chunks)
    make_file(path, data)
    assert await async_sandbox.files.read(path, gzip=True) == data.decode()


async def test_write_files(async_sandbox, workdir, envd):
    rel = os.path.basename(workdir)
    entries = [WriteEntry(path=os.path.join(workdir, "abs", f"{i}.txt"), data=f"abs {i}") for i in range(5)]
    entries += [WriteEntry(path=f"{rel}/rel/{i}.txt", data=f"rel {i}".encode()) for i in range(5)]
    infos = await async_sandbox.files.write_files(entries)
    assert len(infos) == 10
    for i in range(5):
        assert read_disk(os.path.join(workdir, "abs", f"{i}.txt")) == f"abs {i}".encode()
        assert read_disk(os.path.join(workdir, "rel", f"{i}.txt")) == f"rel {i}".encode()
    assert {i.path for i in infos} == {
        *(os.path.join(workdir, "abs", f"{i}.txt") for i in range(5)),
        *(os.path.join(workdir, "rel", f"{i}.txt") for i in range(5)),
    }
    assert owner(os.path.join(workdir, "rel")) == envd.user


async def test_write_files_concurrent_octet_stream(async_sandbox, workdir):
    """The async SDK sends octet-stream uploads concurrently, into shared new parent directories."""
    entries = [
        WriteEntry(path=os.path.join(workdir, "p", "q", f"f{i}.bin"), data=bytes([i]) * 50_000)
        for i in range(16)
    ]
    infos = await async_sandbox.files.write_files(entries, use_octet_stream=True, metadata={"n": "1"})
    assert [i.path for i in infos] == [e["path"] for e in entries]
    for i in range(16):
        assert read_disk(os.path.join(workdir, "p", "q", f"f{i}.bin")) == bytes([i]) * 50_000
    assert all(i.metadata == {"n": "1"} for i in infos)


async def test_write_as_root(async_sandbox, workdir):
    path = os.path.join(workdir, "root.txt")
    await async_sandbox.files.write(path, "r", user="root")
    assert owner(path) == "root"
    assert (await async_sandbox.files.get_info(path)).owner == "root"


async def test_metadata(async_sandbox, workdir):
    path = os.path.join(workdir, "m.txt")
    info = await async_sandbox.files.write(path, "m", metadata={"KEY": "Value 1"})
    assert info.metadata == {"key": "Value 1"}
    assert (await async_sandbox.files.get_info(path)).metadata == {"key": "Value 1"}
    await async_sandbox.files.write(path, "m", metadata={"other": "x"})
    assert (await async_sandbox.files.get_info(path)).metadata == {"other": "x"}
    await async_sandbox.files.write(path, "m")
    assert (await async_sandbox.files.get_info(path)).metadata is None
    with pytest.raises(InvalidArgumentException):
        await async_sandbox.files.write(path, "m", metadata={"bad key": "x"})


async def test_list_exists_info(async_sandbox, workdir, envd):
    make_file(os.path.join(workdir, "x.txt"), b"xyz")
    make_file(os.path.join(workdir, "d", "y.txt"), b"y")
    os.symlink("x.txt", os.path.join(workdir, "link"))
    entries = await async_sandbox.files.list(workdir)
    by_name = {e.name: e for e in entries}
    assert sorted(by_name) == ["d", "link", "x.txt"]
    assert by_name["x.txt"].size == 3
    assert by_name["d"].type == FileType.DIR
    assert by_name["link"].type == FileType.SYMLINK
    assert by_name["link"].symlink_target == os.path.join(workdir, "x.txt")
    deep = await async_sandbox.files.list(workdir, depth=2)
    assert os.path.join(workdir, "d", "y.txt") in {e.path for e in deep}

    assert await async_sandbox.files.exists(os.path.join(workdir, "x.txt"))
    assert not await async_sandbox.files.exists(os.path.join(workdir, "nope"))
    info = await async_sandbox.files.get_info(os.path.join(workdir, "d"))
    assert info.type == FileType.DIR
    assert info.permissions == "drwxr-xr-x"
    assert info.mode == 0o755
    assert info.owner == "root"  # created by this test process


async def test_make_dir_rename_remove(async_sandbox, workdir, envd):
    target = os.path.join(workdir, "m1", "m2")
    assert await async_sandbox.files.make_dir(target) is True
    assert await async_sandbox.files.make_dir(target) is False
    assert owner(target) == envd.user
    make_file(os.path.join(workdir, "file"), b"f")
    with pytest.raises(InvalidArgumentException):
        await async_sandbox.files.make_dir(os.path.join(workdir, "file"))

    info = await async_sandbox.files.rename(
        os.path.join(workdir, "file"), os.path.join(workdir, "n1", "n2", "renamed")
    )
    assert info.path == os.path.join(workdir, "n1", "n2", "renamed")
    assert read_disk(info.path) == b"f"
    with pytest.raises(FileNotFoundException):
        await async_sandbox.files.rename(os.path.join(workdir, "file"), os.path.join(workdir, "again"))

    await async_sandbox.files.remove(os.path.join(workdir, "n1"))
    await async_sandbox.files.remove(os.path.join(workdir, "m1"))
    await async_sandbox.files.remove(os.path.join(workdir, "never-existed"))
    assert os.listdir(workdir) == []


async def test_errors(async_sandbox, workdir):
    with pytest.raises(FileNotFoundException):
        await async_sandbox.files.read(os.path.join(workdir, "missing"))
    with pytest.raises(FileNotFoundException):
        await async_sandbox.files.read(os.path.join(workdir, "missing"), format="stream")
    with pytest.raises(InvalidArgumentException):
        await async_sandbox.files.read(workdir)
    with pytest.raises(FileNotFoundException):
        await async_sandbox.files.list(os.path.join(workdir, "missing"))
    make_file(os.path.join(workdir, "f"), b"")
    with pytest.raises(InvalidArgumentException):
        await async_sandbox.files.list(os.path.join(workdir, "f"))
    with pytest.raises(FileNotFoundException):
        await async_sandbox.files.get_info(os.path.join(workdir, "missing"))
    with pytest.raises(InvalidArgumentException):
        await async_sandbox.files.write(workdir, "into a directory")
    with pytest.raises(AuthenticationException):
        await async_sandbox.files.read(os.path.join(workdir, "f"), user="no-such-user-xyz")


async def test_paths(async_sandbox, workdir, envd):
    rel = os.path.basename(workdir)
    info = await async_sandbox.files.write(f"~/{rel}/t.txt", "tilde")
    assert info.path == os.path.join(workdir, "t.txt")
    assert await async_sandbox.files.read(f"{rel}/t.txt") == "tilde"
    assert (await async_sandbox.files.get_info("~")).path == envd.home
    assert [e.path for e in await async_sandbox.files.list(rel)] == [os.path.join(workdir, "t.txt")]


async def test_disk_full(async_sandbox, small_disk):  # noqa: F811
    with pytest.raises(NotEnoughSpaceException):
        await async_sandbox.files.write(os.path.join(small_disk, "big"), os.urandom(2 * 1024 * 1024))
    with pytest.raises(NotEnoughSpaceException):
        await async_sandbox.files.write(
            os.path.join(small_disk, "big"), achunks([os.urandom(512 * 1024) for _ in range(4)])
        )
    assert os.listdir(small_disk) == []
    await async_sandbox.files.write(os.path.join(small_disk, "ok"), "ok")
    assert await async_sandbox.files.read(os.path.join(small_disk, "ok")) == "ok"


async def test_many_concurrent_operations(async_sandbox, workdir):
    async def one(i: int) -> None:
        path = os.path.join(workdir, f"c{i}", "file.txt")
        await async_sandbox.files.write(path, f"value {i}")
        assert await async_sandbox.files.read(path) == f"value {i}"
        assert (await async_sandbox.files.get_info(path)).size == len(f"value {i}")

    await asyncio.gather(*(one(i) for i in range(30)))
    assert len(os.listdir(workdir)) == 30
