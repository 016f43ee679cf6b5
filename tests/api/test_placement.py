"""Placement: nodes that cannot hold a sandbox are never offered; memory and disk are never overcommitted, CPU
only by the factor; the best of a random sample comes first, every other node that fits after it; a node
holding the template is preferred; and placements spread over equal nodes."""

from __future__ import annotations

import dataclasses
import random

import pytest

from hutch.api.services.placement import Demand, NodeLoad, fits, order

GIB = 1024


def node(node_id: str, **fields: object) -> NodeLoad:
    """A node of 32 vCPUs, 128 GiB of memory and 1 TiB of disk, unless ``fields`` say otherwise."""
    defaults: dict[str, object] = {"cpu_count": 32, "memory_mb": 128 * GIB, "disk_mb": 1024 * GIB}
    return NodeLoad(node_id, **{**defaults, **fields})  # type: ignore[arg-type]


def demand(
    cpu_count: int = 2, memory_mb: int = 512, disk_mb: int = 1024, template_id: str = "base"
) -> Demand:
    """A sandbox of the base template: 2 vCPUs, 512 MiB of memory, 1 GiB of disk, unless told otherwise."""
    return Demand(cpu_count, memory_mb, disk_mb, template_id)


def place(nodes: list[NodeLoad], node_id: str, wanted: Demand) -> list[NodeLoad]:
    """The loads once ``wanted`` runs on node ``node_id`` (which then holds its template)."""
    return [
        dataclasses.replace(
            n,
            cpu_used=n.cpu_used + wanted.cpu_count,
            memory_used_mb=n.memory_used_mb + wanted.memory_mb,
            disk_used_mb=n.disk_used_mb + wanted.disk_mb,
            templates=n.templates | {wanted.template_id},
        )
        if n.node_id == node_id
        else n
        for n in nodes
    ]


def test_memory_is_never_overcommitted() -> None:
    half_full = node("a", memory_mb=4 * GIB, memory_used_mb=3 * GIB)
    assert fits(half_full, demand(memory_mb=GIB))
    assert not fits(half_full, demand(memory_mb=GIB + 1))
    assert not fits(half_full, demand(memory_mb=GIB + 1), cpu_overcommit=100.0)
    assert order([half_full], demand(memory_mb=GIB + 1)) == []


def test_disk_is_never_overcommitted() -> None:
    almost_full = node("a", disk_mb=10 * GIB, disk_used_mb=9 * GIB)
    assert fits(almost_full, demand(disk_mb=GIB))
    assert not fits(almost_full, demand(disk_mb=GIB + 1))
    assert not fits(almost_full, demand(disk_mb=GIB + 1), cpu_overcommit=100.0)
    assert order([almost_full], demand(disk_mb=GIB + 1)) == []


def test_cpu_is_overcommitted_by_the_factor_and_no_more() -> None:
    eight = node("a", cpu_count=8, cpu_used=30)
    assert fits(eight, demand(cpu_count=2))  # 32 of 8 times 4
    assert not fits(eight, demand(cpu_count=3))
    assert fits(node("b", cpu_count=8, cpu_used=6), demand(cpu_count=2), cpu_overcommit=1.0)
    assert not fits(node("b", cpu_count=8, cpu_used=7), demand(cpu_count=2), cpu_overcommit=1.0)
    assert fits(node("c", cpu_count=8, cpu_used=10), demand(cpu_count=2), cpu_overcommit=1.5)  # 12 of 12
    assert not fits(node("c", cpu_count=8, cpu_used=11), demand(cpu_count=2), cpu_overcommit=1.5)
    assert order([eight], demand(cpu_count=3)) == []
    assert order([eight], demand(cpu_count=3), cpu_overcommit=5.0) == ["a"]


def test_nodes_that_do_not_fit_are_never_returned() -> None:
    nodes = [
        node("free"),
        node("no-memory", memory_used_mb=128 * GIB - 100),
        node("no-disk", disk_used_mb=1024 * GIB - 100),
        node("no-cpu", cpu_used=127),
        node("busy", cpu_used=100, memory_used_mb=100 * GIB, disk_used_mb=500 * GIB),
        node("tiny", cpu_count=1, memory_mb=256, disk_mb=512),
    ]
    for seed in range(50):
        for sample in (1, 2, 3, 10):
            got = order(nodes, demand(), sample=sample, rng=random.Random(seed))
            assert sorted(got) == ["busy", "free"]


def test_an_empty_or_full_cluster_gives_nothing() -> None:
    assert order([], demand(), rng=random.Random(0)) == []
    full = [node(f"n{i}", memory_used_mb=128 * GIB) for i in range(5)]
    assert order(full, demand(), rng=random.Random(0)) == []
    too_big = demand(cpu_count=2, memory_mb=129 * GIB)
    assert order([node("a"), node("b")], too_big, rng=random.Random(0)) == []


def test_every_fitting_node_appears_exactly_once() -> None:
    rng = random.Random(7)
    for _ in range(300):
        nodes = [
            node(
                f"n{i}",
                cpu_count=rng.choice((4, 32, 64)),
                memory_mb=rng.choice((8, 128, 256)) * GIB,
                disk_mb=rng.choice((64, 1024)) * GIB,
                cpu_used=rng.randint(0, 260),
                memory_used_mb=rng.randint(0, 256 * GIB),
                disk_used_mb=rng.randint(0, 1024 * GIB),
                templates=frozenset(rng.sample(["base", "desktop", "custom"], rng.randint(0, 3))),
            )
            for i in range(rng.randint(0, 40))
        ]
        wanted = demand(rng.choice((1, 2, 8)), rng.choice((512, 2048, 16 * GIB)), rng.choice((1, 20)) * GIB)
        got = order(nodes, wanted, sample=rng.randint(1, 5), rng=rng)
        assert len(got) == len(set(got))
        assert set(got) == {n.node_id for n in nodes if fits(n, wanted)}


def test_the_sample_comes_first_then_the_rest_by_score() -> None:
    # Memory use alone tells these nodes apart: n0 the least loaded, n19 the most.
    nodes = [node(f"n{i}", memory_used_mb=i * 4 * GIB) for i in range(20)]
    rank = {n.node_id: i for i, n in enumerate(nodes)}
    firsts = set()
    for seed in range(200):
        got = [rank[node_id] for node_id in order(nodes, demand(), sample=3, rng=random.Random(seed))]
        assert got[:3] == sorted(got[:3])
        assert got[3:] == sorted(got[3:])
        firsts.add(got[0])
    # The first is the best of three drawn, not the best of all: never one of the two most loaded.
    assert len(firsts) > 5
    assert max(firsts) <= 17
    shuffled = random.Random(1).sample(nodes, len(nodes))
    assert order(shuffled, demand(), sample=20, rng=random.Random(0)) == [n.node_id for n in nodes]
    assert order(shuffled, demand(), sample=50, rng=random.Random(0)) == [n.node_id for n in nodes]


def test_memory_weighs_more_than_cpu_and_disk() -> None:
    memory_busy = node("memory", memory_used_mb=64 * GIB)  # half its memory
    cpu_busy = node("cpu", cpu_used=64)  # half what it may promise
    disk_busy = node("disk", disk_used_mb=512 * GIB)  # half its disk
    for seed in range(20):
        got = order([memory_busy, cpu_busy, disk_busy], demand(), rng=random.Random(seed))
        assert got == ["disk", "cpu", "memory"]


def test_a_node_holding_the_template_wins_when_loads_are_equal() -> None:
    wanted = demand(template_id="desktop")
    for holder in range(4):
        base = frozenset({"base"})
        nodes = [node(f"n{i}", cpu_used=10, memory_used_mb=20 * GIB, templates=base) for i in range(4)]
        nodes[holder] = dataclasses.replace(nodes[holder], templates=frozenset({"base", "desktop"}))
        for seed in range(20):
            assert order(nodes, wanted, sample=4, rng=random.Random(seed))[0] == f"n{holder}"
        # Drawn or not, it leads the others when it is not the first.
        for seed in range(20):
            got = order(nodes, wanted, sample=1, rng=random.Random(seed))
            assert got[0] == f"n{holder}" or got[1] == f"n{holder}"


def test_the_template_bonus_does_not_outweigh_a_much_heavier_load() -> None:
    wanted = demand(template_id="desktop")
    holder = node("holder", cpu_used=120, memory_used_mb=120 * GIB, templates=frozenset({"desktop"}))
    idle = node("idle")
    for seed in range(20):
        assert order([holder, idle], wanted, sample=2, rng=random.Random(seed)) == ["idle", "holder"]


def test_sampling_spreads_placements_over_equal_nodes() -> None:
    rng = random.Random(42)
    nodes = [node(f"n{i}") for i in range(10)]
    wanted = demand(cpu_count=1, memory_mb=256, disk_mb=512)
    counts = dict.fromkeys((n.node_id for n in nodes), 0)
    for _ in range(1000):
        chosen = order(nodes, wanted, rng=rng)[0]
        counts[chosen] += 1
        nodes = place(nodes, chosen, wanted)
    assert sum(counts.values()) == 1000
    assert max(counts.values()) - min(counts.values()) <= 3


def test_the_same_seed_gives_the_same_order() -> None:
    nodes = [node(f"n{i}", cpu_used=i % 3, memory_used_mb=(i % 4) * GIB) for i in range(30)]
    firsts = set()
    for seed in range(30):
        got = order(nodes, demand(), rng=random.Random(seed))
        assert got == order(nodes, demand(), rng=random.Random(seed))
        firsts.add(got[0])
    assert len(firsts) > 1


def test_a_sample_of_no_node_is_refused() -> None:
    with pytest.raises(ValueError):
        order([node("a")], demand(), sample=0)
