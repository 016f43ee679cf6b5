"""Simulate the cluster's placement (``hutch.api.services.placement.order``) at scale, without a cluster.

``--nodes`` nodes (half of 32 vCPUs, 128 GiB and 1 TiB of disk, half of 64 vCPUs, 256 GiB and 2 TiB) take
``--sandboxes`` sandboxes one after another, each on the first node ``order()`` names (its resources then
held there, its template's image then on that node), while a random live sandbox is killed after about
one placement in four. Sandboxes are mostly ``base`` (2 vCPUs, 512 MiB, 1 GiB of disk), then the code
interpreter (2, 1 GiB), the desktop (2, 2 GiB), teams' own templates (4, 4 GiB) and a few big ones (8,
16 GiB). A second phase keeps placing, with no kills, half as many again: past what the cluster holds.

Prints the time of one decision (p50/p99), how evenly memory is used across nodes, sandboxes per node, the
share of placements onto a node that already held the template, and how many the full cluster refused.
``.venv/bin/python bench/placement_bench.py [--nodes 100] [--sandboxes 10000] [--seed 1] [--sample 3]
[--template-bonus B] [--json]``.
"""

from __future__ import annotations

import argparse
import dataclasses
import random
import statistics
import time

from measure import report

from hutch.api.services import placement
from hutch.api.services.placement import Demand, NodeLoad, order

GIB = 1024
NODE_SIZES = [(32, 128 * GIB, 1024 * GIB), (64, 256 * GIB, 2048 * GIB)]
TEAM_TEMPLATES = 40
KILL_CHANCE = 0.25
CPU_OVERCOMMIT = 4.0


def _demand(rng: random.Random) -> Demand:
    """A new sandbox: its template and resources drawn from the mix above; teams' templates by Zipf."""
    kind = rng.random()
    if kind < 0.60:
        return Demand(2, 512, 1 * GIB, "base")
    if kind < 0.80:
        return Demand(2, 1 * GIB, 2 * GIB, "code-interpreter-v1")
    if kind < 0.90:
        return Demand(2, 2 * GIB, 4 * GIB, "desktop")
    team = f"team-{min(int(1 / rng.random()), TEAM_TEMPLATES)}"
    if kind < 0.98:
        return Demand(4, 4 * GIB, 10 * GIB, team)
    return Demand(8, 16 * GIB, 20 * GIB, team)


def _apply(node: NodeLoad, demand: Demand, sign: int) -> NodeLoad:
    return dataclasses.replace(
        node,
        cpu_used=node.cpu_used + sign * demand.cpu_count,
        memory_used_mb=node.memory_used_mb + sign * demand.memory_mb,
        disk_used_mb=node.disk_used_mb + sign * demand.disk_mb,
        templates=node.templates | {demand.template_id} if sign > 0 else node.templates,
    )


class Cluster:
    """The nodes' loads and the live sandboxes, with what each placement and kill does to them."""

    def __init__(self, nodes: int, sample: int, rng: random.Random) -> None:
        self.nodes = [NodeLoad(f"node-{i}", *NODE_SIZES[i % len(NODE_SIZES)]) for i in range(nodes)]
        self.index = {node.node_id: i for i, node in enumerate(self.nodes)}
        self.live: list[tuple[int, Demand]] = []
        self.sample = sample
        self.rng = rng
        self.decisions_us: list[float] = []
        self.placed = self.refused = self.held = 0

    def place(self, demand: Demand) -> None:
        started = time.perf_counter()
        ids = order(self.nodes, demand, sample=self.sample, cpu_overcommit=CPU_OVERCOMMIT, rng=self.rng)
        self.decisions_us.append((time.perf_counter() - started) * 1e6)
        if not ids:
            self.refused += 1
            return
        i = self.index[ids[0]]
        self.held += demand.template_id in self.nodes[i].templates
        self.nodes[i] = _apply(self.nodes[i], demand, +1)
        self.live.append((i, demand))
        self.placed += 1

    def kill_one(self) -> None:
        k = self.rng.randrange(len(self.live))
        self.live[k], self.live[-1] = self.live[-1], self.live[k]
        i, demand = self.live.pop()
        self.nodes[i] = _apply(self.nodes[i], demand, -1)

    def stats(self) -> dict[str, str]:
        memory = [node.memory_used_mb / node.memory_mb for node in self.nodes]
        cpu = [node.cpu_used / (node.cpu_count * CPU_OVERCOMMIT) for node in self.nodes]
        per_node = [0] * len(self.nodes)
        for i, _ in self.live:
            per_node[i] += 1
        decisions = sorted(self.decisions_us)
        return {
            "placed / refused / live": f"{self.placed} / {self.refused} / {len(self.live)}",
            "decision µs (p50, p99)": f"{_pct(decisions, 0.50):.1f}, {_pct(decisions, 0.99):.1f}",
            "memory use (min, mean, max, stddev)": _spread(memory),
            f"cpu use of {CPU_OVERCOMMIT:g}x (min, mean, max, stddev)": _spread(cpu),
            "sandboxes per node (min, max)": f"{min(per_node)}, {max(per_node)}",
            "onto a node holding the template": f"{self.held / max(self.placed, 1):.1%}",
        }


def _pct(ordered: list[float], q: float) -> float:
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))]


def _spread(values: list[float]) -> str:
    mean, stddev = statistics.fmean(values), statistics.pstdev(values)
    return f"{min(values):.3f}, {mean:.3f}, {max(values):.3f}, {stddev:.3f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=100)
    parser.add_argument("--sandboxes", type=int, default=10_000, help="placements of the first phase")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--sample", type=int, default=3, help="nodes compared per placement (K)")
    parser.add_argument(
        "--template-bonus", type=float, default=placement.TEMPLATE_BONUS, help="to compare with another bonus"
    )
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    placement.TEMPLATE_BONUS = args.template_bonus
    rng = random.Random(args.seed)
    cluster = Cluster(args.nodes, args.sample, rng)
    for _ in range(args.sandboxes):
        cluster.place(_demand(rng))
        if cluster.live and rng.random() < KILL_CHANCE:
            cluster.kill_one()
    title = f"placement: {args.nodes} nodes, best of {args.sample}, seed {args.seed}"
    results = {"phase 1": cluster.stats()}
    cluster.decisions_us.clear()
    cluster.placed = cluster.refused = cluster.held = 0
    for _ in range(args.sandboxes // 2):
        cluster.place(_demand(rng))
    results["phase 2 (no kills, past capacity)"] = cluster.stats()
    if args.json:
        report(title, results, as_json=True)
        return
    print(title)
    for phase, rows in results.items():
        report(phase, rows, as_json=False)


if __name__ == "__main__":
    main()
