"""What the benchmark scripts share: free ports, timing loops and their summaries, and a stack of their
own."""

from __future__ import annotations

import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from leftovers import leftovers

HUTCH = str(Path(sys.executable).with_name("hutch"))


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


def report(title: str, results: dict, *, as_json: bool, width: int = 40) -> None:
    """Print ``results``: as JSON, or one line per measurement under ``title``."""
    if as_json:
        print(json.dumps(results, indent=2))
        return
    print(title)
    for name, value in results.items():
        print(f"  {name:{width}} {value}")


@contextmanager
def own_stack(
    subnet: str, settings: dict[str, object], seen: set[str], base: Path | None = None
) -> Iterator[dict]:
    """``hutch up --detach`` with temporary data (in ``base``, default a new directory; its data directory
    is ``base/data``), free ports, ``subnet`` and ``settings`` (``HUTCH_…`` names; dicts as JSON; egress
    is off unless they name an uplink); yields the SDK's connection options. Afterwards ``hutch down``,
    and an error if anything of the sandboxes in ``seen`` was left behind."""
    base = base or Path(tempfile.mkdtemp(prefix="hutch-bench-"))
    env = {
        **os.environ,
        "HUTCH_DATA_DIR": str(base / "data"),
        "HUTCH_API__PORT": str(free_port()),
        "HUTCH_PROXY__PORT": str(free_port()),
        "HUTCH_RUNTIME__SUBNET": subnet,
        "HUTCH_RUNTIME__EGRESS_INTERFACE": "off",
        # The plain-HTTP paths only: no TLS edge on 443, nothing added to the host's trust store.
        "HUTCH_PROXY__TLS_PORT": "0",
        "HUTCH_PROXY__TRUST_LOCAL_CA": "false",
        **{name: value if isinstance(value, str) else json.dumps(value) for name, value in settings.items()},
    }
    env_file = base / "env.local"
    subprocess.run([HUTCH, "up", "--detach", "--env-file", str(env_file)], env=env, check=True)
    values = dict(line.split("=", 1) for line in env_file.read_text().splitlines() if "=" in line)
    try:
        yield {
            "api_key": values["E2B_API_KEY"],
            "api_url": values["E2B_API_URL"],
            "sandbox_url": values["E2B_SANDBOX_URL"],
        }
    finally:
        subprocess.run([HUTCH, "down"], env=env, check=False)
        problems = leftovers(base / "data", subnet, seen)
        shutil.rmtree(base, ignore_errors=True)
        if problems:
            raise SystemExit(f"left behind: {problems}")
