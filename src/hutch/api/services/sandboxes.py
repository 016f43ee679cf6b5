"""Sandbox lifecycle: create (idempotently), inspect, extend, list, pause, resume, fork and kill a team's
sandboxes. At its timeout a sandbox is killed, or paused if it was created with ``autoPause``; a
paused sandbox is kept for ``paused_retention_s``, then killed.

A sandbox may mount the team's volumes (all on one node, where it then runs) and carry egress settings
(``egress``): its header rules name secrets, whose values are read again each time it starts.

Each call is one unit of work in the catalog, except those that start sandboxes (create, fork): they read
in one transaction, start the sandboxes outside any (a node's create takes a while), then record each in a
second; if that fails, the new sandbox is killed again so that nothing is left behind.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from ...catalog import Catalog
from ...catalog.models import SandboxRow
from ...catalog.repos import sandboxes
from ...catalog.repos.sandboxes import Cursor, SandboxFilter
from ...envd.version import VERSION as ENVD_VERSION
from ...errors import Conflict, HutchError, InvalidRequest, NodeUnavailable, NotFound, NotSupported
from ...runtime.node_client import (
    ENGINES,
    Engine,
    LogLine,
    Nodes,
    SandboxHandle,
    SandboxSpec,
    VolumeMount,
    engine_named,
)
from ..ratelimit import RateLimiter
from . import egress, pagination, quotas, templates, volumes
from .copies import SandboxCopier
from .locks import SandboxLocks
from .logs import select_lines
from .pagination import Page
from .routes import NoRoutes, SandboxRoutes
from .server_keys import ServerKeys

log = logging.getLogger(__name__)


def _now() -> datetime:
    return datetime.now(UTC)


# The metadata key choosing the engine of a sandbox over its template's.
ENGINE_KEY = "hutch.runtime"


def _engine_of(metadata: dict[str, str] | None, default: Engine) -> Engine:
    chosen = (metadata or {}).get(ENGINE_KEY)
    if chosen is None:
        return default
    engine = engine_named(chosen)
    if engine is None:
        raise InvalidRequest(f"metadata {ENGINE_KEY} must be one of {', '.join(ENGINES)}, not {chosen!r}")
    return engine


async def _existing(session: AsyncSession, sandbox_id: str) -> SandboxRow:
    """The sandbox ``sandbox_id`` of any team; ``NotFound`` if it is gone (killed meanwhile),
    ``NodeUnavailable`` if its node is lost."""
    sandbox = await sandboxes.get(session, sandbox_id)
    if sandbox is None:
        raise NotFound(f"sandbox {sandbox_id} not found")
    return _reachable(sandbox)


def _reachable(sandbox: SandboxRow) -> SandboxRow:
    """``sandbox``, unless its node is lost: then ``NodeUnavailable`` (until the node is back)."""
    if sandbox.state == "lost":
        raise NodeUnavailable(
            f"sandbox {sandbox.sandbox_id} is unavailable: its node {sandbox.node_id} stopped answering; it "
            f"runs again if the node comes back (kill it to forget it)"
        )
    return sandbox


def _row(handle: SandboxHandle, **fields: Any) -> SandboxRow:
    """The catalog row of a sandbox the node just started, with ``fields`` (its limits and token, who it
    is for, how it is named, its end and lifecycle)."""
    return SandboxRow(
        sandbox_id=handle.sandbox_id,
        state="running",
        started_at=handle.started_at,
        host=handle.host,
        port_overrides={str(port): target for port, target in handle.port_overrides.items()},
        node_id=handle.node_id,
        envd_version=ENVD_VERSION,
        **fields,
    )


@dataclass(frozen=True)
class Fork:
    """One fork's outcome: the new sandbox, or why it could not be made."""

    sandbox: SandboxRow | None = None
    error: HutchError | None = None


class SandboxService:
    """The operations behind ``/sandboxes``; every method acts for one team and sees only its sandboxes.
    Sandboxes run on ``nodes``; a fork on an engine that cannot copy memory boots from a ``copier``'s copy."""

    def __init__(
        self,
        *,
        catalog: Catalog,
        nodes: Nodes,
        locks: SandboxLocks,
        copier: SandboxCopier,
        node_id: str,
        default_timeout_s: int,
        max_timeout_s: int,
        paused_retention_s: int = 30 * 24 * 3600,
        keys: ServerKeys,
        create_limiter: RateLimiter | None = None,
        routes: SandboxRoutes | None = None,
    ) -> None:
        self._catalog = catalog
        self._keys = keys
        self._nodes = nodes
        self._locks = locks
        self._copier = copier
        self._node_id = node_id
        self._default_timeout_s = default_timeout_s
        self._max_timeout_s = max_timeout_s
        self._paused_retention = timedelta(seconds=paused_retention_s)
        self._create_limiter = create_limiter or RateLimiter(0, 1, "creates")
        self._running = quotas.Holds("concurrent_sandboxes")
        self._routes: SandboxRoutes = routes or NoRoutes()

    async def create(
        self,
        *,
        team_id: str,
        template: str,
        timeout_s: int | None = None,
        metadata: dict[str, str] | None = None,
        env_vars: dict[str, str] | None = None,
        allow_internet_access: bool | None = None,
        allow_out: list[str] | None = None,
        deny_out: list[str] | None = None,
        allow_public_traffic: bool | None = None,
        mask_request_host: str | None = None,
        idempotency_key: str | None = None,
        auto_pause: bool = False,
        auto_pause_memory: bool | None = None,
        auto_resume: bool = False,
        volume_mounts: list[tuple[str, str]] | None = None,
        rules: dict[str, list[dict[str, Any]]] | None = None,
        egress_proxy: egress.ProxyRequest | None = None,
        dns_servers: list[str] | None = None,
    ) -> SandboxRow:
        """Start a sandbox from ``template`` and return it once its envd answers. A repeated
        ``idempotency_key`` returns the sandbox the first call made, while that one lives.

        ``allow_public_traffic=False`` gives the sandbox a traffic access token, which the proxy then
        requires on every port but envd's (envd has its own token)."""
        self._create_limiter.take(team_id)
        lifetime = self._lifetime(timeout_s)
        token = secrets.token_urlsafe(32)
        traffic_token = secrets.token_urlsafe(32) if allow_public_traffic is False else None
        async with self._catalog.transaction() as session:
            if idempotency_key is not None:
                earlier = await sandboxes.by_idempotency_key(session, team_id=team_id, key=idempotency_key)
                if earlier is not None:
                    return earlier
            found, image = await templates.resolve_image(session, name=template, team_id=team_id)
            alias = template if template != found.template_id else next(iter(found.aliases), None)
            mounts, home = await volumes.mounts_for(
                session, team_id=team_id, template=found, asked=volume_mounts or []
            )
            asked_egress = egress.stored(
                rules=rules, proxy=egress_proxy, dns_servers=dns_servers, keys=self._keys
            )
            kept_egress = asked_egress if asked_egress is not None else found.egress
            settings = await egress.resolve(session, team_id=team_id, egress=kept_egress, keys=self._keys)
            spec = SandboxSpec(
                template=image,
                cpu_count=found.cpu_count,
                memory_mb=found.memory_mb,
                disk_mb=found.disk_mb,
                env_vars=dict(env_vars or {}),
                access_token=token,
                # E2B's default: egress unless the caller turned it off. The runtime decides whether
                # the deployment has an outside to reach at all.
                allow_internet_access=allow_internet_access is not False,
                allow_out=tuple(allow_out or ()),
                deny_out=tuple(deny_out or ()),
                engine=_engine_of(metadata, image.engine),
                egress=settings,
                volumes=tuple(VolumeMount(volume_id=m["volume_id"], path=m["path"]) for m in mounts),
            )
        async with self._starting(team_id):
            if home is None:
                handle = await self._nodes.place(spec)
            else:  # where its volumes are
                handle = await (await self._nodes.holding(home)).create(spec)
            row = _row(
                handle,
                cpu_count=spec.cpu_count,
                memory_mb=spec.memory_mb,
                disk_mb=spec.disk_mb,
                envd_access_token=token,
                team_id=team_id,
                template_id=found.template_id,
                alias=alias,
                metadata_=dict(metadata or {}),
                end_at=_now() + lifetime,
                traffic_access_token=traffic_token,
                mask_request_host=mask_request_host or None,
                idempotency_key=idempotency_key,
                allow_internet_access=allow_internet_access,
                on_timeout="pause" if auto_pause else "kill",
                auto_pause_memory=auto_pause_memory,
                auto_resume=auto_resume,
                volume_mounts=mounts,
                egress=kept_egress,
            )
            return await self._record(row)

    async def fork(
        self, *, team_id: str, sandbox_id: str, count: int = 1, timeout_s: int | None = None
    ) -> list[Fork]:
        """``count`` new sandboxes, each with its own id, address and tokens. Where the engine can (gVisor),
        each goes on where the sandbox was, memory and processes included; elsewhere (crun) each boots
        over a copy of the sandbox's files, as the sandbox did (its template's start command, env vars).
        Only as many as the team's ``concurrent_sandboxes`` leaves room for are made: each of the others is
        a ``QuotaExceeded``, and with no room at all the call is."""
        async with self._catalog.transaction() as session:
            source = await sandboxes.get_or_raise(session, team_id=team_id, sandbox_id=sandbox_id)
        if source.state != "running":
            raise Conflict(f"sandbox {source.sandbox_id} is paused; resume it first")
        for _ in range(count):
            self._create_limiter.take(team_id)
        async with self._starting(team_id, count) as room:
            forks = await self._fork(source, room, timeout_s)
        if room < count:
            async with self._catalog.transaction() as session:
                allowed = await quotas.limit(session, team_id, "concurrent_sandboxes")
            forks += [Fork(error=quotas.exceeded("concurrent_sandboxes", allowed))] * (count - room)
        return forks

    async def _fork(self, source: SandboxRow, count: int, timeout_s: int | None) -> list[Fork]:
        try:
            children = await self._fork_running(source, count, timeout_s)
        except NotSupported:
            copy = await self._copier.copy(source)
            spec = replace(copy.spec, template=replace(copy.spec.template, rootfs=Path(copy.rootfs)))
            children = await asyncio.gather(
                *(self._boot_copy(source, spec, timeout_s) for _ in range(count)), return_exceptions=True
            )
        results = []
        for child in children:
            if isinstance(child, HutchError):
                results.append(Fork(error=child))
            elif isinstance(child, BaseException):
                raise child
            else:
                results.append(Fork(sandbox=child))
        return results

    async def _fork_running(
        self, source: SandboxRow, count: int, timeout_s: int | None
    ) -> list[SandboxRow | HutchError]:
        """``count`` copies of ``source`` that go on where it was (memory, processes and files);
        ``NotSupported`` when its engine cannot copy memory."""
        tokens: list[str | None] = [secrets.token_urlsafe(32) for _ in range(count)]
        async with self._locks.of(source.sandbox_id):
            node = await self._nodes.holding(source.node_id)
            handles = await node.fork(source.sandbox_id, tokens)
        results: list[SandboxRow | HutchError] = []
        for token, handle in zip(tokens, handles, strict=True):
            if isinstance(handle, HutchError):
                results.append(handle)
            else:
                results.append(await self._record_copy(source, handle, token, timeout_s))
        return results

    async def _boot_copy(self, source: SandboxRow, spec: SandboxSpec, timeout_s: int | None) -> SandboxRow:
        """A new sandbox like ``source`` (its team, template, metadata, limits and lifecycle) from ``spec``
        (whose files are a copy of the source's), with its own id, address and tokens: a fork that boots."""
        token = secrets.token_urlsafe(32)
        node = await self._nodes.holding(source.node_id)  # where the copy's layer is
        handle = await node.create(replace(spec, access_token=token))
        return await self._record_copy(source, handle, token, timeout_s)

    def _starting(self, team_id: str, count: int = 1) -> AbstractAsyncContextManager[int]:
        """Hold room in the team's ``concurrent_sandboxes`` while sandboxes start or resume: for as many of
        ``count`` as its running ones leave (at least one, else ``QuotaExceeded``); yields how many."""
        return self._running.hold_some(self._catalog, team_id, count, sandboxes.count_running)

    async def _record_copy(
        self, source: SandboxRow, handle: SandboxHandle, token: str | None, timeout_s: int | None
    ) -> SandboxRow:
        traffic_token = secrets.token_urlsafe(32) if source.traffic_access_token else None
        copied = (
            "template_id", "alias", "mask_request_host", "allow_internet_access", "on_timeout",
            "cpu_count", "memory_mb", "disk_mb", "volume_mounts", "egress",
        )  # fmt: skip
        row = _row(
            handle,
            envd_access_token=token,
            team_id=source.team_id,
            metadata_=dict(source.metadata_),
            end_at=_now() + self._lifetime(timeout_s),
            traffic_access_token=traffic_token,
            auto_pause_memory=source.auto_pause_memory,
            auto_resume=source.auto_resume,
            **{name: getattr(source, name) for name in copied},
        )
        return await self._record(row)

    async def get(self, *, team_id: str, sandbox_id: str) -> SandboxRow:
        """The team's sandbox; ``NodeUnavailable`` while its node is lost."""
        async with self._catalog.transaction() as session:
            return _reachable(await sandboxes.get_or_raise(session, team_id=team_id, sandbox_id=sandbox_id))

    async def kill(self, *, team_id: str, sandbox_id: str) -> None:
        """Stop the sandbox and forget it: afterwards it is unknown (``NotFound``). One on a lost node is
        forgotten at once (the node ends it when it comes back)."""
        await self.destroy(sandbox_id=sandbox_id, team_id=team_id)

    async def pause(self, *, team_id: str, sandbox_id: str, memory: bool = True) -> SandboxRow:
        """Pause a running sandbox (``Conflict`` if it is paused already); it is kept for the paused
        retention from now on."""
        await self.get(team_id=team_id, sandbox_id=sandbox_id)
        return await self._pause(sandbox_id, memory=memory)

    async def connect(
        self, *, team_id: str, sandbox_id: str, timeout_s: int | None = None, memory: bool = True
    ) -> tuple[SandboxRow, bool]:
        """Reattach to a sandbox, resuming it if paused; returns it and whether it was resumed. A running
        sandbox's end moves to ``timeout_s`` from now if that is later; a resumed one ends then."""
        lifetime = self._lifetime(timeout_s)
        async with self._locks.of(sandbox_id):
            async with self._catalog.transaction() as session:
                sandbox = await sandboxes.get_or_raise(session, team_id=team_id, sandbox_id=sandbox_id)
                if _reachable(sandbox).state == "running":
                    sandbox.end_at = max(sandbox.end_at, _now() + lifetime)
                    return sandbox, False
            return await self._resume(sandbox, lifetime=lifetime, memory=memory), True

    async def resume(
        self, *, team_id: str, sandbox_id: str, timeout_s: int | None = None, memory: bool = True
    ) -> SandboxRow:
        """Resume a paused sandbox (``Conflict`` if it runs); it then ends ``timeout_s`` from now."""
        lifetime = self._lifetime(timeout_s)
        async with self._locks.of(sandbox_id):
            sandbox = await self.get(team_id=team_id, sandbox_id=sandbox_id)
            if sandbox.state != "paused":
                raise Conflict(f"sandbox {sandbox_id} is already running")
            return await self._resume(sandbox, lifetime=lifetime, memory=memory)

    async def wake(self, *, sandbox_id: str) -> SandboxRow:
        """Resume a paused sandbox created with ``autoResume`` because traffic came for it (the proxy
        asks); one already running is left as it is."""
        async with self._locks.of(sandbox_id):
            async with self._catalog.transaction() as session:
                sandbox = await _existing(session, sandbox_id)
            if sandbox.state == "running":
                return sandbox
            if not sandbox.auto_resume:
                raise Conflict(f"sandbox {sandbox_id} is paused, and was not created with autoResume")
            return await self._resume(sandbox, lifetime=self._lifetime(None), memory=True)

    async def expire(self, *, sandbox_id: str) -> None:
        """What a sandbox's timeout does: pause a running one created with ``autoPause``, kill the others
        (a paused one whose retention is over, too)."""
        async with self._catalog.transaction() as session:
            sandbox = await sandboxes.get(session, sandbox_id)
        if sandbox is None:
            return
        if sandbox.state == "running" and sandbox.on_timeout == "pause":
            await self._pause(sandbox_id, memory=sandbox.auto_pause_memory is not False)
        else:
            await self.destroy(sandbox_id=sandbox_id)

    async def _pause(self, sandbox_id: str, *, memory: bool) -> SandboxRow:
        async with self._locks.of(sandbox_id):
            async with self._catalog.transaction() as session:
                sandbox = await _existing(session, sandbox_id)
                if sandbox.state == "paused":
                    raise Conflict(f"sandbox {sandbox_id} is already paused")
            await self._routes.close(sandbox_id)
            try:
                mode = await (await self._nodes.holding(sandbox.node_id)).pause(sandbox_id, memory=memory)
            except BaseException:
                await asyncio.shield(self._reopen(sandbox_id))
                raise
            async with self._catalog.transaction() as session:
                sandbox = await _existing(session, sandbox_id)
                sandbox.state, sandbox.pause_mode = "paused", mode
                sandbox.paused_at = _now()
                sandbox.end_at = sandbox.paused_at + self._paused_retention
                return sandbox

    async def _reopen(self, sandbox_id: str) -> None:
        """Route a sandbox again whose pause failed, as the catalog still has it running."""
        async with self._catalog.transaction() as session:
            sandbox = await sandboxes.get(session, sandbox_id)
        if sandbox is not None and sandbox.state == "running":
            await self._routes.open(sandbox)

    async def _resume(self, paused: SandboxRow, *, lifetime: timedelta, memory: bool) -> SandboxRow:
        """Resume, within the team's ``concurrent_sandboxes`` (the caller holds the sandbox's lock). One
        paused with its files only on a node being drained starts on another node where one takes it;
        the move is recorded before the copy it left is ended, so a failure on the way leaves one of
        the two in the catalog."""
        async with self._starting(paused.team_id):
            moved = None
            if paused.pause_mode == "filesystem":
                moved = await self._nodes.move(paused.node_id, paused.sandbox_id)
            if moved is None:
                node = await self._nodes.holding(paused.node_id)
                await node.resume(paused.sandbox_id, memory=memory)
            async with self._catalog.transaction() as session:
                sandbox = await _existing(session, paused.sandbox_id)
                sandbox.state, sandbox.pause_mode, sandbox.paused_at = "running", None, None
                sandbox.end_at = _now() + lifetime
                if moved is not None:
                    sandbox.node_id, sandbox.host = moved.node_id, moved.host
                    sandbox.port_overrides = {str(port): to for port, to in moved.port_overrides.items()}
            if moved is not None:
                try:
                    await self._kill_on(paused.node_id, paused.sandbox_id)
                except HutchError as error:  # that node ends it when it next checks its sandboxes
                    log.warning(
                        "sandbox %s moved, and %s kept it: %s", paused.sandbox_id, paused.node_id, error
                    )
            await self._routes.open(sandbox)
            return sandbox

    async def update_network(
        self,
        *,
        team_id: str,
        sandbox_id: str,
        allow_internet_access: bool | None,
        allow_out: list[str] | None,
        deny_out: list[str] | None,
        rules: dict[str, list[dict[str, Any]]] | None = None,
        egress_proxy: egress.ProxyRequest | None = None,
        dns_servers: list[str] | None = None,
    ) -> None:
        """Replace a running sandbox's egress rules (omitted lists, rules, proxy and name servers are
        cleared); the secrets the rules name are read now."""
        kept = egress.stored(rules=rules, proxy=egress_proxy, dns_servers=dns_servers, keys=self._keys)
        async with self._catalog.transaction() as session:
            sandbox = _reachable(
                await sandboxes.get_or_raise(session, team_id=team_id, sandbox_id=sandbox_id)
            )
            settings = await egress.resolve(session, team_id=team_id, egress=kept, keys=self._keys)
            node = await self._nodes.holding(sandbox.node_id)
            await node.update_egress(
                sandbox_id,
                internet=allow_internet_access,
                allow_out=tuple(allow_out or ()),
                deny_out=tuple(deny_out or ()),
                settings=settings,
            )
            if allow_internet_access is not None:
                sandbox.allow_internet_access = allow_internet_access
            sandbox.egress = kept

    async def set_timeout(self, *, team_id: str, sandbox_id: str, timeout_s: int) -> SandboxRow:
        """The sandbox now ends ``timeout_s`` from now, sooner or later than before."""
        lifetime = self._lifetime(timeout_s)
        async with self._catalog.transaction() as session:
            sandbox = await sandboxes.get_or_raise(session, team_id=team_id, sandbox_id=sandbox_id)
            sandbox.end_at = _now() + lifetime
            return sandbox

    async def page(
        self,
        *,
        team_id: str,
        metadata: dict[str, str] | None = None,
        states: frozenset[str] | None = None,
        template: str | None = None,
        started_after: datetime | None = None,
        descending: bool = True,
        limit: int = 100,
        next_token: str | None = None,
    ) -> Page[SandboxRow]:
        """One page of the team's sandboxes by start time, and the token of the next page if any."""
        after = pagination.decode(next_token) if next_token else None
        async with self._catalog.transaction() as session:
            template_ids = None
            if template is not None:
                found = await templates.find(session, name=template, team_id=team_id)
                template_ids = frozenset({found.template_id if found else template})
            where = SandboxFilter(
                states=states, template_ids=template_ids, started_after=started_after, metadata=metadata or {}
            )
            rows = await sandboxes.page(
                session, team_id=team_id, where=where, descending=descending, after=after, limit=limit + 1
            )
        if len(rows) <= limit:
            return Page(rows, None)
        last = rows[limit - 1]
        return Page(rows[:limit], pagination.encode(Cursor(last.started_at, last.sandbox_id)))

    async def running(
        self, *, team_id: str, metadata: dict[str, str] | None = None, at_most: int
    ) -> list[SandboxRow]:
        """Every running sandbox of the team (the unpaginated v1 listing); over ``at_most`` is refused."""
        found: list[SandboxRow] = []
        token: str | None = None
        while True:
            page = await self.page(
                team_id=team_id, metadata=metadata, states=frozenset({"running"}), next_token=token
            )
            found.extend(page.items)
            if len(found) > at_most:
                raise InvalidRequest(
                    f"more than {at_most} running sandboxes match; page through GET /v2/sandboxes instead"
                )
            if page.next_token is None:
                return found
            token = page.next_token

    async def logs(
        self,
        *,
        team_id: str,
        sandbox_id: str,
        cursor: datetime | None = None,
        backward: bool = False,
        level: str | None = None,
        search: str | None = None,
        limit: int,
    ) -> list[LogLine]:
        """The first ``limit`` lines of the sandbox's log (what its envd wrote) from ``cursor`` on, oldest
        first; ``backward``, those before it, newest first. Only lines at ``level`` or above, and with
        ``search`` in their message."""
        sandbox = await self.get(team_id=team_id, sandbox_id=sandbox_id)
        lines = await (await self._nodes.holding(sandbox.node_id)).logs(sandbox_id)
        return select_lines(lines, cursor=cursor, backward=backward, level=level, search=search, limit=limit)

    async def destroy(self, *, sandbox_id: str, team_id: str | None = None) -> None:
        """Kill a sandbox of any team, or of ``team_id`` only (another team's is ``NotFound``). Its route and
        its row go first, so that from the start of the kill every request for it, a client's probe after
        its stream broke off included, is told it is not found; the row comes back if the kill fails, so
        that a retry can finish."""
        async with self._locks.of(sandbox_id):
            async with self._catalog.transaction() as session:
                if team_id is None:
                    row = await sandboxes.get(session, sandbox_id)
                else:
                    row = await sandboxes.get_or_raise(session, team_id=team_id, sandbox_id=sandbox_id)
                await self._routes.close(sandbox_id)
                kept = sandboxes.copy_of(row) if row is not None else None
                await sandboxes.remove(session, sandbox_id)
            try:
                await self._kill_on(row.node_id if row is not None else None, sandbox_id)
            except BaseException:
                if kept is not None:
                    await asyncio.shield(self._restore(kept))
                raise

    async def _restore(self, row: SandboxRow) -> None:
        """Add back the row of a sandbox whose kill failed (and route it again if it ran)."""
        async with self._catalog.transaction() as session:
            restored = await sandboxes.add(session, row)
        if restored.state == "running":
            await self._routes.open(restored)

    async def due(self) -> tuple[list[str], datetime | None]:
        """The sandboxes whose time is up, and when the next one's will be."""
        now = _now()
        async with self._catalog.transaction() as session:
            expired = await sandboxes.expired(session, now=now)
            upcoming = await sandboxes.next_end_at(session, after=now)
        return [sandbox.sandbox_id for sandbox in expired], upcoming

    async def reconcile(self) -> tuple[list[str], list[str]]:
        """Make the catalog and the node agree (at start-up, e.g. after a crash): drop the rows of sandboxes
        the node no longer runs, and kill the sandboxes no row knows. Returns both lists."""
        node = self._nodes.local()
        if node is None:  # a cluster's nodes reconcile their own sandboxes
            return [], []
        lost = await self.forget_lost()
        live = {handle.sandbox_id for handle in await node.list()}
        async with self._catalog.transaction() as session:
            rows = {s.sandbox_id for s in await sandboxes.on_node(session, self._node_id)}
        orphans = sorted(live - rows)
        for sandbox_id in orphans:
            await node.kill(sandbox_id)
        async with self._catalog.transaction() as session:
            running = [s for s in await sandboxes.on_node(session, self._node_id) if s.state == "running"]
        await self._routes.reset(running)
        return lost, orphans

    async def forget_lost(self) -> list[str]:
        """Drop the rows of sandboxes the node no longer runs (one that died on its own, e.g. a gVisor
        sandbox killed for its memory); returns their ids. The rows are read before the node is asked: a
        row is written only after its sandbox runs, so a create in progress is never lost."""
        node = self._nodes.local()
        if node is None:  # a cluster's nodes forget their own
            return []
        async with self._catalog.transaction() as session:
            rows = {s.sandbox_id for s in await sandboxes.on_node(session, self._node_id)}
        lost = sorted(rows - {handle.sandbox_id for handle in await node.list()})
        for sandbox_id in lost:
            await self._routes.close(sandbox_id)
        if lost:
            async with self._catalog.transaction() as session:
                for sandbox_id in lost:
                    await sandboxes.remove(session, sandbox_id)
        return lost

    async def _record(self, row: SandboxRow) -> SandboxRow:
        try:
            async with self._catalog.transaction() as session:
                recorded = await sandboxes.add(session, row)
        except BaseException as error:
            # Shielded: a cancelled request must not leave the new sandbox running.
            await asyncio.shield(self._kill_unrecorded(row))
            if isinstance(error, IntegrityError) and row.idempotency_key is not None:
                return await self._created_with(row.team_id, row.idempotency_key)
            raise
        await self._routes.open(recorded)
        return recorded

    async def _kill_unrecorded(self, row: SandboxRow) -> None:
        await self._kill_on(row.node_id, row.sandbox_id)

    async def _kill_on(self, node_id: str | None, sandbox_id: str) -> None:
        """Kill on the node ``node_id``; without one (the row was gone), on this process's node if any."""
        node = await self._nodes.holding(node_id) if node_id is not None else self._nodes.local()
        if node is not None:
            await node.kill(sandbox_id)

    async def _created_with(self, team_id: str, key: str) -> SandboxRow:
        """The sandbox a concurrent create with the same idempotency key recorded first."""
        async with self._catalog.transaction() as session:
            earlier = await sandboxes.by_idempotency_key(session, team_id=team_id, key=key)
        if earlier is None:
            raise Conflict(f"a create with idempotency key {key!r} failed concurrently; retry it")
        return earlier

    def _lifetime(self, timeout_s: int | None) -> timedelta:
        seconds = self._default_timeout_s if timeout_s is None else timeout_s
        if not 0 <= seconds <= self._max_timeout_s:
            raise InvalidRequest(
                f"timeout must be between 0 and {self._max_timeout_s} seconds, got {seconds}"
            )
        return timedelta(seconds=seconds)
