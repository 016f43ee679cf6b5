"""``SendSignal`` and ``Update`` (PTY resize): acting on a running process."""

from __future__ import annotations

import signal

from ...connect import Call, field, message, uint
from ...errors import RpcError

SIGNALS = {
    "SIGNAL_SIGKILL": signal.SIGKILL,
    "SIGNAL_SIGTERM": signal.SIGTERM,
    9: signal.SIGKILL,
    15: signal.SIGTERM,
}


async def send_signal(call: Call, msg: dict) -> dict:
    process = call.state.processes.find(message(field(msg, "process"), "process"))
    requested = field(msg, "signal")
    sig = (
        SIGNALS.get(requested)
        if isinstance(requested, (str, int)) and not isinstance(requested, bool)
        else None
    )
    if sig is None:
        raise RpcError("unimplemented", f"unsupported signal {field(msg, 'signal')!r}")
    process.kill(sig)
    return {}


async def update(call: Call, msg: dict) -> dict:
    process = call.state.processes.find(message(field(msg, "process"), "process"))
    pty = field(msg, "pty")
    if pty is not None:
        size = message(field(message(pty, "pty"), "size"), "pty.size")
        process.resize(uint(field(size, "cols"), "cols", 0xFFFF), uint(field(size, "rows"), "rows", 0xFFFF))
    return {}
