"""Metrics bodies: ``SandboxMetric`` (spec §1.4.5), the items of ``GET /sandboxes/{id}/metrics``, and
``SandboxesWithMetrics``, the latest sample of each sandbox ``GET /sandboxes/metrics`` names (§1.5)."""

from __future__ import annotations

from datetime import datetime

from pydantic import Field

from ...runtime.node_client import MetricSample
from .common import WireModel


class SandboxMetric(WireModel):
    timestamp: datetime
    timestamp_unix: int = Field(alias="timestampUnix")
    cpu_count: int = Field(alias="cpuCount")
    cpu_used_pct: float = Field(alias="cpuUsedPct")
    mem_used: int = Field(alias="memUsed")
    mem_total: int = Field(alias="memTotal")
    mem_cache: int = Field(alias="memCache")
    disk_used: int = Field(alias="diskUsed")
    disk_total: int = Field(alias="diskTotal")

    @classmethod
    def of(cls, sample: MetricSample) -> SandboxMetric:
        return cls(
            timestamp=sample.timestamp,
            timestamp_unix=int(sample.timestamp.timestamp()),
            cpu_count=sample.cpu_count,
            cpu_used_pct=sample.cpu_used_pct,
            mem_used=sample.mem_used,
            mem_total=sample.mem_total,
            mem_cache=sample.mem_cache,
            disk_used=sample.disk_used,
            disk_total=sample.disk_total,
        )


class SandboxesWithMetrics(WireModel):
    sandboxes: dict[str, SandboxMetric]
