"""envd's mutable state: what ``/init`` sets, shared by every handler."""

from __future__ import annotations

import asyncio
import contextlib


class EnvdState:
    """Sandbox-level settings from ``/init`` plus the registries of live processes and watchers."""

    def __init__(self, default_user: str = "root") -> None:
        self.env_vars: dict[str, str] = {}
        self.access_token: str | None = None
        self.default_user = default_user
        self.default_workdir: str | None = None
        self.set_clock = False
        # Set by the envd application (router.Envd) when it starts.
        self.processes = None
        self.watchers = None
        # Set when envd is told to stop (the sandbox is being killed): open streams end at once.
        self.stopping = asyncio.Event()
        self._open_streams = 0
        self._no_streams = asyncio.Event()
        self._no_streams.set()

    def stream_opened(self) -> None:
        self._open_streams += 1
        self._no_streams.clear()

    def stream_closed(self) -> None:
        self._open_streams -= 1
        if self._open_streams == 0:
            self._no_streams.set()

    async def streams_ended(self, timeout_s: float) -> None:
        """Return once no stream is open, or after ``timeout_s``."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._no_streams.wait(), timeout_s)
