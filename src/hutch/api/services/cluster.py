"""A cluster's nodes as the API sees them (:class:`ClusterNodes`, the cluster's ``Nodes``): read from the
catalog, where nodes register and heartbeat, and reached over their node API with the cluster secret.

A new sandbox goes where :mod:`.placement` says: best of K among the ready, undrained nodes that fit, the
next one tried when a node answers that it is full or does not answer; ``QuotaExceeded`` (429) only when
none has room. Once-only duties run here too: :meth:`ClusterNodes.mark_lost` marks nodes silent for too
long lost, with their sandboxes."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import NoReturn

from pydantic import TypeAdapter

from ...catalog import Catalog
from ...catalog.models import NodeRow
from ...catalog.repos import nodes
from ...errors import Conflict, HutchError, NodeFull, NodeUnavailable, QuotaExceeded
from ...runtime.node_client import (
    EgressSettings,
    LogLine,
    MetricSample,
    NodeClient,
    NodeUsage,
    RemoteNode,
    SandboxHandle,
    SandboxSpec,
)
from ...templates.builder import BuildFailed, BuildSandboxes, Built, Log, Plan
from . import placement

log = logging.getLogger(__name__)
# How long the node table read for routing calls to a sandbox's node is reused.
NODES_TTL_S = 1.0
# The nodes one create tries before it gives up.
MAX_TRIES = 5
_PLAN = TypeAdapter(Plan)
_BUILT = TypeAdapter(Built)


class LostNode:
    """A node that stopped heartbeating: every call is ``NodeUnavailable``, except a kill, which is left to
    the node (when it comes back it ends every sandbox no row knows)."""

    def __init__(self, node_id: str) -> None:
        self.node_id = node_id

    def _refuse(self) -> NodeUnavailable:
        return NodeUnavailable(f"node {self.node_id} is lost: it stopped answering")

    async def start(self) -> None: ...

    async def close(self) -> None: ...

    async def create(self, spec: SandboxSpec) -> SandboxHandle:
        raise self._refuse()

    async def kill(self, sandbox_id: str) -> None:
        return None

    async def list(self) -> list[SandboxHandle]:
        raise self._refuse()

    async def metrics(
        self, sandbox_id: str, *, start: datetime | None = None, end: datetime | None = None
    ) -> list[MetricSample]:
        raise self._refuse()

    async def usage(self) -> NodeUsage:
        raise self._refuse()

    async def logs(self, sandbox_id: str) -> list[LogLine]:
        raise self._refuse()

    async def pause(self, sandbox_id: str, *, memory: bool) -> str:
        raise self._refuse()

    async def resume(self, sandbox_id: str, *, memory: bool = True) -> None:
        raise self._refuse()

    async def snapshot(self, sandbox_id, destination, *, memory=None):  # type: ignore[no-untyped-def]
        raise self._refuse()

    async def fork(
        self, sandbox_id: str, access_tokens: list[str | None]
    ) -> list[SandboxHandle | HutchError]:
        raise self._refuse()

    async def update_egress(
        self,
        sandbox_id: str,
        *,
        internet: bool | None,
        allow_out: tuple[str, ...],
        deny_out: tuple[str, ...],
        settings: EgressSettings | None = None,
    ) -> None:
        raise self._refuse()

    async def _refused(self, *args: object, **kwargs: object) -> NoReturn:
        raise self._refuse()

    update_secrets = create_volume = delete_volume = volume_used = volume_stat = volume_list = _refused
    volume_make_dir = volume_write = volume_change = volume_remove = _refused

    def volume_read(self, volume_id: str, path: str) -> AsyncIterator[bytes]:
        raise self._refuse()


def _load(node: NodeRow) -> placement.NodeLoad:
    return placement.NodeLoad(
        node_id=node.node_id,
        cpu_count=node.cpu_count,
        memory_mb=node.memory_mb,
        disk_mb=node.disk_mb,
        cpu_used=node.cpu_used,
        memory_used_mb=node.memory_used_mb,
        disk_used_mb=node.disk_used_mb,
        templates=frozenset(node.templates),
    )


class ClusterNodes:
    """The nodes in ``catalog``, reached with ``key``."""

    def __init__(
        self,
        catalog: Catalog,
        *,
        key: str,
        lost_after_s: float,
        sample: int = 3,
        cpu_overcommit: float = 4.0,
        rng: random.Random | None = None,
    ) -> None:
        self._catalog = catalog
        self._key = key
        self._lost_after = timedelta(seconds=lost_after_s)
        self._sample = sample
        self._cpu_overcommit = cpu_overcommit
        self._rng = rng or random.Random()
        self._clients: dict[str, RemoteNode] = {}
        self._rows: dict[str, NodeRow] = {}
        self._rows_until = 0.0
        # What this replica's creates under way hold on each node, not yet in its heartbeat.
        self._starting: dict[str, list[placement.Demand]] = {}
        self._closing: set[asyncio.Future[None]] = set()

    async def start(self) -> None:
        """Nothing to start: nodes run on their own."""

    async def close(self) -> None:
        clients, self._clients = list(self._clients.values()), {}
        await asyncio.gather(*(client.close() for client in clients), return_exceptions=True)

    def local(self) -> NodeClient | None:
        return None

    @property
    def key(self) -> str:
        return self._key

    async def candidates(self, demand: placement.Demand) -> list[NodeRow]:
        """The ready, undrained, heartbeating nodes with room for ``demand``, in the order to try them."""
        rows = await self._read(fresh=True)
        fresh_since = datetime.now(UTC) - self._lost_after
        usable = [
            row
            for row in rows.values()
            if row.state == "ready" and not row.draining and row.heartbeat_at >= fresh_since
        ]
        loads = [self._with_starting(_load(row)) for row in usable]
        order = placement.order(
            loads, demand, sample=self._sample, cpu_overcommit=self._cpu_overcommit, rng=self._rng
        )
        return [rows[node_id] for node_id in order[:MAX_TRIES]]

    async def place(self, spec: SandboxSpec) -> SandboxHandle:
        handle, refusals = await self._start_somewhere(spec, lambda node: node.create(spec))
        if handle is not None:
            return handle
        detail = f" ({'; '.join(refusals)})" if refusals else ""
        raise QuotaExceeded(
            f"the cluster is full: no node has room for a sandbox of {spec.cpu_count} vCPUs, "
            f"{spec.memory_mb} MiB of memory and {spec.disk_mb} MiB of disk{detail}",
            retry_after_s=1,
        )

    async def volume_home(self, size_mb: int) -> tuple[str, NodeClient]:
        """The node a new volume of ``size_mb`` MiB goes to: the first placement would pick for a sandbox
        of that disk (``QuotaExceeded`` when none has room)."""
        for row in await self.candidates(placement.Demand(0, 0, size_mb, "")):
            return row.node_id, self.client(row)
        raise QuotaExceeded(
            f"the cluster is full: no node has room for a volume of {size_mb} MiB", retry_after_s=1
        )

    async def move(self, node_id: str, sandbox_id: str) -> SandboxHandle | None:
        rows = await self._read(fresh=True)
        row = rows.get(node_id)
        if row is None or row.state != "ready" or not row.draining:
            return None
        try:
            spec = await self.client(row).departure(sandbox_id)
        except Conflict as error:  # its memory is kept, or the node cannot tell how it was made
            log.info("sandbox %s stays on draining node %s: %s", sandbox_id, node_id, error.message)
            return None
        handle, refusals = await self._start_somewhere(
            spec, lambda node: node.arrive(sandbox_id, spec, source_node=node_id), also=(HutchError,)
        )
        if handle is None:
            log.warning(
                "sandbox %s stays on draining node %s: no other node took it (%s)",
                sandbox_id, node_id, "; ".join(refusals) or "none has room",
            )  # fmt: skip
        else:
            log.info("sandbox %s moved from draining node %s to node %s", sandbox_id, node_id, handle.node_id)
        return handle

    async def _start_somewhere(
        self,
        spec: SandboxSpec,
        start: Callable[[RemoteNode], Awaitable[SandboxHandle]],
        *,
        also: tuple[type[HutchError], ...] = (),
    ) -> tuple[SandboxHandle | None, list[str]]:
        """``start`` on the candidates for ``spec`` in turn, up to the first that takes it; the next is
        tried after one that is full or does not answer (or fails with one of ``also``). Returns the
        handle, or None and why each node refused."""
        demand = placement.Demand(spec.cpu_count, spec.memory_mb, spec.disk_mb, spec.template.template_id)
        refusals: list[str] = []
        for row in await self.candidates(demand):
            node_id = row.node_id
            starting = self._starting.setdefault(node_id, [])
            starting.append(demand)
            try:
                return await start(self.client(row)), refusals
            except (NodeFull, NodeUnavailable, *also) as error:
                refusals.append(f"{node_id}: {error.message}")
                log.info("node %s did not take a sandbox: %s", node_id, error.message)
            finally:
                starting.remove(demand)
        return None, refusals

    async def holding(self, node_id: str) -> NodeClient:
        rows = await self._read()
        row = rows.get(node_id)
        if row is None or row.state != "ready":
            rows = await self._read(fresh=True)
            row = rows.get(node_id)
        if row is None or row.state == "lost":
            return LostNode(node_id)
        return self.client(row)

    async def usage(self) -> NodeUsage:
        rows = await self._read(fresh=True)
        ready = [self.client(row) for row in rows.values() if row.state == "ready"]
        answers = await asyncio.gather(*(client.usage() for client in ready), return_exceptions=True)
        found = [answer for answer in answers if isinstance(answer, NodeUsage)]
        return NodeUsage(
            sandboxes=tuple(s for usage in found for s in usage.sandboxes),
            warm_pools=tuple(p for usage in found for p in usage.warm_pools),
            sampling_s=max((usage.sampling_s for usage in found), default=0.0),
        )

    async def mark_lost(self) -> list[str]:
        """Mark lost the nodes whose last heartbeat is older than allowed, and their running sandboxes
        (a once-only duty: the caller holds it)."""
        async with self._catalog.transaction() as session:
            lost = await nodes.mark_lost(session, silent_since=datetime.now(UTC) - self._lost_after)
        if lost:
            self._rows_until = 0.0
        return lost

    def _with_starting(self, load: placement.NodeLoad) -> placement.NodeLoad:
        starting = self._starting.get(load.node_id)
        if not starting:
            return load
        return placement.NodeLoad(
            node_id=load.node_id,
            cpu_count=load.cpu_count,
            memory_mb=load.memory_mb,
            disk_mb=load.disk_mb,
            cpu_used=load.cpu_used + sum(d.cpu_count for d in starting),
            memory_used_mb=load.memory_used_mb + sum(d.memory_mb for d in starting),
            disk_used_mb=load.disk_used_mb + sum(d.disk_mb for d in starting),
            templates=load.templates,
        )

    async def _read(self, *, fresh: bool = False) -> dict[str, NodeRow]:
        if fresh or time.monotonic() >= self._rows_until:
            async with self._catalog.transaction() as session:
                self._rows = {row.node_id: row for row in await nodes.all_nodes(session)}
            self._rows_until = time.monotonic() + NODES_TTL_S
        return self._rows

    def client(self, row: NodeRow) -> RemoteNode:
        """The node API of ``row``'s node (one client per node, made again when it moves)."""
        client = self._clients.get(row.node_id)
        if client is None or client.address != row.api_address:
            if client is not None:  # the node moved: its old connections are closed in the background
                self._closing.add(task := asyncio.ensure_future(client.close()))
                task.add_done_callback(self._closing.discard)
            client = RemoteNode(row.node_id, row.api_address, key=self._key)
            self._clients[row.node_id] = client
        return client


class LostNodeWatch:
    """Every ``interval_s``, one API replica of all (the one holding the duty's lock) marks the silent nodes
    lost: a loop of its own, so that no long call elsewhere delays it."""

    DUTY = "hutch-lost-nodes"

    def __init__(self, catalog: Catalog, cluster: ClusterNodes, *, interval_s: float) -> None:
        self._catalog = catalog
        self._cluster = cluster
        self._interval_s = interval_s
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="hutch-lost-nodes")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        while True:
            try:
                async with self._catalog.duty(self.DUTY) as mine:
                    if mine:
                        for node_id in await self._cluster.mark_lost():
                            log.warning(
                                "node %s stopped heartbeating: marked lost with its sandboxes", node_id
                            )
            except Exception:
                log.exception("checking the nodes' heartbeats failed")
            await asyncio.sleep(self._interval_s)


class ClusterBuilder:
    """Template builds on the cluster's nodes: each runs on a node chosen as a sandbox of its size would
    be, whose builder makes the layers in its own cache; the log comes back as the build goes. Other nodes
    copy the layers when they first start a sandbox of the template."""

    def __init__(self, cluster: ClusterNodes, sandboxes: BuildSandboxes) -> None:
        self._cluster = cluster
        self.sandboxes = sandboxes

    async def close(self) -> None:
        """Nothing to close: the cluster's clients are closed with it."""

    async def build(self, plan: Plan, log: Log) -> Built:
        spec = placement.Demand(plan.cpu_count, plan.memory_mb, self.sandboxes.disk_mb, "")
        refusals = []
        for row in await self._cluster.candidates(spec):
            try:
                return await self._build_on(row, plan, log)
            except NodeUnavailable as error:
                refusals.append(f"{row.node_id}: {error.message}")
        raise QuotaExceeded(
            "no node can run the build now" + (f" ({'; '.join(refusals)})" if refusals else ""),
            retry_after_s=5,
        )

    async def _build_on(self, row: NodeRow, plan: Plan, log: Log) -> Built:
        log(f"building on node {row.node_id}", "info", None)
        try:
            async for event in self._cluster.client(row).build(_PLAN.dump_python(plan, mode="json")):
                if "log" in event:
                    log(*event["log"])
                elif "failed" in event:
                    raise BuildFailed(event["failed"]["message"], event["failed"]["step"])
                elif "built" in event:
                    return _BUILT.validate_python(event["built"])
        except NodeUnavailable as error:
            raise BuildFailed(
                f"node {row.node_id} went away during the build: {error.message}", None
            ) from error
        raise BuildFailed(f"node {row.node_id} ended the build without saying how", None)
