"""What a sandbox start costs, as ratios against ``podman run --rm IMAGE true`` and the goals, in under three
minutes: ``make bench-quick`` (``.venv/bin/python bench/quick.py [--json]``), so that a regression shows.

It runs the phases of ``create_bench.py`` with fewer samples, on stacks of its own (subnet 10.13.0.0/16 or
``--subnet``): podman; a stack with a warm pool of 60 (creates from the pool, 50 at once, sustained
create+command+kill, memory per idle sandbox, and a gVisor sandbox's commands and its pause → resume →
first command back to back); a stack without a pool (cold creates). One run on a busy machine is noisy:
compare runs made in the same conditions. Every sandbox is killed and every stack stopped at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import create_bench as bench
from e2b import Sandbox

WARM_POOL = 60
BURST = 50
GVISOR = {"hutch.runtime": "gvisor"}

# measure: (what it is, the goal, whether higher is better)
GOALS: dict[str, tuple[str, float, bool]] = {
    "warm_vs_podman": ("warm create -> first command, times faster than podman", 10.0, True),
    "cold_vs_podman": ("cold create -> first command, times faster than podman", 3.0, True),
    "sustained_per_s": ("sustained create+command+kill per second", 30.0, True),
    "burst_p99_ms": ("50 concurrent creates from the pool, p99 ms", 400.0, False),
    "idle_mib": ("memory per idle sandbox, MiB (MemAvailable drop)", 5.0, False),
    "gvisor_command_ms": ("gVisor commands.run('true') p50 ms", 40.0, False),
    "gvisor_pause_resume_ms": ("gVisor pause -> resume -> first command, ms", 600.0, False),
}


def gvisor_phase(stack: bench.Stack, commands: int, cycles: int) -> dict[str, float]:
    """A gVisor sandbox: ``commands.run("true")`` p50, and pause → connect → first command, back to back."""
    sandbox = Sandbox.create(bench.TEMPLATE, metadata=GVISOR, timeout=bench.SANDBOX_TIMEOUT_S, **stack.opts)
    stack.live.add(sandbox.sandbox_id)
    try:
        runs = []
        for _ in range(commands + 2):
            started = time.perf_counter()
            sandbox.commands.run("true")
            runs.append((time.perf_counter() - started) * 1000)
        round_trips = []
        for _ in range(cycles):
            started = time.perf_counter()
            sandbox.pause()
            sandbox = Sandbox.connect(sandbox.sandbox_id, **stack.opts)
            sandbox.commands.run("true")
            round_trips.append((time.perf_counter() - started) * 1000)
        return {
            "command_p50_ms": bench.percentile(runs[2:], 50),
            "pause_resume_command_p50_ms": bench.percentile(round_trips, 50),
        }
    finally:
        sandbox.kill()
        stack.live.discard(sandbox.sandbox_id)


def ratios(phases: dict[str, Any]) -> dict[str, float | None]:
    """The issue's measures from the phases' results (None where a phase failed)."""

    def found(phase: str, *keys: str) -> float | None:
        value: Any = phases.get(phase, {})
        for key in keys:
            value = value.get(key) if isinstance(value, dict) else None
        return value

    def faster(phase: str) -> float | None:
        podman, ours = found("podman", "run_true", "p50_ms"), found(phase, "create_to_first_echo", "p50_ms")
        return round(podman / ours, 2) if podman and ours else None

    return {
        "warm_vs_podman": faster("warm"),
        "cold_vs_podman": faster("cold"),
        "sustained_per_s": found("sustained", "creates_per_s"),
        "burst_p99_ms": found("burst", "latency", "p99_ms"),
        "idle_mib": found("memory", "per_sandbox_mib_mem_available"),
        "gvisor_command_ms": found("gvisor", "command_p50_ms"),
        "gvisor_pause_resume_ms": found("gvisor", "pause_resume_command_p50_ms"),
    }


def render(measures: dict[str, float | None], phases: dict[str, Any]) -> str:
    lines = [f"{'measure':56} {'now':>8} {'goal':>8}  met", "-" * 80]
    for key, value in measures.items():
        label, goal, higher = GOALS[key]
        met = "" if value is None else ("yes" if (value >= goal) == higher or value == goal else "no")
        shown = "failed" if value is None else f"{value:.1f}"
        lines.append(f"{label:56} {shown:>8} {goal:>8g}  {met}")
    podman = phases.get("podman", {}).get("run_true", {}).get("p50_ms")
    warm, cold = (
        phases.get(name, {}).get("create_to_first_echo", {}).get("p50_ms") for name in ("warm", "cold")
    )
    lines.append(
        f"podman run --rm true: {podman} ms p50 (1,000 idle sandboxes: create_bench.py --fit-verify)"
    )
    # The ratios divide by podman's p50 of a few runs, itself noisy: the times compare runs more steadily.
    lines.append(f"create -> first command, p50: warm {warm} ms, cold {cold} ms")
    memory = phases.get("memory", {})
    if "merge_wait_s" in memory:
        lines.append(
            f"idle sandbox before the kernel merged envd's pages: {memory['per_sandbox_mib_before_merging']} "
            f"MiB ({memory['merge_passes']} passes of ksmd in {memory['merge_wait_s']} s)"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--subnet", default=bench.SUBNET)
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("run as root: the stacks mount overlays, create network namespaces and run crun")
    for key in [k for k in os.environ if k.startswith("E2B_")]:
        del os.environ[key]
    bench.SUBNET = args.subnet

    def say(text: str) -> None:
        print(text, file=sys.stderr, flush=True)

    started = time.perf_counter()
    root = Path(tempfile.mkdtemp(prefix="hutch-quick-bench-"))
    podman_root = Path("/var/cache/hutch-bench/podman")
    phases: dict[str, Any] = {}
    stacks: list[bench.Stack] = []
    try:
        with bench.phase(phases, "podman", say) as entry:
            podman_root.mkdir(parents=True, exist_ok=True)
            entry |= bench.podman_bench(podman_root, root, 5)
        warm = bench.Stack("warm", root, WARM_POOL)
        stacks.append(warm)
        warm.start()
        warm.wait_pool(120)
        with bench.phase(phases, "warm", say) as entry:
            entry |= bench.serial_creates(warm, 15, 2, warm=True, pause_s=0)
        with bench.phase(phases, "burst", say) as entry:
            warm.wait_pool(120)
            entry |= asyncio.run(bench.burst(warm, BURST))
        with bench.phase(phases, "sustained", say) as entry:
            warm.wait_pool(120)
            entry |= asyncio.run(bench.sustained(warm, 10, 4))
        with bench.phase(phases, "memory", say) as entry:
            entry |= bench.idle_memory(warm, 20, 0, parallel=8)
        with bench.phase(phases, "gvisor", say) as entry:
            entry |= gvisor_phase(warm, 10, 3)
        warm.stop()
        cold = bench.Stack("cold", root, 0)
        stacks.append(cold)
        cold.start()
        with bench.phase(phases, "cold", say) as entry:
            entry |= bench.serial_creates(cold, 8, 1, warm=False, pause_s=0.3)
        cold.stop()
    finally:
        for stack in stacks:
            stack.stop()
        bench.podman_cleanup(podman_root)
        shutil.rmtree(root, ignore_errors=True)
    measures = ratios(phases)
    elapsed = round(time.perf_counter() - started, 1)
    if args.json:
        print(
            json.dumps({"measures": measures, "elapsed_s": elapsed, "phases": phases}, indent=2, default=str)
        )
    else:
        print(render(measures, phases))
        print(f"(took {elapsed} s)")


if __name__ == "__main__":
    main()
