"""A running build's log: entries come from the builder (some from other threads) and are written to the
catalog in batches, every ``FLUSH_S``, numbered from 0 so that ``logsOffset`` pages over them."""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from datetime import UTC, datetime

from ...catalog import Catalog
from ...catalog.models import TemplateBuildLog
from ...catalog.repos import template_builds

FLUSH_S = 0.2
# The longest message an entry keeps.
MESSAGE_CHARS = 16384


class BuildLogWriter:
    """The log of the build ``build_id``: :meth:`add` entries between :meth:`start` and :meth:`close`."""

    def __init__(self, catalog: Catalog, build_id: str) -> None:
        self._catalog = catalog
        self._build_id = build_id
        self._pending: deque[tuple[datetime, str, str, str | None]] = deque()
        self._seq = 0
        self._task: asyncio.Task[None] | None = None
        self._closing = asyncio.Event()

    def add(self, message: str, level: str = "info", step: str | None = None) -> None:
        self._pending.append((datetime.now(UTC), message[:MESSAGE_CHARS], level, step))

    def start(self) -> None:
        self._task = asyncio.ensure_future(self._flush_forever())

    async def close(self) -> None:
        """Write what is left. A flush under way finishes first: cancelling it would lose its batch."""
        self._closing.set()
        if self._task is not None:
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        await self._flush()

    async def _flush_forever(self) -> None:
        while not self._closing.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._closing.wait(), FLUSH_S)
            await self._flush()

    async def _flush(self) -> None:
        entries = []
        while self._pending:
            timestamp, message, level, step = self._pending.popleft()
            entries.append(
                TemplateBuildLog(
                    build_id=self._build_id,
                    seq=self._seq,
                    timestamp=timestamp,
                    level=level,
                    message=message,
                    step=step,
                )
            )
            self._seq += 1
        if not entries:
            return
        async with self._catalog.transaction() as session:
            await template_builds.add_log_entries(session, self._build_id, entries)
