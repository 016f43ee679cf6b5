"""``/nodes``: the operator's routes to see the cluster's nodes and drain or undrain one (as E2B's admin
``POST /nodes/{nodeID}`` with a status). Authenticated only by the operator key; not for teams, and left
out of the API's documentation."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Path

from ..deps import CatalogDep, require_operator
from ..schemas.nodes import NodeInfo, NodeStatusChange
from ..services import nodes

router = APIRouter(prefix="/nodes", include_in_schema=False, dependencies=[Depends(require_operator)])

NodeId = Path(alias="nodeID", max_length=255)


@router.get("")
async def list_nodes(catalog: CatalogDep) -> list[NodeInfo]:
    return [NodeInfo.of(node) for node in await nodes.list_nodes(catalog=catalog)]


@router.get("/{nodeID}")
async def get_node(catalog: CatalogDep, node_id: str = NodeId) -> NodeInfo:
    return NodeInfo.of(await nodes.get(catalog=catalog, node_id=node_id))


@router.post("/{nodeID}")
async def change_node(body: NodeStatusChange, catalog: CatalogDep, node_id: str = NodeId) -> NodeInfo:
    draining = body.status == "draining"
    return NodeInfo.of(await nodes.set_draining(catalog=catalog, node_id=node_id, draining=draining))
