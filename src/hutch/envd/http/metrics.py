"""``GET /metrics``: CPU, memory and disk use of the sandbox, as the control plane reads them."""

from __future__ import annotations

import os
import time

from ..server import Request, Response
from .common import send_json

_last_cpu = [0.0, 0.0]  # busy, total jiffies at the previous call


def _cpu_used_pct() -> float:
    with open("/proc/stat") as f:
        values = [float(v) for v in f.readline().split()[1:]]
    idle = values[3] + (values[4] if len(values) > 4 else 0)
    total = sum(values)
    busy = total - idle
    d_busy, d_total = busy - _last_cpu[0], total - _last_cpu[1]
    _last_cpu[0], _last_cpu[1] = busy, total
    return round(100 * d_busy / d_total, 2) if d_total > 0 else 0.0


def _memory() -> tuple:
    info = {}
    with open("/proc/meminfo") as f:
        for line in f:
            key, _, rest = line.partition(":")
            info[key] = int(rest.split()[0]) * 1024
    total = info.get("MemTotal", 0)
    cache = info.get("Cached", 0) + info.get("Buffers", 0)
    used = total - info.get("MemAvailable", info.get("MemFree", 0))
    return total, used, cache


async def metrics(request: Request, response: Response, state) -> None:
    total, used, cache = _memory()
    disk = os.statvfs("/")
    await send_json(
        response,
        200,
        {
            "ts": int(time.time()),
            "cpu_count": os.cpu_count() or 1,
            "cpu_used_pct": _cpu_used_pct(),
            "mem_total": total,
            "mem_used": used,
            "mem_cache": cache,
            "mem_total_mib": total // (1024 * 1024),
            "mem_used_mib": used // (1024 * 1024),
            "disk_used": (disk.f_blocks - disk.f_bfree) * disk.f_frsize,
            "disk_total": disk.f_blocks * disk.f_frsize,
        },
        [("cache-control", "no-store")],
    )
