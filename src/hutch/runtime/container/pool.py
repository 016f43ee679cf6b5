"""Warm pools: sandboxes started ahead of time, per template, so that a create only claims one.

A pooled sandbox is fully started (root filesystem, network, envd answering) but not initialised; the
claimer sends ``/init`` with the caller's env vars and token. The pool refills in the background, once
claims pause for ``QUIET_S``: a burst of creates then has the CPU to itself, while the pool has more than a
quarter of its sandboxes (below that, it refills at once).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

log = logging.getLogger("hutch.runtime")

Prepared = TypeVar("Prepared")
PoolKey = tuple[str, int, int, int, str]  # template id, cpu count, memory MB, disk MB, engine
QUIET_S = 0.2


class WarmPool(Generic[Prepared]):
    """Ready sandboxes by key; ``prepare`` starts one, ``discard`` stops one."""

    def __init__(
        self,
        prepare: Callable[[PoolKey], Awaitable[Prepared]],
        discard: Callable[[Prepared], Awaitable[None]],
    ) -> None:
        self._prepare = prepare
        self._discard = discard
        self._ready: dict[PoolKey, list[Prepared]] = {}
        self._targets: dict[PoolKey, int] = {}
        self._filling: dict[PoolKey, asyncio.Task] = {}
        self._claimed_at: dict[PoolKey, float] = {}
        self._closed = False

    def keep(self, key: PoolKey, size: int) -> None:
        """Keep ``size`` sandboxes ready for ``key`` (0 stops pooling it)."""
        self._targets[key] = size
        self._refill(key)

    def claim(self, key: PoolKey) -> Prepared | None:
        """Take a ready sandbox, if there is one, and start replacing it."""
        ready = self._ready.get(key)
        item = ready.pop() if ready else None
        self._claimed_at[key] = time.monotonic()
        if key in self._targets:
            self._refill(key)
        return item

    def size(self, key: PoolKey) -> int:
        return len(self._ready.get(key, ()))

    def _refill(self, key: PoolKey) -> None:
        if self._closed or key in self._filling:
            return
        if len(self._ready.get(key, ())) < self._targets.get(key, 0):
            self._filling[key] = asyncio.ensure_future(self._fill(key))

    async def _fill(self, key: PoolKey) -> None:
        try:
            while not self._closed and len(self._ready.get(key, ())) < self._targets.get(key, 0):
                await self._quiet(key)
                try:
                    item = await self._prepare(key)
                except Exception:
                    log.exception("warm pool: preparing a %s sandbox failed", key[0])
                    await asyncio.sleep(1)
                    continue
                if self._closed:
                    await self._discard(item)
                    return
                self._ready.setdefault(key, []).append(item)
        finally:
            self._filling.pop(key, None)

    async def _quiet(self, key: PoolKey) -> None:
        """Wait until no claim came for ``QUIET_S``, or the pool is down to a quarter of its target."""
        while len(self._ready.get(key, ())) * 4 > self._targets.get(key, 0):
            waited = time.monotonic() - self._claimed_at.get(key, 0.0)
            if waited >= QUIET_S:
                return
            await asyncio.sleep(QUIET_S - waited)

    async def close(self) -> None:
        """Stop refilling and discard every ready sandbox."""
        self._closed = True
        for task in list(self._filling.values()):
            task.cancel()
        await asyncio.gather(*self._filling.values(), return_exceptions=True)
        for items in self._ready.values():
            for item in items:
                await self._discard(item)
        self._ready.clear()
