"""A cluster's placement as the API carries it out: only ready, undrained, heartbeating nodes; the next
node when one is full or does not answer; 429 only when none takes the sandbox; a lost node's calls
refused, its kills left to it."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from hutch.api.services.cluster import ClusterNodes, LostNode
from hutch.catalog import Catalog
from hutch.catalog.repos import nodes
from hutch.errors import NodeFull, NodeUnavailable, QuotaExceeded
from hutch.runtime.types import SandboxHandle, SandboxSpec, TemplateImage
from tests.catalog.test_nodes import node

SPEC = SandboxSpec(template=TemplateImage("base", Path("/")), cpu_count=2, memory_mb=512)


class _Node:
    """A node's client that answers as told, and remembers the creates it was asked for."""

    def __init__(self, node_id: str, answer: Exception | None, asked: list[str]) -> None:
        self.node_id, self._answer, self._asked = node_id, answer, asked

    async def create(self, spec: SandboxSpec) -> SandboxHandle:
        self._asked.append(self.node_id)
        if self._answer is not None:
            raise self._answer
        return SandboxHandle("sbx", "base", "10.0.0.2", self.node_id, datetime.now(UTC))


async def _cluster(tmp_path: Path, answers: dict[str, Exception | None], **rows) -> tuple[ClusterNodes, list]:  # type: ignore[no-untyped-def]
    catalog = await Catalog.open(f"sqlite+aiosqlite:///{tmp_path / 'c.db'}")
    now = datetime.now(UTC)
    async with catalog.transaction() as session:
        for node_id in answers:
            found = node(node_id, heartbeat=now)
            for name, value in rows.get(node_id, {}).items():
                setattr(found, name, value)
            await nodes.register(session, found)
    cluster = ClusterNodes(catalog, key="k" * 40, lost_after_s=6, rng=random.Random(1))
    asked: list[str] = []
    cluster.client = lambda row: _Node(row.node_id, answers[row.node_id], asked)  # type: ignore[method-assign,assignment,return-value]
    return cluster, asked


async def test_a_full_or_silent_node_is_passed_over_for_the_next(tmp_path: Path) -> None:
    answers: dict[str, Exception | None] = {"a": NodeFull("full"), "b": NodeUnavailable("down"), "c": None}
    cluster, asked = await _cluster(tmp_path, answers, c={"memory_used_mb": 8192})  # c: the busiest
    handle = await cluster.place(SPEC)
    assert handle.node_id == "c" and sorted(asked[:2]) == ["a", "b"] and asked[2:] == ["c"]


async def test_only_ready_undrained_heartbeating_nodes_are_tried(tmp_path: Path) -> None:
    old = datetime.now(UTC) - timedelta(seconds=60)
    cluster, asked = await _cluster(
        tmp_path,
        {"drained": None, "lost": None, "silent": None, "ok": None},
        drained={"draining": True},
        lost={"state": "lost"},
        silent={"heartbeat_at": old},
    )
    for _ in range(5):
        assert (await cluster.place(SPEC)).node_id == "ok"
    assert set(asked) == {"ok"}


async def test_no_room_anywhere_is_a_429_naming_what_was_asked(tmp_path: Path) -> None:
    cluster, asked = await _cluster(tmp_path, {"a": NodeFull("full"), "b": None}, b={"memory_used_mb": 16384})
    with pytest.raises(
        QuotaExceeded, match="the cluster is full: no node has room for a sandbox of 2 vCPUs, 512 MiB"
    ):
        await cluster.place(SPEC)
    assert asked == ["a"]  # b has no room by its own heartbeat: not even asked


async def test_a_lost_node_refuses_everything_but_a_kill(tmp_path: Path) -> None:
    cluster, _ = await _cluster(tmp_path, {"a": None}, a={"state": "lost"})
    held = await cluster.holding("a")
    assert isinstance(held, LostNode)
    await held.kill("sbx")  # left to the node: it ends what no row knows when it is back
    with pytest.raises(NodeUnavailable, match="node a is lost"):
        await held.resume("sbx")
    assert isinstance(await cluster.holding("never-registered"), LostNode)
