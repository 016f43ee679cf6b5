"""The gateway's log: ``/var/log/mcp-gateway/gateway.log``, root's alone, at most ``MAX_LOG_BYTES`` and one
older file beside it (``gateway.log.1``)."""

from __future__ import annotations

import logging
import logging.handlers
import os
from pathlib import Path

MAX_LOG_BYTES = 4 * 1024 * 1024


def set_up(path: Path) -> None:
    path.parent.mkdir(mode=0o755, parents=True, exist_ok=True)
    handler = logging.handlers.RotatingFileHandler(path, maxBytes=MAX_LOG_BYTES, backupCount=1)
    os.chmod(path, 0o600)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO)
    # The libraries' per-request chatter stays out.
    for noisy in ("mcp", "httpx", "uvicorn.access"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
