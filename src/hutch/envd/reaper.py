"""Reaping orphans when envd is the sandbox's init (PID 1).

A process whose parent exits is handed to PID 1; if nobody waits for it, it stays a zombie. On every
SIGCHLD envd scans its children and reaps the ones it did not start itself (those have their own waiter).
"""

from __future__ import annotations

import asyncio
import os
import signal
from typing import Callable


def _children() -> list:
    pids = []
    try:
        tasks = os.listdir("/proc/self/task")
    except OSError:
        return pids
    for tid in tasks:
        try:
            with open(f"/proc/self/task/{tid}/children") as f:
                pids.extend(int(pid) for pid in f.read().split())
        except OSError:
            continue
    return pids


def reap_orphans(is_ours: Callable[[int], bool]) -> None:
    for pid in _children():
        if is_ours(pid):
            continue
        try:
            os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            continue


def install(loop: asyncio.AbstractEventLoop, is_ours: Callable[[int], bool]) -> None:
    """Reap adopted orphans on every SIGCHLD (only meaningful when envd runs as PID 1)."""
    loop.add_signal_handler(signal.SIGCHLD, reap_orphans, is_ours)
