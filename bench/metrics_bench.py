"""Benchmark what sandbox metrics cost the node: the CPU time of one sampling pass over many running
sandboxes, what that is of one core at the default interval (5 s), and the memory a sandbox's series takes.

Runs the container runtime in this process (root; the base template from the cache; subnet 10.10.0.0/16
unless ``--subnet``) with its sampler's task passing every ``--interval`` seconds, and measures the
process's CPU time (every thread) over ``--seconds``: once with no sandbox, then with ``--sandboxes``
sandboxes on ``--engine``. A pass reads every sandbox's cgroup files and the ``statvfs`` of its disk in one
thread and adds a sample to each one's series; the CPU time over the window divided by the passes made is
the cost of a pass. Then it fills one series with a day and one with 40 days of samples at 5 s and reports
their bytes.

``.venv/bin/python bench/metrics_bench.py [--sandboxes 50] [--seconds 20] [--engine crun] [--json]``
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from measure import report

from hutch.runtime.capabilities import MetricSample
from hutch.runtime.container import ContainerRuntime
from hutch.runtime.series import DAY_S, Series, retention
from hutch.runtime.types import SandboxHandle, SandboxSpec, TemplateImage
from hutch.templates import base
from hutch.templates.envd_zipapp import build

SUBNET = "10.10.0.0/16"
CACHE = Path("/var/cache/hutch")
DEFAULT_INTERVAL_S = 5.0


async def _cpu_ms_per_pass(runtime: ContainerRuntime, seconds: float) -> float:
    """The process's CPU time over ``seconds`` of the sampler's passes, per pass."""
    before = time.process_time()
    await asyncio.sleep(seconds)
    return (time.process_time() - before) * 1000 / (seconds / runtime.sampler.interval_s)


def _samples(runtime: ContainerRuntime, handles: list[SandboxHandle]) -> int:
    return sum(len(runtime.sampler.samples(handle.sandbox_id)) for handle in handles)


async def _sampling(args: argparse.Namespace, workdir: Path) -> dict[str, object]:
    runtime = ContainerRuntime(
        data_dir=workdir / "data",
        cache_dir=CACHE,
        envd_path=build(workdir / "envd.pyz"),
        subnet=args.subnet,
        egress_interface=None,
        metrics_interval_s=args.interval,
    )
    await runtime.start()
    template = TemplateImage("base", base.build(CACHE))
    try:
        empty_ms = await _cpu_ms_per_pass(runtime, args.seconds)
        started = time.perf_counter()
        handles = []
        for _ in range(args.sandboxes):
            handles.append(await runtime.create(SandboxSpec(template=template, engine=args.engine)))
        created_s = time.perf_counter() - started
        await asyncio.sleep(5)  # the sandboxes settle
        taken_before = _samples(runtime, handles)
        full_ms = await _cpu_ms_per_pass(runtime, args.seconds)
        taken = _samples(runtime, handles) - taken_before
        pass_ms = runtime.sampler.pass_s * 1000
    finally:
        await runtime.close()
    return {
        "sandboxes": args.sandboxes,
        "engine": args.engine,
        "created_in_s": round(created_s, 1),
        "interval_s": args.interval,
        "samples_in_window": taken,
        "pass_cpu_ms_no_sandbox": round(empty_ms, 3),
        "pass_cpu_ms": round(full_ms, 2),
        "pass_cpu_us_per_sandbox": round((full_ms - empty_ms) * 1000 / args.sandboxes, 1),
        "last_pass_wall_ms": round(pass_ms, 2),
        "share_of_one_core_at_5s_pct": round(full_ms / (DEFAULT_INTERVAL_S * 1000) * 100, 3),
    }


def _series_bytes(days: int, interval_s: float = DEFAULT_INTERVAL_S) -> int:
    series = Series(retention(interval_s))
    start = 1_700_000_100.0
    for i in range(int(days * DAY_S / interval_s)):
        at = datetime.fromtimestamp(start + i * interval_s, UTC)
        series.add(MetricSample(at, 2, 12.5, 50 << 20, 512 << 20, 10 << 20, 100 << 20, 1 << 30))
    return series.nbytes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sandboxes", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=20, help="each measured window")
    parser.add_argument("--interval", type=float, default=0.1, help="the sampler's interval while measured")
    parser.add_argument("--engine", choices=["crun", "gvisor"], default="crun")
    parser.add_argument("--subnet", default=SUBNET)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("the metrics bench runs sandboxes: it needs root")
    with tempfile.TemporaryDirectory(prefix="hutch-metrics-bench-") as workdir:
        results = asyncio.run(_sampling(args, Path(workdir)))
    results["series_bytes_1_day_at_5s"] = _series_bytes(1)
    results["series_bytes_40_days_at_5s"] = _series_bytes(40)
    report("sandbox metrics: one sampling pass, and a series' memory", results, as_json=args.json)


if __name__ == "__main__":
    main()
