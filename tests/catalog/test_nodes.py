"""Nodes in the catalog: registration and heartbeats, the operator's drain, silent nodes marked lost with
their sandboxes, a node taking its sandboxes back, and the once-only duties' lock (SQLite and PostgreSQL)."""

from __future__ import annotations

import asyncio
import contextlib
from datetime import UTC, datetime, timedelta

import pytest

from hutch.catalog import Catalog
from hutch.catalog.models import NodeRow
from hutch.catalog.repos import nodes, sandboxes
from tests.catalog.test_sandboxes import add, make_team, row

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


def node(node_id: str, *, heartbeat: datetime = NOW) -> NodeRow:
    return NodeRow(
        node_id=node_id, api_address=f"{node_id}:5007", traffic_address=f"{node_id}:5008", state="ready",
        draining=False, cpu_count=8, memory_mb=16384, disk_mb=100_000, cpu_used=0, memory_used_mb=0,
        disk_used_mb=0, sandboxes=0, templates=["base"], version="1", registered_at=heartbeat,
        heartbeat_at=heartbeat,
    )  # fmt: skip


async def register(catalog: Catalog, *rows: NodeRow) -> None:
    async with catalog.transaction() as session:
        for item in rows:
            await nodes.register(session, item)


async def states(catalog: Catalog) -> dict[str, str]:
    async with catalog.transaction() as session:
        return {row.sandbox_id: row.state for row in await sandboxes.on_node(session, "a")}


async def test_registering_again_keeps_the_drain_and_refreshes_the_rest(catalog: Catalog) -> None:
    await register(catalog, node("a"))
    async with catalog.transaction() as session:
        await nodes.set_draining(session, "a", True)
    again = node("a")
    again.api_address = "moved:5007"
    await register(catalog, again)
    async with catalog.transaction() as session:
        found = await nodes.get_or_raise(session, "a")
    assert (found.api_address, found.draining, found.state) == ("moved:5007", True, "ready")


async def test_silent_nodes_are_marked_lost_with_their_running_sandboxes(catalog: Catalog) -> None:
    team = await make_team(catalog, "t")
    await register(catalog, node("a", heartbeat=NOW - timedelta(seconds=30)), node("b"))
    await add(
        catalog,
        row("sbxrunning", team, node_id="a"),
        row("sbxpaused", team, node_id="a", state="paused"),
        row("sbxonb", team, node_id="b"),
    )
    async with catalog.transaction() as session:
        lost = await nodes.mark_lost(session, silent_since=NOW - timedelta(seconds=6))
    assert lost == ["a"]
    assert await states(catalog) == {"sbxrunning": "lost", "sbxpaused": "paused"}
    async with catalog.transaction() as session:
        assert (await sandboxes.get(session, "sbxonb")).state == "running"  # type: ignore[union-attr]
        # Marked once: a second round finds nothing new.
        assert await nodes.mark_lost(session, silent_since=NOW - timedelta(seconds=6)) == []


async def test_a_node_back_takes_what_it_runs_and_forgets_the_rest(catalog: Catalog) -> None:
    team = await make_team(catalog, "t")
    await register(catalog, node("a"))
    await add(
        catalog,
        row("sbxstill", team, node_id="a", state="lost"),
        row("sbxdied", team, node_id="a", state="lost"),
        row("sbxpaused", team, node_id="a", state="paused"),
    )
    listed = {"sbxstill", "sbxdied", "sbxpaused"}
    await add(catalog, row("sbxjustmade", team, node_id="a"))  # written after the node read its rows
    async with catalog.transaction() as session:
        before = await nodes.heartbeat(
            session, "a", at=NOW, cpu_used=2, memory_used_mb=512, disk_used_mb=1024, sandboxes=1, templates=[]
        )
        adopted, forgotten = await nodes.adopt(session, "a", live={"sbxstill"}, listed=listed)
    assert before is not None and before.state == "ready"
    assert (adopted, forgotten) == (["sbxstill"], ["sbxdied"])
    assert await states(catalog) == {"sbxstill": "running", "sbxpaused": "paused", "sbxjustmade": "running"}


async def test_a_heartbeat_of_an_unknown_node_asks_it_to_register(catalog: Catalog) -> None:
    async with catalog.transaction() as session:
        assert await nodes.heartbeat(
            session, "ghost", at=NOW, cpu_used=0, memory_used_mb=0, disk_used_mb=0, sandboxes=0, templates=[]
        ) is None  # fmt: skip


@pytest.mark.postgres
async def test_a_duty_is_held_by_one_catalog_at_a_time(database_url: str) -> None:
    if not database_url.startswith("postgresql"):
        pytest.skip("SQLite serves one process: every duty is its own")
    first, second = await Catalog.open(database_url), await Catalog.open(database_url)
    try:
        async with first.duty("reaper") as mine:
            assert mine
            async with second.duty("reaper") as theirs:
                assert not theirs
            async with second.duty("another") as other:
                assert other
        async with second.duty("reaper") as theirs:
            assert theirs  # released at the end of the first's block
    finally:
        await first.close()
        await second.close()


@pytest.mark.postgres
async def test_a_hold_waits_for_the_other_catalog_and_a_cancelled_wait_keeps_nothing(
    database_url: str,
) -> None:
    if not database_url.startswith("postgresql"):
        pytest.skip("SQLite serves one process: a hold holds nothing")
    first, second = await Catalog.open(database_url), await Catalog.open(database_url)
    order: list[str] = []

    async def hold(catalog: Catalog, name: str) -> None:
        async with catalog.hold("sandbox:one"):
            order.append(f"{name} in")
            await asyncio.sleep(0.2)
            order.append(f"{name} out")

    try:
        holder = asyncio.create_task(hold(first, "first"))
        await asyncio.sleep(0.05)
        await hold(second, "second")
        await holder
        assert order == ["first in", "first out", "second in", "second out"]

        async with first.hold("sandbox:one"):
            waiter = asyncio.create_task(hold(second, "cancelled"))
            await asyncio.sleep(0.1)
            waiter.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await waiter
        async with asyncio.timeout(5), second.hold("sandbox:one"):
            pass  # nothing left the lock held
        async with asyncio.timeout(5), first.hold("sandbox:other"), second.hold("sandbox:another"):
            pass  # other names are other locks
    finally:
        await first.close()
        await second.close()
