"""Bodies of the operator's ``/nodes``: a node with its capacity and load (in the shape of E2B's admin
``Node`` where they overlap: ``nodeID``, ``status``, ``sandboxCount``), and a change of its status."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import ConfigDict, Field

from ...catalog.models import NodeRow
from ..services.nodes import status_of
from .common import WireModel


class NodeInfo(WireModel):
    node_id: str = Field(alias="nodeID")
    status: Literal["ready", "draining", "lost"]
    address: str
    version: str
    sandbox_count: int = Field(alias="sandboxCount")
    cpu_count: int = Field(alias="cpuCount")
    memory_mb: int = Field(alias="memoryMB")
    disk_mb: int = Field(alias="diskMB")
    allocated_cpu: int = Field(alias="allocatedCPU")
    allocated_memory_mb: int = Field(alias="allocatedMemoryMB")
    allocated_disk_mb: int = Field(alias="allocatedDiskMB")
    templates: list[str]
    heartbeat_at: datetime = Field(alias="heartbeatAt")
    registered_at: datetime = Field(alias="registeredAt")

    @classmethod
    def of(cls, node: NodeRow) -> NodeInfo:
        return cls(
            node_id=node.node_id,
            status=status_of(node),  # type: ignore[arg-type]
            address=node.api_address,
            version=node.version,
            sandbox_count=node.sandboxes,
            cpu_count=node.cpu_count,
            memory_mb=node.memory_mb,
            disk_mb=node.disk_mb,
            allocated_cpu=node.cpu_used,
            allocated_memory_mb=node.memory_used_mb,
            allocated_disk_mb=node.disk_used_mb,
            templates=list(node.templates),
            heartbeat_at=node.heartbeat_at,
            registered_at=node.registered_at,
        )


class NodeStatusChange(WireModel):
    model_config = ConfigDict(extra="forbid")

    status: Literal["ready", "draining"]
