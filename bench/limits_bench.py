"""Noisy neighbours: how much a fork bomb, a memory bomb, a CPU hog and a disk filler in one sandbox slow
down a neighbour's ``commands.run("true")`` (p50 and p95, against the same neighbour at rest), through the
official SDK.

It starts its own stack (``hutch up --detach``, temp data, free ports, subnet 10.15.0.0/16) and stops it;
anything left behind is an error.
Run as root: ``python bench/limits_bench.py [--runs 50]``.
"""

from __future__ import annotations

import argparse
import json
import time

from e2b import Sandbox
from measure import own_stack, timed

SUBNET = "10.15.0.0/16"
BOMBS = {
    "fork bomb": "bash -c ':(){ :|:& };:'",
    # Allocates until the sandbox's OOM killer ends it, over and over.
    "memory bomb": "while :; do python3 -c 'b = []\nwhile True: b.append(bytearray(64 * 2**20))'; done",
    "CPU hog (4 busy loops)": "for i in 1 2 3 4; do (while :; do :; done) & done; wait",
    # Fills its disk quota, then keeps trying to write.
    "disk filler": "dd if=/dev/zero of=/home/user/fill bs=1M; while :; do echo x >> /home/user/fill; done",
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=50)
    args = parser.parse_args()
    results: dict = {}
    seen: set[str] = set()
    with own_stack(SUBNET, {"HUTCH_RUNTIME__WARM_POOL": {"base": 0}}, seen) as opts:
        neighbour = Sandbox.create(**opts)
        seen.add(neighbour.sandbox_id)
        results["at rest"] = timed(lambda: neighbour.commands.run("true"), args.runs)
        for name, command in BOMBS.items():
            bomb = Sandbox.create(**opts)
            seen.add(bomb.sandbox_id)
            bomb.commands.run(command, background=True, timeout=0)
            time.sleep(2)  # let it take what it can
            results[name] = timed(lambda: neighbour.commands.run("true", timeout=30), args.runs)
            bomb.kill()
        rest = results["at rest"]["median_ms"]
        for name in BOMBS:
            results[name]["p50_vs_rest"] = round(results[name]["median_ms"] / rest, 2)
        neighbour.kill()
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
