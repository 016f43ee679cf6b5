"""Nodes: registration, heartbeats with their load, the operator's drain, and marking the silent ones lost
together with their sandboxes."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from ...errors import NotFound
from ..models import NodeRow, SandboxRow
from . import spans


async def get(session: AsyncSession, node_id: str) -> NodeRow | None:
    return await session.get(NodeRow, node_id)


async def get_or_raise(session: AsyncSession, node_id: str) -> NodeRow:
    node = await session.get(NodeRow, node_id)
    if node is None:
        raise NotFound(f"node {node_id!r} not found")
    return node


async def all_nodes(session: AsyncSession) -> list[NodeRow]:
    return list(await session.scalars(select(NodeRow).order_by(NodeRow.node_id)))


async def register(session: AsyncSession, node: NodeRow) -> NodeRow:
    """Add the node, or refresh a known one's addresses, capacity and load (its drain stays as it was)."""
    known = await session.get(NodeRow, node.node_id, with_for_update=True)
    if known is None:
        session.add(node)
        await session.flush()
        return node
    for name in (
        "api_address", "traffic_address", "cpu_count", "memory_mb", "disk_mb", "cpu_used", "memory_used_mb",
        "disk_used_mb", "sandboxes", "templates", "version", "heartbeat_at",
    ):  # fmt: skip
        setattr(known, name, getattr(node, name))
    known.state = "ready"
    known.registered_at = node.registered_at
    return known


async def heartbeat(
    session: AsyncSession,
    node_id: str,
    *,
    at: datetime,
    cpu_used: int,
    memory_used_mb: int,
    disk_used_mb: int,
    sandboxes: int,
    templates: list[str],
) -> NodeRow | None:
    """Record that the node lives, with its load; returns its row as it was before (None: unknown node,
    which must register again), so that a node that was marked lost knows to take its sandboxes back."""
    known = await session.get(NodeRow, node_id, with_for_update=True)
    if known is None:
        return None
    before = NodeRow(state=known.state, draining=known.draining)
    known.heartbeat_at = at
    known.state = "ready"
    known.cpu_used, known.memory_used_mb, known.disk_used_mb = cpu_used, memory_used_mb, disk_used_mb
    known.sandboxes, known.templates = sandboxes, templates
    return before


async def set_draining(session: AsyncSession, node_id: str, draining: bool) -> NodeRow:
    node = await get_or_raise(session, node_id)
    node.draining = draining
    return node


async def mark_lost(session: AsyncSession, *, silent_since: datetime) -> list[str]:
    """Mark lost every ready node whose last heartbeat is older than ``silent_since``, and their running
    sandboxes with them; returns the nodes' ids."""
    lost = list(
        await session.scalars(
            select(NodeRow.node_id).where(NodeRow.state == "ready", NodeRow.heartbeat_at < silent_since)
        )
    )
    if lost:
        await session.execute(update(NodeRow).where(NodeRow.node_id.in_(lost)).values(state="lost"))
        running = select(SandboxRow.sandbox_id).where(
            SandboxRow.node_id.in_(lost), SandboxRow.state == "running"
        )
        await session.execute(spans.closing(running, datetime.now(UTC)))
        await session.execute(
            update(SandboxRow)
            .where(SandboxRow.node_id.in_(lost), SandboxRow.state == "running")
            .values(state="lost")
        )
    return lost


async def adopt(
    session: AsyncSession, node_id: str, *, live: set[str], listed: set[str]
) -> tuple[list[str], list[str]]:
    """The node runs ``live``, asked after its rows ``listed`` were read: its lost sandboxes among them run
    again, and the rows of ``listed`` it no longer runs are forgotten (paused ones stay: their files are on
    its disk). A row written after ``listed`` was read (a create that just finished) is left alone. Returns
    the ids adopted and forgotten."""
    rows = list(await session.scalars(select(SandboxRow).where(SandboxRow.node_id == node_id)))
    adopted, forgotten = [], []
    for row in rows:
        if row.state not in ("running", "lost"):
            continue
        if row.sandbox_id in live:
            if row.state == "lost":
                row.state = "running"
                adopted.append(row.sandbox_id)
        elif row.sandbox_id in listed:
            await session.delete(row)
            forgotten.append(row.sandbox_id)
    return adopted, forgotten
