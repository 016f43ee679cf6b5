"""The development sandbox that the SDK's debug mode reaches (``debug_sandbox_id``), shared between
processes through a small JSON file in the data directory.

``hutch up`` starts the sandbox and :func:`publish`\\ es its handle; the proxy, a process of its own, reads
the file with :class:`DebugSandbox` when it is asked for the debug id, again whenever the file changed. The
file is replaced atomically (written beside it, then renamed), so a reader sees the old handle or the new
one, never half of one. :func:`withdraw` removes it: no file, no route.
"""

from __future__ import annotations

import json
import logging
import os
from datetime import datetime
from pathlib import Path

from ..runtime.types import SandboxHandle

FILE_NAME = "debug-sandbox.json"

log = logging.getLogger(__name__)


def path_in(data_dir: Path) -> Path:
    """Where the handle is kept for the node with ``data_dir``."""
    return data_dir / FILE_NAME


def publish(path: Path, handle: SandboxHandle) -> None:
    """Route the debug id to ``handle`` from now on."""
    fields = {
        "sandbox_id": handle.sandbox_id,
        "template_id": handle.template_id,
        "host": handle.host,
        "node_id": handle.node_id,
        "started_at": handle.started_at.isoformat(),
        "port_overrides": {str(port): to for port, to in handle.port_overrides.items()},
    }
    partial = path.with_name(f".{path.name}.{os.getpid()}")
    partial.write_text(json.dumps(fields))
    os.replace(partial, path)


def withdraw(path: Path) -> None:
    """Route the debug id nowhere (the SDK then gets the proxy's "sandbox was not found")."""
    path.unlink(missing_ok=True)


class DebugSandbox:
    """``get()`` → the published handle, or None. A ``stat`` per call; the file is parsed only when its
    identity (inode, size, modification time) changed."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._seen: tuple[int, int, int] | None = None
        self._handle: SandboxHandle | None = None

    def get(self) -> SandboxHandle | None:
        try:
            stat = os.stat(self.path)
        except FileNotFoundError:
            self._seen = self._handle = None
            return None
        seen = (stat.st_ino, stat.st_size, stat.st_mtime_ns)
        if seen != self._seen:
            self._handle = _read(self.path)
            self._seen = seen
        return self._handle


def _read(path: Path) -> SandboxHandle | None:
    try:
        fields = json.loads(path.read_text())
        return SandboxHandle(
            sandbox_id=fields["sandbox_id"],
            template_id=fields["template_id"],
            host=fields["host"],
            node_id=fields["node_id"],
            started_at=datetime.fromisoformat(fields["started_at"]),
            port_overrides={int(port): int(to) for port, to in fields["port_overrides"].items()},
        )
    except FileNotFoundError:
        return None
    except (ValueError, KeyError, TypeError, AttributeError) as err:
        log.warning("ignoring %s: %s", path, err)
        return None
