"""What the benchmark scripts share: free ports, timing loops and their summaries."""

from __future__ import annotations

import socket
import statistics
import time
from collections.abc import Callable


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def summary(samples_ms: list[float], digits: int = 2) -> dict:
    """Median, p95 and count of latencies in milliseconds."""
    ordered = sorted(samples_ms)
    return {
        "median_ms": round(statistics.median(ordered), digits),
        "p95_ms": round(ordered[min(len(ordered) - 1, int(len(ordered) * 0.95))], digits),
        "n": len(ordered),
    }


def timed(fn: Callable[[], object], runs: int, warmup: int = 5, digits: int = 2) -> dict:
    """Call ``fn`` ``warmup`` times, then ``runs`` times timed; the summary of the timed calls."""
    for _ in range(warmup):
        fn()
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - start) * 1000)
    return summary(samples, digits)


def throughput(fn: Callable[[], object], size: int, runs: int = 3) -> dict:
    """MB/s of ``fn`` moving ``size`` bytes: median and best of ``runs``."""
    rates = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        rates.append(size / (time.perf_counter() - start) / 1e6)
    return {"median_MBps": round(statistics.median(rates), 1), "best_MBps": round(max(rates), 1)}
