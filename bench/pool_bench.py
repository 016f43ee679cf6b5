"""Benchmark what refilling the warm pool costs a live sandbox: its command latency while the pool refills.

Starts its own stack (``hutch up --detach``, temporary data, free ports, subnet 10.12.0.0/16 unless
``--subnet``) with a warm pool of ``--pool`` base sandboxes, creates one live sandbox and times
``commands.run("true")`` in it (p50/p95/p99):

* ``quiet``: nothing else happening;
* ``refilling``: while ``--churners`` loops create and kill sandboxes, so that every create takes one from
  the pool and the pool keeps starting new ones (each start runs envd's Python in the new sandbox).

Run it against two trees to compare (``PYTHONPATH=<other tree>/src`` runs the other code with this script):
``.venv/bin/python bench/pool_bench.py [--runs 200] [--churners 2] [--json]``.
"""

from __future__ import annotations

import argparse
import threading
import time

from e2b import Sandbox
from measure import own_stack, report, summary

SUBNET = "10.12.0.0/16"
TEMPLATE = "base"


def _latencies(sandbox: Sandbox, runs: int) -> list[float]:
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        sandbox.commands.run("true")
        samples.append((time.perf_counter() - started) * 1000)
    return samples


def _churn(opts: dict, seen: set[str], stop: threading.Event, counted: list[int]) -> None:
    while not stop.is_set():
        sandbox = Sandbox.create(TEMPLATE, **opts)
        seen.add(sandbox.sandbox_id)
        sandbox.kill()
        counted.append(1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=200, help="commands timed per phase")
    parser.add_argument("--pool", type=int, default=2, help="warm pool size")
    parser.add_argument("--churners", type=int, default=2, help="create-and-kill loops while refilling")
    parser.add_argument("--subnet", default=SUBNET)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    seen: set[str] = set()
    settings = {"HUTCH_RUNTIME__WARM_POOL": {TEMPLATE: args.pool}}
    results: dict[str, object] = {}
    with own_stack(args.subnet, settings, seen) as opts:
        live = Sandbox.create(TEMPLATE, **opts)
        seen.add(live.sandbox_id)
        try:
            _latencies(live, 20)
            results["quiet_ms"] = summary(_latencies(live, args.runs))
            stop, counted = threading.Event(), []
            churners = [
                threading.Thread(target=_churn, args=(opts, seen, stop, counted))
                for _ in range(args.churners)
            ]
            for churner in churners:
                churner.start()
            time.sleep(2)  # the pool is refilling from here on
            started = time.monotonic()
            results["refilling_ms"] = summary(_latencies(live, args.runs))
            elapsed = time.monotonic() - started
            stop.set()
            for churner in churners:
                churner.join()
            results["creates_per_s_meanwhile"] = round(len(counted) / max(elapsed, 1e-9), 1)
        finally:
            live.kill()
    report("pool refill vs a live sandbox's commands", results, as_json=args.json)


if __name__ == "__main__":
    main()
