"""Chaos benchmark: create/kill cycles through the official SDK while the whole stack is killed with SIGKILL
at random moments and restarted; then 100 running sandboxes across one more crash.

It counts what must stay zero: sandboxes lost (a running sandbox that is not listed or does not answer after
a restart) and what is left behind at the end (mounts, network namespaces, veths, cgroups, processes,
directories). It starts its own stack (``hutch up --detach``, data under a temp directory, free ports, subnet
10.14.0.0/16) and stops it at the end. Run as root: ``python bench/chaos_bench.py [--cycles 1000]``.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from e2b import Sandbox
from measure import free_port

from hutch.runtime.leftovers import leftovers

SUBNET = "10.14.0.0/16"
HUTCH = str(Path(sys.executable).with_name("hutch"))


class Stack:
    """A detached ``hutch up`` that can be crashed and restarted on the same data and ports."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self.env_file = base / "env.local"
        self.env = {
            **os.environ,
            "HUTCH_DATA_DIR": str(base / "data"),
            "HUTCH_API__PORT": str(free_port()),
            "HUTCH_PROXY__PORT": str(free_port()),
            "HUTCH_RUNTIME__SUBNET": SUBNET,
            "HUTCH_RUNTIME__WARM_POOL": json.dumps({"base": 4}),
        }
        self.opts: dict[str, str] = {}

    @property
    def pid(self) -> int:
        return int((self.base / "data" / "hutch.pid").read_text())

    def up(self) -> float:
        start = time.perf_counter()
        subprocess.run(
            [HUTCH, "up", "--detach", "--env-file", str(self.env_file)], env=self.env, check=True,
            stdout=subprocess.DEVNULL,
        )  # fmt: skip
        values = dict(line.split("=", 1) for line in self.env_file.read_text().splitlines() if "=" in line)
        self.opts = {
            "api_key": values["E2B_API_KEY"],
            "api_url": values["E2B_API_URL"],
            "sandbox_url": values["E2B_SANDBOX_URL"],
        }
        return time.perf_counter() - start

    def crash(self) -> None:
        pid = self.pid
        os.killpg(pid, signal.SIGKILL)
        while Path(f"/proc/{pid}").exists():
            time.sleep(0.01)

    def down(self) -> None:
        subprocess.run([HUTCH, "down"], env=self.env, check=False, stdout=subprocess.DEVNULL)


def _alive(stack: Stack, sandbox_id: str) -> bool:
    try:
        sandbox = Sandbox.connect(sandbox_id, **stack.opts)
        return sandbox.commands.run("echo ok", timeout=10).stdout.strip() == "ok"
    except Exception:
        return False


def _listed(stack: Stack) -> set[str]:
    paginator = Sandbox.list(**stack.opts)
    ids: set[str] = set()
    while paginator.has_next:
        ids.update(s.sandbox_id for s in paginator.next_items())
    return ids


def _restart_and_check(stack: Stack, kept: set[str], results: dict) -> None:
    results["restart_s"].append(round(stack.up(), 2))
    listed = _listed(stack)
    for sandbox_id in list(kept):
        if sandbox_id not in listed or not _alive(stack, sandbox_id):
            reason = "not listed" if sandbox_id not in listed else "does not answer"
            results["lost"].append(f"{sandbox_id} ({reason}, restart {len(results['restart_s'])})")
            kept.discard(sandbox_id)


def run(args: argparse.Namespace) -> dict:
    rng = random.Random(args.seed)
    base = Path(tempfile.mkdtemp(prefix="hutch-chaos-"))
    stack = Stack(base)
    seen: set[str] = set()
    kept: set[str] = set()
    results: dict = {"cycles": 0, "crashes": 0, "errors_in_crash_windows": 0, "lost": [], "restart_s": []}
    started = time.perf_counter()
    try:
        stack.up()
        for cycle in range(args.cycles):
            crash_now = rng.random() < 1 / args.crash_every
            timer = threading.Timer(rng.uniform(0, 0.05), stack.crash) if crash_now else None
            if timer:
                timer.start()
            try:
                sandbox = Sandbox.create(**stack.opts)
                seen.add(sandbox.sandbox_id)
                sandbox.commands.run("echo hi", timeout=10)
                if len(kept) < args.keep and cycle % 10 == 0:
                    kept.add(sandbox.sandbox_id)
                else:
                    sandbox.kill()
            except Exception:
                if not timer:
                    raise
                results["errors_in_crash_windows"] += 1
            if timer:
                timer.join()
                results["crashes"] += 1
                _restart_and_check(stack, kept, results)
            results["cycles"] += 1
        # 100 running sandboxes across one more crash.
        survivors = [Sandbox.create(**stack.opts) for _ in range(args.survivors)]
        seen.update(s.sandbox_id for s in survivors)
        kept.update(s.sandbox_id for s in survivors)
        stack.crash()
        results["crashes"] += 1
        _restart_and_check(stack, kept, results)
        results["survivors_working"] = sum(1 for s in survivors if s.sandbox_id in kept)
        for sandbox_id in kept:
            Sandbox.kill(sandbox_id, **stack.opts)
    finally:
        stack.down()
        results["seconds"] = round(time.perf_counter() - started, 1)
        results["leftovers"] = leftovers(base / "data", SUBNET, seen)
        if not args.keep_data:
            shutil.rmtree(base, ignore_errors=True)
    results["sandboxes"] = len(seen)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cycles", type=int, default=1000)
    parser.add_argument("--crash-every", type=float, default=50, help="mean cycles between crashes")
    parser.add_argument("--keep", type=int, default=20, help="sandboxes kept running across the crashes")
    parser.add_argument("--survivors", type=int, default=100)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--keep-data", action="store_true")
    results = run(parser.parse_args())
    print(json.dumps(results, indent=2))
    if results["lost"] or results["leftovers"]:
        sys.exit(1)


if __name__ == "__main__":
    main()
