"""Benchmark the cluster path against one machine, in the same run, through the official SDK with
``E2B_DOMAIN`` only (TLS both ways):

* ``hutch up`` (its TLS edge, a warm pool of 3 base sandboxes);
* a cluster on this machine (:mod:`tests.cluster.harness`): PostgreSQL, 3 ``hutch node`` each in its own
  network namespace (a warm pool of 1 each), 2 ``hutch api`` and 2 ``hutch proxy`` replicas behind
  HAProxy.

For each: create → first ``commands.run("echo hi")`` (p50/p95/p99, one at a time, the pools refilled
between creates), a command on a running sandbox (p50), and sustained creates/s (create, one command,
kill, from ``--workers`` threads for ``--seconds``). The cluster's processes share this machine's cores
with each other, so its creates/s says what the path costs, not what many machines give. In the cluster
also: resume → first command of a sandbox paused with its files only (64 MiB written), on its own node
vs moved from its node being drained.

Run as root: ``.venv/bin/python bench/cluster_bench.py [--runs 30] [--seconds 20] [--json]``.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from e2b import Sandbox
from measure import report, summary
from tests import edge_ca
from tests.cluster.harness import Cluster, running_cluster
from tests.stack import start_stack, stop_stack

# Apart from the tests' subnets and links (see tests/cluster/harness.py and tests/stack.py).
ONE_MACHINE_SUBNET = "10.240.0.0/16"
CLUSTER_WORKER, CLUSTER_SUBNETS = 9, 236


def first_command(opts: dict, runs: int, seen: set[str]) -> dict:
    samples = []
    for _ in range(runs):
        time.sleep(1.0)  # the pools refill: every create is a claim
        started = time.perf_counter()
        sandbox = Sandbox.create(**opts)
        sandbox.commands.run("echo hi")
        samples.append((time.perf_counter() - started) * 1000)
        seen.add(sandbox.sandbox_id)
        sandbox.kill()
    return summary(samples, 1)


def command(opts: dict, runs: int, seen: set[str]) -> dict:
    sandbox = Sandbox.create(**opts)
    seen.add(sandbox.sandbox_id)
    try:
        samples = []
        for _ in range(runs):
            started = time.perf_counter()
            sandbox.commands.run("true")
            samples.append((time.perf_counter() - started) * 1000)
        return summary(samples, 1)
    finally:
        sandbox.kill()


def sustained(opts: dict, workers: int, seconds: float, seen: set[str]) -> dict:
    done, failed = [0], [0]
    lock = threading.Lock()
    deadline = time.monotonic() + seconds

    def loop() -> None:
        while time.monotonic() < deadline:
            try:
                sandbox = Sandbox.create(**opts)
                with lock:
                    seen.add(sandbox.sandbox_id)
                sandbox.commands.run("echo hi")
                sandbox.kill()
                with lock:
                    done[0] += 1
            except Exception:
                with lock:
                    failed[0] += 1

    threads = [threading.Thread(target=loop) for _ in range(workers)]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.monotonic() - started
    return {"creates_per_s": round(done[0] / elapsed, 1), "cycles": done[0], "failed": failed[0]}


def resumes(cluster: Cluster, runs: int) -> dict:
    """Resume → first command of a sandbox paused with its files only: where it is, and moved off its
    draining node (its 64 MiB file copied to another node)."""
    timings: dict[str, list[float]] = {"in_place_ms": [], "moved_ms": []}
    for _ in range(runs):
        for kind, samples in timings.items():
            sandbox = Sandbox.create(**cluster.opts)
            cluster.seen.add(sandbox.sandbox_id)
            node = cluster.node_of(sandbox.sandbox_id)
            sandbox.commands.run("head -c 64M /dev/urandom > /home/user/data")
            with cluster.team() as team:
                team.post(f"/sandboxes/{sandbox.sandbox_id}/pause", json={"memory": False}).raise_for_status()
            draining = kind == "moved_ms"
            if draining:
                with cluster.admin() as admin:
                    admin.post(f"/nodes/{node}", json={"status": "draining"}).raise_for_status()
            try:
                started = time.perf_counter()
                resumed = Sandbox.connect(sandbox.sandbox_id, **cluster.opts)
                resumed.commands.run("true")
                samples.append((time.perf_counter() - started) * 1000)
                assert (cluster.node_of(sandbox.sandbox_id) != node) == draining
            finally:
                if draining:
                    with cluster.admin() as admin:
                        admin.post(f"/nodes/{node}", json={"status": "ready"}).raise_for_status()
                sandbox.kill()
    return {kind: summary(samples, 1) for kind, samples in timings.items()}


def measure(opts: dict, args: argparse.Namespace, seen: set[str]) -> dict:
    return {
        "create_first_command_ms": first_command(opts, args.runs, seen),
        "command_ms": command(opts, args.runs * 3, seen),
        "sustained": sustained(opts, args.workers, args.seconds, seen),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--workers", type=int, default=6)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("run as root: the stacks mount overlays and create network namespaces")
    os.environ.update(edge_ca.trust())
    os.environ.update({"HUTCH_RUNTIME__EGRESS_INTERFACE": "off", **edge_ca.EDGE_OFF})
    results: dict[str, dict] = {}  # each reported as soon as it is measured
    seen: set[str] = set()
    stack = start_stack(
        Path(tempfile.mkdtemp(prefix="hutch-bench-")),
        subnet=ONE_MACHINE_SUBNET,
        edge=True,
        settings={"HUTCH_RUNTIME__WARM_POOL": '{"base": 3}'},
    )
    try:
        stack.seen = seen
        results["hutch up"] = measure({"domain": stack.domain, "api_key": stack.api_key}, args, seen)
        report("hutch up", results["hutch up"], as_json=args.json)
    finally:
        stop_stack(stack)
    base = Path(tempfile.mkdtemp(prefix="hutch-bench-cluster-"))
    with running_cluster(base, worker=CLUSTER_WORKER, subnet_base=CLUSTER_SUBNETS) as cluster:
        results["cluster (3 nodes)"] = measure(cluster.opts, args, cluster.seen)
        results["cluster (3 nodes)"]["resume_filesystem_pause"] = resumes(cluster, max(3, args.runs // 3))
        report("cluster (3 nodes)", results["cluster (3 nodes)"], as_json=args.json)


if __name__ == "__main__":
    main()
