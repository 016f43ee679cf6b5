"""Keep-alive connections to sandboxes: a small pool per sandbox and address, not one for all of them.

httpcore's pool walks every connection it holds on each request it takes or lets go (and counts them once
per connection while it does: a square of the connections), polling each idle one: through one pool for all
sandboxes, a request cost ~1 ms of the proxy's CPU with one sandbox's connection in it, ~6 ms with 50 and
~48 ms with 200. A pool here holds only the connections of one sandbox's port (of one sandbox through its
node, in a cluster), and one that no request used for :data:`IDLE_S` is closed at the next sweep, so that
pools of sandboxes gone do not pile up. A tenant picks the ports of its sandbox that are asked for: beyond
:data:`MAX_POOLS`, the pools used longest ago that no request is in are closed first, so that the idle
connections the proxy keeps stay bounded (at most ``MAX_POOLS * KEEP_IDLE``).
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import httpx

# As long as an idle connection is kept; a pool unused for that long holds none.
IDLE_S = 60.0
# Idle connections kept per pool: a sandbox's port rarely has more requests at once than this.
KEEP_IDLE = 8
SWEEP_EVERY_S = 10.0
MAX_POOLS = 1024


# Sandboxes are reached over plain HTTP. httpx would load the CA bundle into a new TLS context for each
# pool (~40 ms); this one holds no CA, so a TLS connection through it could verify nothing.
_NO_TLS = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)


def create_transport() -> httpx.AsyncHTTPTransport:
    """One pool, unbounded in connections: every open stream holds one, and a bound would make new requests
    wait behind long commands."""
    limits = httpx.Limits(max_connections=None, max_keepalive_connections=KEEP_IDLE, keepalive_expiry=IDLE_S)
    return httpx.AsyncHTTPTransport(verify=_NO_TLS, limits=limits, trust_env=False)


@dataclass
class _Pool:
    transport: httpx.AsyncHTTPTransport = field(default_factory=create_transport)
    users: int = 0
    used_at: float = 0.0


class Upstreams:
    """The pools by key (a sandbox and the address its port is reached at)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._pools: dict[tuple[str, tuple[str, int]], _Pool] = {}
        self._swept_at = clock()
        self._closing: set[asyncio.Task[None]] = set()

    def __len__(self) -> int:
        return len(self._pools)

    @asynccontextmanager
    async def pool(
        self, sandbox_id: str, address: tuple[str, int]
    ) -> AsyncIterator[httpx.AsyncHTTPTransport]:
        """The pool for ``sandbox_id`` at ``address``, in use until the block ends (its answer streamed)."""
        key = (sandbox_id, address)
        pool = self._pools.get(key)
        if pool is None:
            if len(self._pools) >= MAX_POOLS:
                self._evict()
            pool = self._pools[key] = _Pool()
        pool.users += 1
        try:
            yield pool.transport
        finally:
            pool.users -= 1
            pool.used_at = self._clock()
            if pool.used_at - self._swept_at >= SWEEP_EVERY_S:
                self._sweep(pool.used_at)

    def _sweep(self, now: float) -> None:
        """Close the pools that no request has used for :data:`IDLE_S`."""
        self._swept_at = now
        self._close(
            [key for key, pool in self._pools.items() if not pool.users and now - pool.used_at >= IDLE_S]
        )

    def _evict(self) -> None:
        """Close the pools used longest ago that no request is in, down to three quarters of the bound."""
        unused = sorted((pool.used_at, key) for key, pool in self._pools.items() if not pool.users)
        self._close([key for _, key in unused[: len(self._pools) - MAX_POOLS * 3 // 4]])

    def _close(self, keys: list[tuple[str, tuple[str, int]]]) -> None:
        for key in keys:
            task = asyncio.ensure_future(self._pools.pop(key).transport.aclose())
            self._closing.add(task)
            task.add_done_callback(self._closing.discard)

    async def aclose(self) -> None:
        """Close every pool's connections."""
        pools, self._pools = list(self._pools.values()), {}
        await asyncio.gather(*(pool.transport.aclose() for pool in pools), *self._closing)
