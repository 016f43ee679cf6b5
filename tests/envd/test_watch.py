"""Directory watching through the SDK: the ``WatchDir`` stream (async) and the polled watcher (sync)."""

from __future__ import annotations

import asyncio
import os
import time

import pytest
from e2b import (
    FileNotFoundException,
    FilesystemEvent,
    FilesystemEventType,
    FileType,
    InvalidArgumentException,
    NotFoundException,
    SandboxException,
    TimeoutException,
)

CREATE = FilesystemEventType.CREATE
WRITE = FilesystemEventType.WRITE
REMOVE = FilesystemEventType.REMOVE
RENAME = FilesystemEventType.RENAME
CHMOD = FilesystemEventType.CHMOD


def pairs(events: list[FilesystemEvent]) -> list[tuple[str, FilesystemEventType]]:
    return [(e.name, e.type) for e in events]


async def wait_for(events: list[FilesystemEvent], wanted: tuple[str, FilesystemEventType], timeout=5.0):
    deadline = time.monotonic() + timeout
    while wanted not in pairs(events):
        if time.monotonic() > deadline:
            raise AssertionError(f"no {wanted} in {pairs(events)}")
        await asyncio.sleep(0.02)


def poll_until(
    handle, collected: list[FilesystemEvent], wanted: tuple[str, FilesystemEventType], timeout=5.0
):
    deadline = time.monotonic() + timeout
    while True:
        collected.extend(handle.get_new_events())
        if wanted in pairs(collected):
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"no {wanted} in {pairs(collected)}")
        time.sleep(0.02)


# -- AsyncSandbox.files.watch_dir (the WatchDir stream) ----------------------------------------------------


async def test_watch_dir_event_types(async_sandbox, workdir):
    events: list[FilesystemEvent] = []
    handle = await async_sandbox.files.watch_dir(workdir, events.append)
    try:
        path = os.path.join(workdir, "f.txt")
        await async_sandbox.files.write(path, "one")
        await wait_for(events, ("f.txt", WRITE))
        assert pairs(events)[0] == ("f.txt", CREATE)

        with open(path, "a") as f:
            f.write("more")
        os.chmod(path, 0o600)
        await wait_for(events, ("f.txt", CHMOD))

        await async_sandbox.files.rename(path, os.path.join(workdir, "g.txt"))
        await wait_for(events, ("g.txt", CREATE))
        assert ("f.txt", RENAME) in pairs(events)

        await async_sandbox.files.remove(os.path.join(workdir, "g.txt"))
        await wait_for(events, ("g.txt", REMOVE))

        await async_sandbox.files.make_dir(os.path.join(workdir, "newdir"))
        await wait_for(events, ("newdir", CREATE))
        await async_sandbox.files.remove(os.path.join(workdir, "newdir"))
        await wait_for(events, ("newdir", REMOVE))
    finally:
        await handle.stop()
    assert {name for name, _ in pairs(events)} == {"f.txt", "g.txt", "newdir"}
    assert all(e.entry is None for e in events)


async def test_watch_dir_not_recursive(async_sandbox, workdir):
    events: list[FilesystemEvent] = []
    os.mkdir(os.path.join(workdir, "existing"))
    handle = await async_sandbox.files.watch_dir(workdir, events.append)
    try:
        await async_sandbox.files.write(os.path.join(workdir, "existing", "inner.txt"), "x")
        await async_sandbox.files.make_dir(os.path.join(workdir, "sub"))
        await wait_for(events, ("sub", CREATE))
        await async_sandbox.files.write(os.path.join(workdir, "sub", "inner.txt"), "x")
        await async_sandbox.files.write(os.path.join(workdir, "top.txt"), "x")
        await wait_for(events, ("top.txt", CREATE))
        await asyncio.sleep(0.1)
    finally:
        await handle.stop()
    assert not [name for name, _ in pairs(events) if "/" in name]


async def test_watch_dir_recursive(async_sandbox, workdir):
    events: list[FilesystemEvent] = []
    os.makedirs(os.path.join(workdir, "old", "nested"))
    rel = os.path.basename(workdir)
    handle = await async_sandbox.files.watch_dir(f"~/{rel}", events.append, recursive=True)
    try:
        await async_sandbox.files.write(os.path.join(workdir, "old", "nested", "a.txt"), "a")
        await wait_for(events, ("old/nested/a.txt", CREATE))

        await async_sandbox.files.make_dir(os.path.join(workdir, "fresh"))
        await wait_for(events, ("fresh", CREATE))
        await asyncio.sleep(0.1)  # the new directory's watch is added when its CREATE is read
        await async_sandbox.files.write(os.path.join(workdir, "fresh", "b.txt"), "b")
        await wait_for(events, ("fresh/b.txt", CREATE))
        await wait_for(events, ("fresh/b.txt", WRITE))

        os.makedirs(os.path.join(workdir, "fresh", "x", "y"))
        await wait_for(events, ("fresh/x", CREATE))
        await asyncio.sleep(0.1)
        await async_sandbox.files.write(os.path.join(workdir, "fresh", "x", "y", "c.txt"), "c")
        await wait_for(events, ("fresh/x/y/c.txt", CREATE))

        await async_sandbox.files.rename(
            os.path.join(workdir, "fresh", "b.txt"), os.path.join(workdir, "old", "b.txt")
        )
        await wait_for(events, ("old/b.txt", CREATE))
        assert ("fresh/b.txt", RENAME) in pairs(events)

        await async_sandbox.files.remove(os.path.join(workdir, "fresh"))
        await wait_for(events, ("fresh", REMOVE))
        await wait_for(events, ("fresh/x/y/c.txt", REMOVE))
    finally:
        await handle.stop()


async def test_watch_dir_include_entry(async_sandbox, workdir, envd):
    events: list[FilesystemEvent] = []
    handle = await async_sandbox.files.watch_dir(workdir, events.append, include_entry=True)
    try:
        path = os.path.join(workdir, "e.txt")
        await async_sandbox.files.write(path, "12345")
        await wait_for(events, ("e.txt", WRITE))
        await async_sandbox.files.remove(path)
        await wait_for(events, ("e.txt", REMOVE))
    finally:
        await handle.stop()
    created = next(e for e in events if e.type == CREATE)
    assert created.entry is not None
    assert created.entry.name == "e.txt"
    assert created.entry.path == os.path.join(workdir, "e.txt")
    assert created.entry.type == FileType.FILE
    assert created.entry.owner in (envd.user, "root")
    assert created.entry.permissions == "-rw-r--r--"
    removed = next(e for e in events if e.type == REMOVE)
    assert removed.entry is None


async def test_watch_dir_stop(async_sandbox, workdir):
    events: list[FilesystemEvent] = []
    exits: list = []
    handle = await async_sandbox.files.watch_dir(workdir, events.append, on_exit=exits.append)
    await async_sandbox.files.write(os.path.join(workdir, "before.txt"), "x")
    await wait_for(events, ("before.txt", CREATE))
    await handle.stop()
    assert exits == [None]
    count = len(events)
    await async_sandbox.files.write(os.path.join(workdir, "after.txt"), "x")
    await asyncio.sleep(0.2)
    assert len(events) == count


async def test_watch_dir_timeout(async_sandbox, workdir):
    exits: list = []
    handle = await async_sandbox.files.watch_dir(workdir, lambda e: None, on_exit=exits.append, timeout=1)
    try:
        deadline = time.monotonic() + 5
        while not exits and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
    finally:
        await handle.stop()
    assert len(exits) == 1
    assert isinstance(exits[0], TimeoutException)


async def test_watch_dir_errors(async_sandbox, workdir):
    with pytest.raises(FileNotFoundException):
        await async_sandbox.files.watch_dir(os.path.join(workdir, "missing"), lambda e: None)
    path = os.path.join(workdir, "a-file")
    with open(path, "w") as f:
        f.write("x")
    with pytest.raises(InvalidArgumentException):
        await async_sandbox.files.watch_dir(path, lambda e: None)


async def test_many_concurrent_watchers(async_sandbox, workdir):
    collected: list[list[FilesystemEvent]] = [[] for _ in range(5)]
    handles = [await async_sandbox.files.watch_dir(workdir, events.append) for events in collected]
    try:
        await async_sandbox.files.write(os.path.join(workdir, "shared.txt"), "x")
        for events in collected:
            await wait_for(events, ("shared.txt", CREATE))
    finally:
        for handle in handles:
            await handle.stop()


# -- Sandbox.files.watch_dir (CreateWatcher / GetWatcherEvents / RemoveWatcher) ----------------------------


def test_sync_watch(sandbox, workdir):
    handle = sandbox.files.watch_dir(workdir)
    collected: list[FilesystemEvent] = []
    try:
        path = os.path.join(workdir, "s.txt")
        sandbox.files.write(path, "hello")
        poll_until(handle, collected, ("s.txt", WRITE))
        assert pairs(collected)[0] == ("s.txt", CREATE)
        os.chmod(path, 0o640)
        poll_until(handle, collected, ("s.txt", CHMOD))
        sandbox.files.rename(path, os.path.join(workdir, "t.txt"))
        poll_until(handle, collected, ("t.txt", CREATE))
        assert ("s.txt", RENAME) in pairs(collected)
        sandbox.files.remove(os.path.join(workdir, "t.txt"))
        poll_until(handle, collected, ("t.txt", REMOVE))
        # Fetched events are cleared.
        time.sleep(0.05)
        assert handle.get_new_events() == []
    finally:
        handle.stop()
    assert all(e.entry is None for e in collected)


def test_sync_watch_recursive_with_entry(sandbox, workdir):
    handle = sandbox.files.watch_dir(workdir, recursive=True, include_entry=True)
    collected: list[FilesystemEvent] = []
    try:
        sandbox.files.make_dir(os.path.join(workdir, "d"))
        poll_until(handle, collected, ("d", CREATE))
        time.sleep(0.1)
        sandbox.files.write(os.path.join(workdir, "d", "deep.txt"), "deep")
        poll_until(handle, collected, ("d/deep.txt", WRITE))
    finally:
        handle.stop()
    made = next(e for e in collected if e.name == "d")
    assert made.entry is not None and made.entry.type == FileType.DIR
    deep = next(e for e in collected if e.name == "d/deep.txt" and e.type == CREATE)
    assert deep.entry is not None
    assert deep.entry.path == os.path.join(workdir, "d", "deep.txt")


def test_sync_watch_stop(sandbox, workdir):
    handle = sandbox.files.watch_dir(workdir, user="root")
    sandbox.files.write(os.path.join(workdir, "x.txt"), "x")
    collected: list[FilesystemEvent] = []
    poll_until(handle, collected, ("x.txt", CREATE))
    handle.stop()
    with pytest.raises(SandboxException):
        handle.get_new_events()  # the SDK refuses once stopped
    with pytest.raises(NotFoundException):
        handle.stop()  # envd no longer knows this watcher


def test_sync_watch_buffers_between_polls(sandbox, workdir):
    handle = sandbox.files.watch_dir(workdir)
    try:
        for i in range(20):
            sandbox.files.write(os.path.join(workdir, f"n{i}.txt"), "x")
        collected: list[FilesystemEvent] = []
        poll_until(handle, collected, ("n19.txt", CREATE))
    finally:
        handle.stop()
    created = [name for name, kind in pairs(collected) if kind == CREATE]
    assert created == [f"n{i}.txt" for i in range(20)]


def test_sync_watch_errors(sandbox, workdir):
    with pytest.raises(FileNotFoundException):
        sandbox.files.watch_dir(os.path.join(workdir, "missing"))
    path = os.path.join(workdir, "a-file")
    with open(path, "w") as f:
        f.write("x")
    with pytest.raises(InvalidArgumentException):
        sandbox.files.watch_dir(path)


async def test_watch_recursive_directory_moved_out(async_sandbox, workdir):
    """A directory moved out of the watched tree is no longer reported (nor under its old name)."""
    tree = os.path.join(workdir, "tree")
    outside = os.path.join(workdir, "outside")
    os.makedirs(os.path.join(tree, "leaving", "inner"))
    os.mkdir(outside)
    events: list[FilesystemEvent] = []
    handle = await async_sandbox.files.watch_dir(tree, events.append, recursive=True)
    try:
        await async_sandbox.files.rename(os.path.join(tree, "leaving"), os.path.join(outside, "left"))
        await wait_for(events, ("leaving", RENAME))
        await async_sandbox.files.write(os.path.join(outside, "left", "inner", "late.txt"), "x")
        # A directory moved within the tree keeps being watched, under its new name.
        os.makedirs(os.path.join(tree, "a", "b"))
        await wait_for(events, ("a", CREATE))
        await asyncio.sleep(0.1)
        await async_sandbox.files.rename(os.path.join(tree, "a"), os.path.join(tree, "renamed"))
        await wait_for(events, ("renamed", CREATE))
        await async_sandbox.files.write(os.path.join(tree, "renamed", "b", "moved.txt"), "x")
        await wait_for(events, ("renamed/b/moved.txt", CREATE))
        await asyncio.sleep(0.1)
    finally:
        await handle.stop()
    names = {name for name, _ in pairs(events)}
    assert not [n for n in names if "late.txt" in n], names
    assert "a/b/moved.txt" not in names
