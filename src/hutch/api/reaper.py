"""The timeout loop: kills (or, with ``autoPause``, pauses) each sandbox when its time is up, within a
fraction of a second; every few seconds, forgets sandboxes that died on their own; every hour, forgets
usage older than its retention. Of many API
replicas over one PostgreSQL catalog, one does each round: the one that holds the duty's advisory lock."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from datetime import UTC, datetime

from ..catalog import Catalog
from ..errors import HutchError
from .services import usage
from .services.sandboxes import SandboxService

log = logging.getLogger(__name__)
# How often the catalog is checked against the runtime for sandboxes that died on their own.
LOST_CHECK_S = 5.0
# How often sandbox spans older than the usage retention are forgotten.
PRUNE_S = 3600.0


class Reaper:
    """Wakes at the next sandbox's end (or every ``interval_s``, to see new and moved deadlines)."""

    DUTY = "hutch-reaper"

    def __init__(self, sandboxes: SandboxService, catalog: Catalog, *, interval_s: float) -> None:
        self._sandboxes = sandboxes
        self._catalog = catalog
        self._interval_s = interval_s
        self._task: asyncio.Task[None] | None = None
        self._next_lost_check = 0.0
        self._next_prune = 0.0

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="hutch-reaper")

    async def stop(self) -> None:
        if self._task is None:
            return
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self._task = None

    async def reap(self) -> float:
        """Kill or pause what is due, if this replica holds the duty; returns the seconds until the next
        sandbox is."""
        async with self._catalog.duty(self.DUTY) as mine:
            if not mine:
                return self._interval_s
            return await self._round()

    async def _round(self) -> float:
        if time.monotonic() >= self._next_lost_check:
            self._next_lost_check = time.monotonic() + LOST_CHECK_S
            for sandbox_id in await self._sandboxes.forget_lost():
                log.warning("sandbox %s stopped on its own; forgotten", sandbox_id)
        if time.monotonic() >= self._next_prune:
            self._next_prune = time.monotonic() + PRUNE_S
            await usage.prune(catalog=self._catalog)
        due, upcoming = await self._sandboxes.due()
        for sandbox_id in due:
            try:
                await self._sandboxes.expire(sandbox_id=sandbox_id)
            except HutchError as error:
                log.error("could not end expired sandbox %s: %s", sandbox_id, error.message)
        if upcoming is None:
            return self._interval_s
        return max(0.0, (upcoming - datetime.now(UTC)).total_seconds())

    async def _run(self) -> None:
        while True:
            try:
                wait = await self.reap()
            except Exception:
                log.exception("reaper round failed")
                wait = self._interval_s
            await asyncio.sleep(min(wait, self._interval_s))
