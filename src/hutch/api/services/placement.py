"""Placement: which node of the cluster a new sandbox goes to. Best of K, as E2B's orchestrator places: K
nodes sampled at random among those that fit, the least loaded of them first, so that API replicas deciding
at once spread their sandboxes rather than all pick the one least loaded node. Pure: the caller reads the
loads, and tries the nodes in the order given until one admits the sandbox."""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

# How much the fraction of each resource in use after the placement counts in a node's score. Memory most:
# it is never overcommitted, and a sandbox holds all of its own whether busy or idle.
MEMORY_WEIGHT = 0.5
CPU_WEIGHT = 0.3
DISK_WEIGHT = 0.2
# Taken off the score of a node that already holds the template's image (the sandbox starts without a copy
# first): it wins over a node up to this much less loaded. Small: most placements are of templates most nodes
# hold, and a larger bonus piles a rare template's sandboxes onto its few holders.
TEMPLATE_BONUS = 0.02


@dataclass(frozen=True)
class NodeLoad:
    """A node as placement sees it: its capacity, what its sandboxes hold of it, and the templates whose
    images it holds."""

    node_id: str
    # What the node offers to sandboxes.
    cpu_count: int
    memory_mb: int
    disk_mb: int
    # What its sandboxes were given, summed.
    cpu_used: int = 0
    memory_used_mb: int = 0
    disk_used_mb: int = 0
    templates: frozenset[str] = frozenset()


@dataclass(frozen=True)
class Demand:
    """What a new sandbox needs."""

    cpu_count: int
    memory_mb: int
    disk_mb: int
    template_id: str


def fits(node: NodeLoad, demand: Demand, *, cpu_overcommit: float = 4.0) -> bool:
    """Whether the node has room for the sandbox: memory and disk are never overcommitted; its vCPUs may be
    promised ``cpu_overcommit`` times over (sandboxes seldom use all theirs)."""
    return (
        node.memory_used_mb + demand.memory_mb <= node.memory_mb
        and node.disk_used_mb + demand.disk_mb <= node.disk_mb
        and node.cpu_used + demand.cpu_count <= node.cpu_count * cpu_overcommit
    )


def _share(used: float, offered: float) -> float:
    return used / offered if offered > 0 else 1.0


def _score(node: NodeLoad, demand: Demand, cpu_overcommit: float) -> float:
    """The node's score for the sandbox, the lower the better: the weighted fractions of its memory, CPU (of
    what it may promise) and disk in use once the sandbox is placed there, less the template bonus."""
    score = (
        MEMORY_WEIGHT * _share(node.memory_used_mb + demand.memory_mb, node.memory_mb)
        + CPU_WEIGHT * _share(node.cpu_used + demand.cpu_count, node.cpu_count * cpu_overcommit)
        + DISK_WEIGHT * _share(node.disk_used_mb + demand.disk_mb, node.disk_mb)
    )
    return score - TEMPLATE_BONUS if demand.template_id in node.templates else score


def order(
    nodes: Sequence[NodeLoad],
    demand: Demand,
    *,
    sample: int = 3,
    cpu_overcommit: float = 4.0,
    rng: random.Random | None = None,
) -> list[str]:
    """The ids of the nodes to try for the sandbox, best first; empty when none fits (the cluster is full).

    ``sample`` nodes drawn at random among those that fit come first, the best scored of them first; then
    every other node that fits, the best scored first, for a caller to try next when a node turns out to be
    at capacity. Nodes of equal score keep the order they were drawn in, and the others the order of
    ``nodes``. ``rng`` draws the sample (default: the ``random`` module's)."""
    if sample < 1:
        raise ValueError(f"placement samples at least one node, not {sample}")
    scored = [
        (_score(node, demand, cpu_overcommit), node.node_id)
        for node in nodes
        if fits(node, demand, cpu_overcommit=cpu_overcommit)
    ]
    drawn = (rng or random).sample(range(len(scored)), min(sample, len(scored)))
    first = sorted((scored[index][0], position, index) for position, index in enumerate(drawn))
    taken = set(drawn)
    rest = sorted((score, index) for index, (score, _) in enumerate(scored) if index not in taken)
    return [scored[entry[-1]][1] for entry in first] + [scored[index][1] for _, index in rest]
