"""``process.Process/List``: every live process with the config it was started with."""

from __future__ import annotations

from ...connect import Call


async def list_processes(call: Call, msg: dict) -> dict:
    return {"processes": [process.info() for process in call.state.processes.live.values()]}
