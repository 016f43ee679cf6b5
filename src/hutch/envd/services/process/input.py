"""``SendInput``, ``StreamInput`` and ``CloseStdin``: feeding a process's stdin or terminal."""

from __future__ import annotations

from collections.abc import AsyncIterator

from ...connect import Call, decode_bytes, field, message
from ...errors import RpcError
from .manager import Process


async def _write(process: Process, data: dict) -> None:
    stdin = field(data, "stdin")
    pty = field(data, "pty")
    if pty is not None:
        await process.write_pty(decode_bytes(pty, "input.pty"))
    elif stdin is not None:
        await process.write_stdin(decode_bytes(stdin, "input.stdin"))


async def send_input(call: Call, msg: dict) -> dict:
    process = call.state.processes.find(message(field(msg, "process"), "process"))
    await _write(process, message(field(msg, "input"), "input"))
    return {}


async def stream_input(call: Call, messages: AsyncIterator[dict]) -> dict:
    process = None
    async for msg in messages:
        start = field(msg, "start")
        data = field(msg, "data")
        if start is not None:
            process = call.state.processes.find(message(field(message(start, "start"), "process"), "process"))
        elif data is not None:
            if process is None:
                raise RpcError("failed_precondition", "input came before the start event")
            await _write(process, message(field(message(data, "data"), "input"), "input"))
    return {}


async def close_stdin(call: Call, msg: dict) -> dict:
    process = call.state.processes.find(message(field(msg, "process"), "process"))
    process.close_stdin()
    return {}
