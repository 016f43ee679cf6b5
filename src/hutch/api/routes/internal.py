"""Routes for the node's own processes, not for clients: the proxy wakes a paused sandbox created with
``autoResume`` when traffic comes for it. Authenticated by the node key (``X-Hutch-Node-Key``), which only
root on the node can read, or in a cluster by the cluster secret (``X-Hutch-Cluster-Key``); left out of
the API's documentation."""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import APIRouter, Depends, Header, Response

from ...errors import Unauthenticated
from ...runtime.node_client import CLUSTER_KEY_HEADER
from ...secret_files import NODE_KEY_HEADER, node_key
from ..deps import SandboxServiceDep, SettingsDep


async def require_node(
    settings: SettingsDep,
    key: Annotated[str | None, Header(alias=NODE_KEY_HEADER)] = None,
    cluster_key: Annotated[str | None, Header(alias=CLUSTER_KEY_HEADER)] = None,
) -> None:
    if cluster_key is not None and (settings.cluster.secret or settings.cluster.secret_file):
        if hmac.compare_digest(cluster_key.encode(), settings.cluster.key().encode()):
            return
        raise Unauthenticated("invalid cluster key")
    if key is None or not hmac.compare_digest(key, node_key(settings.data_dir)):
        raise Unauthenticated("invalid node key")


router = APIRouter(include_in_schema=False, dependencies=[Depends(require_node)])


@router.post("/internal/sandboxes/{sandbox_id}/wake", status_code=204, response_class=Response)
async def wake(sandbox_id: str, service: SandboxServiceDep) -> Response:
    await service.wake(sandbox_id=sandbox_id)
    return Response(status_code=204)
