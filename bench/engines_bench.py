"""crun next to gVisor: what the hardened engine costs, through the official SDK.

For each engine (metadata ``hutch.runtime``): create → first ``commands.run("echo hi")`` cold (no warm pool)
and warm (a pool of two, refilled between creates), ``commands.run("true")``, a 4 KiB file write + read,
kill, and memory per idle sandbox (the drop of the host's ``MemAvailable`` while ``--idle`` sandboxes sit
idle). It starts its own stacks (``hutch up --detach``, temporary data, free ports, subnet 10.16.0.0/16) and
stops them. Run as root: ``python bench/engines_bench.py [--runs 30] [--idle 10]``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from e2b import Sandbox
from measure import own_stack, summary, timed

SUBNET = "10.16.0.0/16"
ENGINES = ("crun", "gvisor")


def pools(size: int) -> dict[str, object]:
    """``size`` warm base sandboxes per engine."""
    return {"HUTCH_RUNTIME__WARM_POOL": {"base": size}, "HUTCH_RUNTIME__GVISOR_WARM_POOL": {"base": size}}


def create(opts: dict, engine: str, seen: set[str]) -> Sandbox:
    sandbox = Sandbox.create(metadata={"hutch.runtime": engine}, **opts)
    seen.add(sandbox.sandbox_id)
    return sandbox


def creates(opts: dict, engine: str, runs: int, pause_s: float, seen: set[str]) -> dict:
    """create → first command, and kill, ``runs`` times (``pause_s`` between, for a pool to refill)."""
    first, kills = [], []
    for _ in range(runs):
        time.sleep(pause_s)
        start = time.perf_counter()
        sandbox = create(opts, engine, seen)
        sandbox.commands.run("echo hi")
        first.append((time.perf_counter() - start) * 1000)
        start = time.perf_counter()
        sandbox.kill()
        kills.append((time.perf_counter() - start) * 1000)
    return {"create_to_first_command": summary(first), "kill": summary(kills)}


def mem_available_kib() -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1])
    raise RuntimeError("no MemAvailable in /proc/meminfo")


def idle_memory(opts: dict, engine: str, count: int, seen: set[str]) -> float:
    """MiB of host memory per idle sandbox."""
    time.sleep(3)
    before = mem_available_kib()
    sandboxes = [create(opts, engine, seen) for _ in range(count)]
    time.sleep(5)  # let them settle
    after = mem_available_kib()
    for sandbox in sandboxes:
        sandbox.kill()
    return round((before - after) / 1024 / count, 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--idle", type=int, default=10)
    args = parser.parse_args()
    seen: set[str] = set()
    results: dict = {engine: {} for engine in ENGINES}
    with own_stack(SUBNET, pools(0), seen) as opts:
        for engine in ENGINES:
            results[engine]["cold"] = creates(opts, engine, args.runs // 3, 0.2, seen)
            sandbox = create(opts, engine, seen)
            results[engine]["run_true"] = timed(lambda: sandbox.commands.run("true"), args.runs)  # noqa: B023

            def file_round_trip(sandbox: Sandbox = sandbox) -> None:
                sandbox.files.write("/home/user/bench.bin", b"x" * 4096)
                sandbox.files.read("/home/user/bench.bin", format="bytes")

            results[engine]["file_4k_write_read"] = timed(file_round_trip, args.runs)
            sandbox.kill()
            results[engine]["idle_MiB_per_sandbox"] = idle_memory(opts, engine, args.idle, seen)
    with own_stack(SUBNET, pools(2), seen) as opts:
        for engine in ENGINES:
            create(opts, engine, seen).kill()  # the first claim waits for the pool's first fill
            results[engine]["warm"] = creates(opts, engine, args.runs, 1.5, seen)
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
