"""The warm pool: it keeps as many ready sandboxes per key as asked, replaces each one claimed, and
discards what is ready when it closes."""

from __future__ import annotations

import asyncio
import time

from hutch.runtime.container.pool import QUIET_S, PoolKey, WarmPool

KEY: PoolKey = ("base", 2, 512, 1024, "crun")
OTHER: PoolKey = ("base", 2, 512, 1024, "gvisor")


class Sandboxes:
    """Stands in for the runtime: numbered sandboxes, and a record of those discarded."""

    def __init__(self) -> None:
        self.made = 0
        self.discarded: list[int] = []

    async def prepare(self, key: PoolKey) -> int:
        await asyncio.sleep(0)
        self.made += 1
        return self.made

    async def discard(self, item: int) -> None:
        self.discarded.append(item)


async def _settled(pool: WarmPool, key: PoolKey, size: int) -> None:
    async with asyncio.timeout(5):
        while pool.size(key) != size:
            await asyncio.sleep(0.001)


async def test_keep_fills_and_claim_refills():
    sandboxes = Sandboxes()
    pool = WarmPool(sandboxes.prepare, sandboxes.discard)
    pool.keep(KEY, 2)
    await _settled(pool, KEY, 2)
    assert pool.claim(KEY) == 2  # the one made last
    await _settled(pool, KEY, 2)
    assert sandboxes.made == 3
    await pool.close()
    assert sorted(sandboxes.discarded) == [1, 3]


async def test_a_key_not_kept_has_nothing():
    sandboxes = Sandboxes()
    pool = WarmPool(sandboxes.prepare, sandboxes.discard)
    pool.keep(KEY, 1)
    await _settled(pool, KEY, 1)
    assert pool.claim(OTHER) is None
    await asyncio.sleep(0.01)
    assert (pool.size(OTHER), sandboxes.made) == (0, 1)
    await pool.close()


async def test_keep_zero_stops_refilling():
    sandboxes = Sandboxes()
    pool = WarmPool(sandboxes.prepare, sandboxes.discard)
    pool.keep(KEY, 1)
    await _settled(pool, KEY, 1)
    pool.keep(KEY, 0)
    assert pool.claim(KEY) == 1
    await asyncio.sleep(0.01)
    assert (pool.size(KEY), sandboxes.made) == (0, 1)
    await pool.close()
    assert sandboxes.discarded == []


async def test_close_discards_the_ready_and_stops_filling():
    sandboxes = Sandboxes()
    pool = WarmPool(sandboxes.prepare, sandboxes.discard)
    pool.keep(KEY, 3)
    await _settled(pool, KEY, 3)
    await pool.close()
    assert sorted(sandboxes.discarded) == [1, 2, 3]
    assert pool.size(KEY) == 0
    pool.keep(KEY, 1)
    await asyncio.sleep(0.01)
    assert sandboxes.made == 3


async def test_a_failed_prepare_is_tried_again():
    sandboxes = Sandboxes()
    failures = [RuntimeError("no room")]

    async def prepare(key: PoolKey) -> int:
        if failures:
            raise failures.pop()
        return await sandboxes.prepare(key)

    pool = WarmPool(prepare, sandboxes.discard)
    pool.keep(KEY, 1)
    await _settled(pool, KEY, 1)  # after the pause a failure costs (1 s)
    assert pool.claim(KEY) == 1
    await pool.close()


async def _full(size: int) -> tuple[Sandboxes, WarmPool]:
    sandboxes = Sandboxes()
    pool = WarmPool(sandboxes.prepare, sandboxes.discard)
    pool.keep(KEY, size)
    await _settled(pool, KEY, size)
    return sandboxes, pool


async def test_a_burst_of_claims_refills_once_claims_pause():
    sandboxes, pool = await _full(8)
    for _ in range(3):
        pool.claim(KEY)
        await asyncio.sleep(QUIET_S / 4)  # claims keep coming: the burst has the CPU
    assert (pool.size(KEY), sandboxes.made) == (5, 8)
    started = time.monotonic()
    await _settled(pool, KEY, 8)
    assert time.monotonic() - started >= QUIET_S * 0.5
    await pool.close()


async def test_a_pool_down_to_a_quarter_refills_at_once():
    _, pool = await _full(8)
    for _ in range(6):
        pool.claim(KEY)
    await asyncio.sleep(QUIET_S / 10)
    assert pool.size(KEY) > 2  # refilling while claims still come
    await pool.close()
