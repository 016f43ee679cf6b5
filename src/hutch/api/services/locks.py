"""One lock per sandbox: its pause, resume, snapshots, forks and kill happen one at a time. The sandbox and
snapshot services share one :class:`SandboxLocks`."""

from __future__ import annotations

import asyncio


class SandboxLocks:
    """The locks of the sandboxes this API process acts on, made on first use."""

    def __init__(self) -> None:
        self._locks: dict[str, asyncio.Lock] = {}

    def of(self, sandbox_id: str) -> asyncio.Lock:
        """The sandbox's lock."""
        return self._locks.setdefault(sandbox_id, asyncio.Lock())

    def forget(self, sandbox_id: str) -> None:
        """Drop the lock of a sandbox that is gone."""
        self._locks.pop(sandbox_id, None)
