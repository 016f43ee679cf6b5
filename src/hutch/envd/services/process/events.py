"""The event stream shared by Start and Connect: ``start``, then ``data``…, then ``end``."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from ...connect import encode_bytes
from ...errors import RpcError
from .manager import Process

KEEPALIVE = {"event": {"keepalive": {}}}


async def follow(process: Process, queue: asyncio.Queue, started: bool = False) -> AsyncIterator[dict]:
    """Yield ``ProcessEvent`` messages for one subscriber until the process ends.

    ``started`` marks the Start stream, whose deadline is the process's lifetime: when that kills the
    process, the stream ends with ``deadline_exceeded``. Connect streams see the kill as an ordinary end.
    """
    try:
        yield {"event": {"start": {"pid": process.pid}}}
        while True:
            event = await queue.get()
            process.consumed()
            data = event.get("data")
            if data is not None:
                ((stream, chunk),) = data.items()
                yield {"event": {"data": {stream: encode_bytes(chunk)}}}
                continue
            if started and process.timed_out:
                raise RpcError("deadline_exceeded", "context deadline exceeded: the process was killed")
            yield {"event": {"end": event["end"]}}
            return
    finally:
        process.unsubscribe(queue)
