"""An exchange raced against a watch: whichever ends first ends the other."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any


async def cut_short(exchange: Coroutine[Any, Any, None], watch: Coroutine[Any, Any, None]) -> bool:
    """Run ``exchange`` until it ends or ``watch`` returns: True if the watch cut it short (the exchange is
    then cancelled), False if it ended by itself (its exception, if any, raised here)."""
    running = asyncio.ensure_future(exchange)
    watching = asyncio.ensure_future(watch)
    try:
        await asyncio.wait((running, watching), return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in (running, watching):
            task.cancel()
        await asyncio.gather(running, watching, return_exceptions=True)
    if running.cancelled():
        return True
    running.result()
    return False
