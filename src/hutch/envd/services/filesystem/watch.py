"""Directory watching on inotify: the ``WatchDir`` stream and the polled watcher trio.

A :class:`DirWatcher` owns one inotify instance, read on the event loop. Recursive watching adds a watch for
every directory below the root, and for each directory created or moved in later. inotify masks become E2B's
event types the way fsnotify names them (one message per operation):

CREATE ← IN_CREATE, IN_MOVED_TO · WRITE ← IN_MODIFY · REMOVE ← IN_DELETE, IN_DELETE_SELF ·
RENAME ← IN_MOVED_FROM, IN_MOVE_SELF · CHMOD ← IN_ATTRIB
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections import deque
from collections.abc import AsyncIterator
from typing import Callable

from inotify_simple import INotify, flags, parse_events

from ...connect import Call, field, text
from ...entry import entry_info
from ...errors import RpcError
from .common import fs_error, user_and_path

MASK = (
    flags.CREATE
    | flags.MOVED_TO
    | flags.MODIFY
    | flags.DELETE
    | flags.DELETE_SELF
    | flags.MOVED_FROM
    | flags.MOVE_SELF
    | flags.ATTRIB
    | flags.ONLYDIR
)
OPERATIONS = (
    (flags.CREATE | flags.MOVED_TO, "EVENT_TYPE_CREATE"),
    (flags.MODIFY, "EVENT_TYPE_WRITE"),
    (flags.DELETE | flags.DELETE_SELF, "EVENT_TYPE_REMOVE"),
    (flags.MOVED_FROM | flags.MOVE_SELF, "EVENT_TYPE_RENAME"),
    (flags.ATTRIB, "EVENT_TYPE_CHMOD"),
)
WITH_ENTRY = {"EVENT_TYPE_CREATE", "EVENT_TYPE_WRITE", "EVENT_TYPE_CHMOD"}
NETWORK_FILESYSTEMS = {
    "nfs", "nfs4", "cifs", "smb3", "smbfs", "ncpfs", "afs", "9p", "ceph", "glusterfs", "lustre",
    "fuse.sshfs", "fuse.s3fs", "fuse.rclone", "fuse.gcsfuse", "fuse.juicefs",
}  # fmt: skip
MAX_BUFFERED = 10_000


def filesystem_type(path: str) -> str:
    """The type of the filesystem ``path`` lives on, from ``/proc/self/mountinfo``."""
    best, kind = "", ""
    try:
        with open("/proc/self/mountinfo") as mounts:
            for line in mounts:
                left, _, right = line.partition(" - ")
                mount_point = left.split()[4].encode().decode("unicode_escape")
                if (path == mount_point or path.startswith(mount_point.rstrip("/") + "/")) and len(
                    mount_point
                ) >= len(best):
                    best, kind = mount_point, right.split()[0]
    except OSError:
        return ""
    return kind


class DirWatcher:
    """inotify on a directory (optionally its whole tree), turning events into ``FilesystemEvent``s."""

    def __init__(self, root: str, recursive: bool, include_entry: bool, sink: Callable[[dict], None]) -> None:
        self.root = root
        self.recursive = recursive
        self.include_entry = include_entry
        self.sink = sink
        self.inotify = INotify(nonblocking=True)
        self.dirs: dict[int, str] = {}
        self.loop = asyncio.get_event_loop()
        try:
            self._add(root)
            if recursive:
                self._add_tree(root)
        except BaseException:
            self.inotify.close()
            raise
        self.loop.add_reader(self.inotify.fileno(), self._on_readable)

    def _add(self, directory: str) -> None:
        wd = self.inotify.add_watch(directory, MASK)
        self.dirs[wd] = directory

    def _add_tree(self, top: str) -> None:
        for current, subdirs, _ in os.walk(top):
            for name in subdirs:
                try:
                    self._add(os.path.join(current, name))
                except OSError:
                    continue

    def _forget_tree(self, top: str) -> None:
        prefix = top + "/"
        for wd, directory in list(self.dirs.items()):
            if directory == top or directory.startswith(prefix):
                del self.dirs[wd]
                with contextlib.suppress(OSError):
                    self.inotify.rm_watch(wd)

    def _on_readable(self) -> None:
        try:
            data = os.read(self.inotify.fileno(), 64 * 1024)
        except BlockingIOError:
            return
        except OSError:
            return
        for event in parse_events(data):
            self._handle(event)

    def _handle(self, event) -> None:
        directory = self.dirs.get(event.wd)
        if directory is None:
            return
        if event.mask & flags.IGNORED:
            del self.dirs[event.wd]
            return
        path = os.path.join(directory, event.name) if event.name else directory
        if path == self.root:
            return  # the watched directory itself (its own delete/move) is not reported
        if self.recursive and event.mask & flags.ISDIR:
            if event.mask & flags.MOVED_FROM:
                # Gone from its place: if it went out of the tree, its events are no longer ours; if it
                # moved within, MOVED_TO adds it back under its new name.
                self._forget_tree(path)
            if event.mask & (flags.CREATE | flags.MOVED_TO):
                try:
                    self._add(path)
                    self._add_tree(path)
                except OSError:
                    pass
        if event.name == "" and event.mask & (flags.DELETE_SELF | flags.MOVE_SELF):
            return  # reported by the parent's DELETE/MOVED_FROM
        name = os.path.relpath(path, self.root)
        for mask, kind in OPERATIONS:
            if event.mask & mask:
                message: dict = {"name": name, "type": kind}
                if self.include_entry and kind in WITH_ENTRY:
                    with contextlib.suppress(OSError):
                        message["entry"] = entry_info(path)
                self.sink(message)

    def close(self) -> None:
        if not self.inotify.closed:
            self.loop.remove_reader(self.inotify.fileno())
            self.inotify.close()


def open_watcher(call: Call, msg: dict, sink: Callable[[dict], None]) -> DirWatcher:
    """Check a Watch/CreateWatcher request and start watching."""
    _, path = user_and_path(call, msg)
    try:
        if not os.path.isdir(path):
            os.stat(path)  # raises for a missing path
            raise RpcError("invalid_argument", f"path '{path}' is not a directory")
    except OSError as err:
        raise fs_error(err, path) from None
    real = os.path.realpath(path)
    if not field(msg, "allowNetworkMounts", False) and filesystem_type(real) in NETWORK_FILESYSTEMS:
        raise RpcError(
            "invalid_argument", f"path '{path}' is on a network mount; allow network mounts to watch it"
        )
    try:
        return DirWatcher(
            path, bool(field(msg, "recursive", False)), bool(field(msg, "includeEntry", False)), sink
        )
    except OSError as err:
        raise RpcError("internal", f"cannot watch '{path}': {err.strerror}") from None


async def watch_dir(call: Call, msg: dict) -> AsyncIterator[dict]:
    queue: asyncio.Queue = asyncio.Queue()
    watcher = open_watcher(call, msg, queue.put_nowait)
    try:
        yield {"start": {}}
        while True:
            yield {"filesystem": await queue.get()}
    finally:
        watcher.close()


class Watchers:
    """Watchers created by ``CreateWatcher``, each buffering its events until they are fetched."""

    def __init__(self) -> None:
        self.watchers: dict[str, DirWatcher] = {}
        self.buffers: dict[str, deque[dict]] = {}

    def create(self, call: Call, msg: dict) -> str:
        watcher_id = "w" + os.urandom(16).hex()
        buffer: deque[dict] = deque(maxlen=MAX_BUFFERED)
        self.watchers[watcher_id] = open_watcher(call, msg, buffer.append)
        self.buffers[watcher_id] = buffer
        return watcher_id

    def take(self, watcher_id: str) -> list[dict]:
        buffer = self._buffer(watcher_id)
        events = list(buffer)
        buffer.clear()
        return events

    def remove(self, watcher_id: str) -> None:
        self._buffer(watcher_id)
        self.watchers.pop(watcher_id).close()
        del self.buffers[watcher_id]

    def _buffer(self, watcher_id: str | None) -> deque[dict]:
        buffer = self.buffers.get(watcher_id or "")
        if buffer is None:
            raise RpcError("not_found", f"watcher with id {watcher_id} not found")
        return buffer


async def create_watcher(call: Call, msg: dict) -> dict:
    return {"watcherId": call.state.watchers.create(call, msg)}


async def get_watcher_events(call: Call, msg: dict) -> dict:
    return {"events": call.state.watchers.take(text(field(msg, "watcherId"), "watcherId"))}


async def remove_watcher(call: Call, msg: dict) -> dict:
    call.state.watchers.remove(text(field(msg, "watcherId"), "watcherId"))
    return {}
