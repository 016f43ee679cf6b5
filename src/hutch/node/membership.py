"""A node's place in the cluster's catalog: it registers with its addresses and capacity, heartbeats with
its load, and keeps its sandboxes' rows true. At start and whenever it was marked lost it takes back the
sandboxes it still runs; every few seconds it forgets the rows of sandboxes that died on their own and ends
sandboxes that no row knows (created for a call that failed before its row was written)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from datetime import UTC, datetime, timedelta

from ..catalog import Catalog
from ..catalog.models import NodeRow
from ..catalog.repos import nodes, sandboxes
from ..runtime.base import Runtime
from .api import Admission
from .layers import held_templates

log = logging.getLogger("hutch.node")
# How often the node checks its rows against what it runs.
RECONCILE_S = 5.0
# A sandbox without a row is ended only once it is older than this: its create may still be recording it.
ORPHAN_GRACE_S = 60.0


class Membership:
    """Registration, heartbeat and reconciliation of the node ``node_id``."""

    def __init__(
        self,
        catalog: Catalog,
        runtime: Runtime,
        admission: Admission,
        *,
        node_id: str,
        api_address: str,
        traffic_address: str,
        heartbeat_s: float,
        version: str,
    ) -> None:
        self._catalog = catalog
        self._runtime = runtime
        self._admission = admission
        self.node_id = node_id
        self._api_address = api_address
        self._traffic_address = traffic_address
        self._heartbeat_s = heartbeat_s
        # The templates whose images it holds, found again at every reconciliation (a build, a copy).
        self._templates: list[str] = []
        self._version = version
        self._task: asyncio.Task[None] | None = None
        # The reconciliation under way, apart from the heartbeats (ending sandboxes takes a while, and
        # must never make the node miss a heartbeat).
        self._reconciling: asyncio.Task[None] | None = None
        self._next_reconcile = 0.0

    async def join(self) -> None:
        """Register, take back what the node still runs and end what no row knows (before it serves)."""
        self._templates = await held_templates(self._catalog)
        await self._register()
        await self.reconcile(orphan_grace_s=0)

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="hutch-node-heartbeat")

    async def stop(self) -> None:
        for task in (self._task, self._reconciling):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        self._task = self._reconciling = None

    async def reconcile(self, *, orphan_grace_s: float = ORPHAN_GRACE_S) -> None:
        """Make the node's rows and its sandboxes agree (rows read before the node is asked), and find the
        templates it holds."""
        self._templates = await held_templates(self._catalog)
        async with self._catalog.transaction() as session:
            listed = {row.sandbox_id for row in await sandboxes.on_node(session, self.node_id)}
        handles = await self._runtime.list()
        live = {handle.sandbox_id for handle in handles}
        async with self._catalog.transaction() as session:
            adopted, forgotten = await nodes.adopt(session, self.node_id, live=live, listed=listed)
        if adopted:
            log.info("took back %d sandboxes: %s", len(adopted), ", ".join(adopted))
        if forgotten:
            log.warning(
                "%d sandboxes stopped on their own; forgotten: %s", len(forgotten), ", ".join(forgotten)
            )
        async with self._catalog.transaction() as session:
            known = {row.sandbox_id for row in await sandboxes.on_node(session, self.node_id)}
        cutoff = datetime.now(UTC) - timedelta(seconds=orphan_grace_s)
        for handle in handles:
            if handle.sandbox_id not in known and handle.started_at <= cutoff:
                log.warning("ending sandbox %s, which no row knows", handle.sandbox_id)
                await self._runtime.kill(handle.sandbox_id)

    async def _register(self) -> None:
        held, capacity = self._admission.reserved(), self._admission.capacity
        now = datetime.now(UTC)
        row = NodeRow(
            node_id=self.node_id,
            api_address=self._api_address,
            traffic_address=self._traffic_address,
            state="ready",
            draining=False,
            cpu_count=capacity.cpu_count,
            memory_mb=capacity.memory_mb,
            disk_mb=capacity.disk_mb,
            cpu_used=held.cpu_count,
            memory_used_mb=held.memory_mb,
            disk_used_mb=held.disk_mb,
            sandboxes=held.sandboxes,
            templates=list(self._templates),
            version=self._version,
            registered_at=now,
            heartbeat_at=now,
        )
        async with self._catalog.transaction() as session:
            await nodes.register(session, row)

    async def beat(self) -> None:
        """One heartbeat (registering again if the row is gone); a node that was marked lost takes its
        sandboxes back at once. Reconciliation runs beside the heartbeats, one at a time."""
        held = self._admission.reserved()
        async with self._catalog.transaction() as session:
            before = await nodes.heartbeat(
                session,
                self.node_id,
                at=datetime.now(UTC),
                cpu_used=held.cpu_count,
                memory_used_mb=held.memory_mb,
                disk_used_mb=held.disk_mb,
                sandboxes=held.sandboxes,
                templates=list(self._templates),
            )
        if before is None:
            await self._register()
        due = before is None or before.state == "lost" or time.monotonic() >= self._next_reconcile
        if due and (self._reconciling is None or self._reconciling.done()):
            self._next_reconcile = time.monotonic() + RECONCILE_S
            self._reconciling = asyncio.create_task(self._reconcile(), name="hutch-node-reconcile")

    async def _reconcile(self) -> None:
        try:
            await self.reconcile()
        except Exception:
            log.exception("checking the node's sandboxes against the catalog failed")

    async def _run(self) -> None:
        while True:
            started = time.monotonic()
            try:
                await self.beat()
            except Exception:
                log.exception("heartbeat failed")
            await asyncio.sleep(max(0.0, self._heartbeat_s - (time.monotonic() - started)))
