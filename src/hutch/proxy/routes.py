"""The edge's routes: which running sandboxes HAProxy sends traffic to directly, kept in two HAProxy maps.

``envd.map`` holds every running sandbox (sandbox id → address): requests for envd's port go straight to
it, since envd checks its own access token. ``ports.map`` holds the running sandboxes whose other ports
take public traffic as they are (no traffic access token, no masked ``Host``). A request whose sandbox is
in neither map goes to the Python proxy, which checks tokens, masks hosts, wakes a paused sandbox or
answers that it is gone.

The API tells the routes when a sandbox starts running (:meth:`EdgeRoutes.open`) and before it stops
(:meth:`EdgeRoutes.close`, awaited before the pause or kill begins): a paused or killed sandbox is never
routed to. The table lives here, in memory; HAProxy gets it as files when it starts and as commands on
its admin socket while it runs. If HAProxy is down or restarting, commands are not sent: once it serves
again, :meth:`EdgeRoutes.resync` replaces both maps with the table at once (a new map version, committed).
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from ..catalog.models import SandboxRow
from ..private_files import write_private

log = logging.getLogger(__name__)

ENVD_MAP = "envd.map"
PORTS_MAP = "ports.map"
ADMIN_SOCKET = "admin.sock"
# An admin command that takes longer than this has failed (HAProxy is stuck or gone).
COMMAND_TIMEOUT_S = 5.0
# Entries sent in one payload of a resync.
BATCH = 1000
_VERSION = re.compile(r"New version created: (\d+)")


class AdminError(Exception):
    """HAProxy's admin socket did not take a command."""


@dataclass(frozen=True)
class Route:
    """Where a running sandbox is reached, and whether its ports other than envd's take public traffic
    without the Python proxy's checks."""

    address: str
    public: bool

    @classmethod
    def of(cls, sandbox: SandboxRow) -> Route | None:
        """The route of ``sandbox``; None if its ports are not where they are asked for (a node that maps
        them elsewhere), which only the Python proxy knows."""
        if sandbox.port_overrides:
            return None
        public = sandbox.traffic_access_token is None and sandbox.mask_request_host is None
        return cls(sandbox.host, public)


class EdgeRoutes:
    """The routes of the sandboxes running on this node, for the HAProxy whose files are in ``directory``."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.envd_map = directory / ENVD_MAP
        self.ports_map = directory / PORTS_MAP
        self.admin_socket = directory / ADMIN_SOCKET
        self._table: dict[str, Route] = {}
        self._lock = asyncio.Lock()
        self._live = False  # HAProxy serves, and its maps agree with the table

    def __contains__(self, sandbox_id: str) -> bool:
        return sandbox_id in self._table

    async def open(self, sandbox: SandboxRow) -> None:
        """Route ``sandbox``, which runs now."""
        route = Route.of(sandbox)
        sandbox_id = sandbox.sandbox_id
        if route is None:
            await self.close(sandbox_id)
            return
        async with self._lock:
            self._table[sandbox_id] = route
            commands = _deletions(sandbox_id, self.envd_map, self.ports_map)
            commands.append(f"add map {self.envd_map} {sandbox_id} {route.address}")
            if route.public:
                commands.append(f"add map {self.ports_map} {sandbox_id} {route.address}")
            await self._send(commands)

    async def close(self, sandbox_id: str) -> None:
        """Stop routing ``sandbox_id`` (it is about to pause or end); returns once HAProxy no longer does."""
        async with self._lock:
            if self._table.pop(sandbox_id, None) is None:
                return
            await self._send(_deletions(sandbox_id, self.envd_map, self.ports_map))

    async def reset(self, sandboxes: Iterable[SandboxRow]) -> None:
        """Route exactly ``sandboxes`` (the node's running ones, at start)."""
        async with self._lock:
            routes = ((sandbox.sandbox_id, Route.of(sandbox)) for sandbox in sandboxes)
            self._table = {sandbox_id: route for sandbox_id, route in routes if route is not None}
            if self._live:
                await self._replace()

    def write_files(self) -> None:
        """Write both maps from the table, for HAProxy to load at its start; until :meth:`resync`, changes
        reach only the table."""
        self._live = False
        write_private(self.envd_map, _map_text(self._table.items()))
        write_private(self.ports_map, _map_text((i, r) for i, r in self._table.items() if r.public))

    async def resync(self) -> bool:
        """HAProxy serves (again): give it the table, which may have changed since the files were written.
        Whether it took it."""
        async with self._lock:
            await self._replace()
            return self._live

    async def _replace(self) -> None:
        try:
            for path, entries in (
                (self.envd_map, list(self._table.items())),
                (self.ports_map, [(i, r) for i, r in self._table.items() if r.public]),
            ):
                answer = await self._command(f"prepare map {path}")
                found = _VERSION.search(answer)
                if found is None:
                    raise AdminError(f"prepare map {path}: {answer.strip()!r}")
                version = found.group(1)
                for start in range(0, len(entries), BATCH):
                    payload = _map_text(entries[start : start + BATCH])
                    await self._command(f"add map @{version} {path} <<\n{payload}\n")
                await self._command(f"commit map @{version} {path}")
        except (OSError, TimeoutError, AdminError) as err:
            self._live = False
            log.warning("the edge's routes could not be replaced: %s", err)
            return
        self._live = True

    async def _send(self, commands: list[str]) -> None:
        if not self._live:
            return
        try:
            await self._command("; ".join(commands))
        except (OSError, TimeoutError) as err:
            # HAProxy is gone; its next start loads the files and resyncs.
            self._live = False
            log.warning("the edge's routes are behind until HAProxy serves again: %s", err)

    async def _command(self, command: str) -> str:
        """Send one command line (or one with a payload) to the admin socket; its answer."""
        async with asyncio.timeout(COMMAND_TIMEOUT_S):
            reader, writer = await asyncio.open_unix_connection(str(self.admin_socket))
            try:
                writer.write(command.encode() + (b"" if command.endswith("\n") else b"\n"))
                await writer.drain()
                return (await reader.read()).decode(errors="replace")
            finally:
                writer.close()


def _deletions(sandbox_id: str, *paths: Path) -> list[str]:
    return [f"del map {path} {sandbox_id}" for path in paths]


def _map_text(entries: Iterable[tuple[str, Route]]) -> str:
    return "".join(f"{sandbox_id} {route.address}\n" for sandbox_id, route in entries)
