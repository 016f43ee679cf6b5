"""A sandbox's resource use, from envd's ``/metrics`` sample."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any


@dataclass(frozen=True)
class SandboxMetrics:
    timestamp: datetime
    cpu_count: int
    cpu_used_pct: float
    mem_used: int
    mem_total: int
    mem_cache: int
    disk_used: int
    disk_total: int

    @classmethod
    def from_envd(cls, sample: dict[str, Any]) -> SandboxMetrics:
        """Read envd's sample (``ts`` in unix seconds, sizes in bytes)."""
        return cls(
            timestamp=datetime.fromtimestamp(int(sample["ts"]), UTC),
            cpu_count=int(sample["cpu_count"]),
            cpu_used_pct=float(sample["cpu_used_pct"]),
            mem_used=int(sample["mem_used"]),
            mem_total=int(sample["mem_total"]),
            mem_cache=int(sample.get("mem_cache", 0)),
            disk_used=int(sample["disk_used"]),
            disk_total=int(sample["disk_total"]),
        )
