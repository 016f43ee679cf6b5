"""``process.Process/Connect``: follow a running process's output by pid or tag (no replay)."""

from __future__ import annotations

from collections.abc import AsyncIterator

from ...connect import Call, field, message
from .events import follow


async def connect(call: Call, msg: dict) -> AsyncIterator[dict]:
    process = call.state.processes.find(message(field(msg, "process"), "process"), include_ended=True)
    queue = process.subscribe()
    async for event in follow(process, queue):
        yield event
