"""Per-team rate limits: token buckets in memory, answered with 429 and ``Retry-After`` when empty.

The SDK honours ``Retry-After`` and retries a 429 up to three times, so a short burst over the limit only
slows a client down; a sustained one gets ``RateLimitException``.
"""

from __future__ import annotations

import time

from ..errors import QuotaExceeded


class RateLimiter:
    """``rate_per_s`` tokens a second per key, at most ``burst`` saved up; a rate of 0 never limits."""

    def __init__(self, rate_per_s: float, burst: int, what: str) -> None:
        self.rate = rate_per_s
        self.burst = max(1, burst)
        self.what = what
        self._buckets: dict[str, tuple[float, float]] = {}  # key -> (tokens, at)

    def take(self, key: str) -> None:
        """Spend one token of ``key``'s bucket, or raise ``QuotaExceeded`` saying when one will be there."""
        if self.rate <= 0:
            return
        now = time.monotonic()
        tokens, at = self._buckets.get(key, (float(self.burst), now))
        tokens = min(float(self.burst), tokens + (now - at) * self.rate)
        if tokens < 1:
            self._buckets[key] = (tokens, now)
            wait = (1 - tokens) / self.rate
            raise QuotaExceeded(
                f"rate limit of {self.rate:g} {self.what} a second reached", retry_after_s=wait
            )
        self._buckets[key] = (tokens - 1, now)
        if len(self._buckets) > 100_000:
            self._buckets.clear()
