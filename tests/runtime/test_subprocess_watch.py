"""A node's event loop learns of its subprocesses' ends from their pidfds: no thread per subprocess, the
exit codes as before, and ``asyncio.run`` leaves no watcher attached to its closed loop."""

from __future__ import annotations

import asyncio
import threading

import pytest

from hutch.runtime.linux import watch_subprocesses_by_pidfd


@pytest.fixture(autouse=True)
def default_watcher_after():
    yield
    asyncio.set_child_watcher(None)  # the next loop gets Python's default again


def test_subprocesses_end_without_a_thread_each():
    async def main() -> tuple[list[int], int]:
        watch_subprocesses_by_pidfd()
        threads = set(threading.enumerate())
        processes = [
            await asyncio.create_subprocess_exec("sh", "-c", f"sleep 0.2; exit {n}") for n in range(5)
        ]
        started = len(set(threading.enumerate()) - threads)  # a thread of an earlier test may end meanwhile
        return [await process.wait() for process in processes], started

    codes, extra_threads = asyncio.run(main())
    assert codes == [0, 1, 2, 3, 4]
    assert extra_threads == 0

    async def again() -> int:  # a later loop of this thread, without the watcher set again
        process = await asyncio.create_subprocess_exec("true")
        return await process.wait()

    assert asyncio.run(again()) == 0
