"""The operator's view of the cluster's nodes: list them, drain one (no new sandbox goes there; its
sandboxes run on) and undrain it. A node's ``status`` is ``draining`` while drained, else its state
(``ready``, or ``lost`` once it stopped heartbeating)."""

from __future__ import annotations

from ...catalog import Catalog
from ...catalog.models import NodeRow
from ...catalog.repos import nodes


def status_of(node: NodeRow) -> str:
    if node.state == "lost":
        return "lost"
    return "draining" if node.draining else node.state


async def list_nodes(*, catalog: Catalog) -> list[NodeRow]:
    async with catalog.transaction() as session:
        return await nodes.all_nodes(session)


async def get(*, catalog: Catalog, node_id: str) -> NodeRow:
    async with catalog.transaction() as session:
        return await nodes.get_or_raise(session, node_id)


async def set_draining(*, catalog: Catalog, node_id: str, draining: bool) -> NodeRow:
    async with catalog.transaction() as session:
        return await nodes.set_draining(session, node_id, draining)
