"""Sandbox lifecycle: create (idempotently), inspect, extend, list, measure, pause, resume and kill a team's
sandboxes. At its timeout a sandbox is killed, or paused if it was created with ``autoPause``; a paused
sandbox is kept for ``paused_retention_s``, then killed.

Each call is one unit of work in the catalog, except ``create``: it reads in one transaction, starts the
sandbox outside any (a runtime create takes a while), then records it in a second; if that fails, the new
sandbox is killed again so that nothing is left behind.
"""

from __future__ import annotations

import asyncio
import secrets
from contextlib import AbstractAsyncContextManager
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from ...catalog import Catalog
from ...catalog.models import Sandbox
from ...catalog.repos import sandboxes
from ...catalog.repos.sandboxes import Cursor, SandboxFilter
from ...envd.version import VERSION as ENVD_VERSION
from ...errors import Conflict, HutchError, InvalidRequest, NotFound, NotSupported
from ...runtime.base import Runtime
from ...runtime.capabilities import LogLine, SupportsEgress, SupportsFork, SupportsLogs, SupportsPause
from ...runtime.types import SandboxHandle, SandboxSpec
from ..ratelimit import RateLimiter
from . import pagination, quotas, templates
from .metrics import SandboxMetrics
from .pagination import Page


def _now() -> datetime:
    return datetime.now(UTC)


# The metadata key choosing the engine of a sandbox, ``container`` (crun) or ``gvisor``, over its template's.
RUNTIME_KEY = "hutch.runtime"
RUNTIMES = ("container", "gvisor")


def _engine_of(metadata: dict[str, str] | None, default: str) -> str:
    chosen = (metadata or {}).get(RUNTIME_KEY, default)
    if chosen not in RUNTIMES:
        raise InvalidRequest(f"metadata {RUNTIME_KEY} must be one of {', '.join(RUNTIMES)}, not {chosen!r}")
    return chosen


async def _existing(session: AsyncSession, sandbox_id: str) -> Sandbox:
    """The sandbox ``sandbox_id`` of any team; ``NotFound`` if it is gone (killed meanwhile)."""
    sandbox = await sandboxes.get_any(session, sandbox_id)
    if sandbox is None:
        raise NotFound(f"sandbox {sandbox_id} not found")
    return sandbox


def _row(handle: SandboxHandle, **fields: Any) -> Sandbox:
    """The catalog row of a sandbox the runtime just started, with ``fields`` (its limits and token, who
    it is for, how it is named, its end and lifecycle)."""
    return Sandbox(
        sandbox_id=handle.sandbox_id,
        state="running",
        started_at=handle.started_at,
        host=handle.host,
        port_overrides={str(port): target for port, target in handle.port_overrides.items()},
        node_id=handle.node_id,
        envd_version=ENVD_VERSION,
        **fields,
    )


class SandboxService:
    """The operations behind ``/sandboxes``; every method acts for one team and sees only its sandboxes."""

    def __init__(
        self,
        *,
        catalog: Catalog,
        runtime: Runtime,
        node_id: str,
        default_timeout_s: int,
        max_timeout_s: int,
        paused_retention_s: int = 30 * 24 * 3600,
        create_limiter: RateLimiter | None = None,
    ) -> None:
        self._catalog = catalog
        self._runtime = runtime
        self._node_id = node_id
        self._default_timeout_s = default_timeout_s
        self._max_timeout_s = max_timeout_s
        self._paused_retention = timedelta(seconds=paused_retention_s)
        self._create_limiter = create_limiter or RateLimiter(0, 1, "creates")
        # Pause, resume, snapshots, forks and kill of one sandbox happen one at a time (``lock``).
        self._locks: dict[str, asyncio.Lock] = {}
        self._running = quotas.Holds("concurrent_sandboxes")

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
    ) -> Sandbox:
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
                runtime=_engine_of(metadata, image.runtime),
            )
        async with self.starting(team_id):
            handle = await self._runtime.create(spec)
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
            )
            return await self._record(row)

    def starting(self, team_id: str, count: int = 1) -> AbstractAsyncContextManager[int]:
        """Hold room in the team's ``concurrent_sandboxes`` while sandboxes start or resume: for as many of
        ``count`` as its running ones leave (at least one, else ``QuotaExceeded``); yields how many."""
        return self._running.hold_some(self._catalog, team_id, count, sandboxes.count_running)

    def count_creates(self, team_id: str, count: int) -> None:
        """Count ``count`` sandboxes about to be made against the team's create rate (``QuotaExceeded``
        past it)."""
        for _ in range(count):
            self._create_limiter.take(team_id)

    async def replicate(self, source: Sandbox, spec: SandboxSpec, *, timeout_s: int | None = None) -> Sandbox:
        """A new sandbox like ``source`` (its team, template, metadata, limits and lifecycle) from ``spec``
        (whose files are a copy of the source's), with its own id, address and tokens: a fork that boots.
        The caller has counted it against the team's create rate (``count_creates``) and holds its room
        (``starting``)."""
        token = secrets.token_urlsafe(32)
        handle = await self._runtime.create(replace(spec, access_token=token))
        return await self._record_copy(source, handle, token, timeout_s)

    async def fork_running(
        self, source: Sandbox, count: int, *, timeout_s: int | None = None
    ) -> list[Sandbox | HutchError]:
        """``count`` copies of ``source`` that go on where it was (memory, processes and files), each with
        its own id, address and tokens; ``NotSupported`` when its engine cannot copy memory. The caller has
        counted them against the team's create rate (``count_creates``) and holds their room
        (``starting``)."""
        if not isinstance(self._runtime, SupportsFork):
            raise NotSupported(f"the {self._runtime.name} runtime cannot copy a sandbox's memory")
        tokens: list[str | None] = [secrets.token_urlsafe(32) for _ in range(count)]
        async with self.lock(source.sandbox_id):
            handles = await self._runtime.fork(source.sandbox_id, tokens)
        results: list[Sandbox | HutchError] = []
        for token, handle in zip(tokens, handles, strict=True):
            if isinstance(handle, HutchError):
                results.append(handle)
            else:
                results.append(await self._record_copy(source, handle, token, timeout_s))
        return results

    async def _record_copy(
        self, source: Sandbox, handle: SandboxHandle, token: str | None, timeout_s: int | None
    ) -> Sandbox:
        traffic_token = secrets.token_urlsafe(32) if source.traffic_access_token else None
        copied = (
            "template_id", "alias", "mask_request_host", "allow_internet_access", "on_timeout",
            "cpu_count", "memory_mb", "disk_mb",
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

    async def get(self, *, team_id: str, sandbox_id: str) -> Sandbox:
        async with self._catalog.transaction() as session:
            return await sandboxes.get_or_raise(session, team_id=team_id, sandbox_id=sandbox_id)

    async def kill(self, *, team_id: str, sandbox_id: str) -> None:
        """Stop the sandbox and forget it: afterwards it is unknown (``NotFound``)."""
        await self.get(team_id=team_id, sandbox_id=sandbox_id)
        await self.destroy(sandbox_id=sandbox_id)

    async def pause(self, *, team_id: str, sandbox_id: str, memory: bool = True) -> Sandbox:
        """Pause a running sandbox (``Conflict`` if it is paused already); it is kept for the paused
        retention from now on."""
        await self.get(team_id=team_id, sandbox_id=sandbox_id)
        return await self._pause(sandbox_id, memory=memory)

    async def connect(
        self, *, team_id: str, sandbox_id: str, timeout_s: int | None = None, memory: bool = True
    ) -> tuple[Sandbox, bool]:
        """Reattach to a sandbox, resuming it if paused; returns it and whether it was resumed. A running
        sandbox's end moves to ``timeout_s`` from now if that is later; a resumed one ends then."""
        lifetime = self._lifetime(timeout_s)
        async with self.lock(sandbox_id):
            async with self._catalog.transaction() as session:
                sandbox = await sandboxes.get_or_raise(session, team_id=team_id, sandbox_id=sandbox_id)
                if sandbox.state == "running":
                    sandbox.end_at = max(sandbox.end_at, _now() + lifetime)
                    return sandbox, False
            return await self._resume(sandbox, lifetime=lifetime, memory=memory), True

    async def resume(
        self, *, team_id: str, sandbox_id: str, timeout_s: int | None = None, memory: bool = True
    ) -> Sandbox:
        """Resume a paused sandbox (``Conflict`` if it runs); it then ends ``timeout_s`` from now."""
        lifetime = self._lifetime(timeout_s)
        async with self.lock(sandbox_id):
            sandbox = await self.get(team_id=team_id, sandbox_id=sandbox_id)
            if sandbox.state != "paused":
                raise Conflict(f"sandbox {sandbox_id} is already running")
            return await self._resume(sandbox, lifetime=lifetime, memory=memory)

    async def wake(self, *, sandbox_id: str) -> Sandbox:
        """Resume a paused sandbox created with ``autoResume`` because traffic came for it (the proxy
        asks); one already running is left as it is."""
        async with self.lock(sandbox_id):
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
            sandbox = await sandboxes.get_any(session, sandbox_id)
        if sandbox is None:
            return
        if sandbox.state == "running" and sandbox.on_timeout == "pause":
            await self._pause(sandbox_id, memory=sandbox.auto_pause_memory is not False)
        else:
            await self.destroy(sandbox_id=sandbox_id)

    async def _pause(self, sandbox_id: str, *, memory: bool) -> Sandbox:
        pauser = self._pauser()
        async with self.lock(sandbox_id):
            async with self._catalog.transaction() as session:
                sandbox = await _existing(session, sandbox_id)
                if sandbox.state == "paused":
                    raise Conflict(f"sandbox {sandbox_id} is already paused")
            mode = await pauser.pause(sandbox_id, memory=memory)
            async with self._catalog.transaction() as session:
                sandbox = await _existing(session, sandbox_id)
                sandbox.state, sandbox.pause_mode = "paused", mode
                sandbox.paused_at = _now()
                sandbox.end_at = sandbox.paused_at + self._paused_retention
                return sandbox

    async def _resume(self, paused: Sandbox, *, lifetime: timedelta, memory: bool) -> Sandbox:
        """Resume, within the team's ``concurrent_sandboxes`` (the caller holds the sandbox's lock)."""
        async with self.starting(paused.team_id):
            await self._pauser().resume(paused.sandbox_id, memory=memory)
            async with self._catalog.transaction() as session:
                sandbox = await _existing(session, paused.sandbox_id)
                sandbox.state, sandbox.pause_mode, sandbox.paused_at = "running", None, None
                sandbox.end_at = _now() + lifetime
                return sandbox

    def _pauser(self) -> SupportsPause:
        if not isinstance(self._runtime, SupportsPause):
            raise NotSupported(f"the {self._runtime.name} runtime cannot pause sandboxes")
        return self._runtime

    def lock(self, sandbox_id: str) -> asyncio.Lock:
        """Held while the sandbox is paused, resumed, snapshotted, forked or killed: one at a time."""
        return self._locks.setdefault(sandbox_id, asyncio.Lock())

    async def update_network(
        self,
        *,
        team_id: str,
        sandbox_id: str,
        allow_internet_access: bool | None,
        allow_out: list[str] | None,
        deny_out: list[str] | None,
    ) -> None:
        """Replace a running sandbox's egress rules (omitted lists are cleared)."""
        async with self._catalog.transaction() as session:
            sandbox = await sandboxes.get_or_raise(session, team_id=team_id, sandbox_id=sandbox_id)
            if not isinstance(self._runtime, SupportsEgress):
                raise NotSupported(f"the {self._runtime.name} runtime cannot change a sandbox's network")
            await self._runtime.update_egress(
                sandbox_id,
                internet=allow_internet_access,
                allow_out=tuple(allow_out or ()),
                deny_out=tuple(deny_out or ()),
            )
            if allow_internet_access is not None:
                sandbox.allow_internet_access = allow_internet_access

    async def set_timeout(self, *, team_id: str, sandbox_id: str, timeout_s: int) -> Sandbox:
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
    ) -> Page[Sandbox]:
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
    ) -> list[Sandbox]:
        """Every running sandbox of the team (the unpaginated v1 listing); over ``at_most`` is refused."""
        found: list[Sandbox] = []
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

    async def metrics(
        self, *, team_id: str, sandbox_id: str, start: datetime | None = None, end: datetime | None = None
    ) -> list[SandboxMetrics]:
        """The sandbox's current resource use, if now falls in the window [``start``, ``end``] (none while
        it is paused)."""
        if (await self.get(team_id=team_id, sandbox_id=sandbox_id)).state == "paused":
            return []
        sample = SandboxMetrics.from_envd(await self._runtime.metrics(sandbox_id))
        if (start is not None and sample.timestamp < start) or (end is not None and sample.timestamp > end):
            return []
        return [sample]

    async def logs(self, *, team_id: str, sandbox_id: str) -> list[LogLine]:
        """The sandbox's log (what its envd wrote), oldest first."""
        await self.get(team_id=team_id, sandbox_id=sandbox_id)
        if not isinstance(self._runtime, SupportsLogs):
            raise NotSupported(f"the {self._runtime.name} runtime keeps no sandbox logs")
        return await self._runtime.logs(sandbox_id)

    async def destroy(self, *, sandbox_id: str) -> None:
        """Kill a sandbox of any team, then drop its row (kept if the kill fails, so a retry can finish)."""
        async with self.lock(sandbox_id):
            await self._runtime.kill(sandbox_id)
            async with self._catalog.transaction() as session:
                await sandboxes.remove(session, sandbox_id)
        self._locks.pop(sandbox_id, None)

    async def due(self) -> tuple[list[str], datetime | None]:
        """The sandboxes whose time is up, and when the next one's will be."""
        now = _now()
        async with self._catalog.transaction() as session:
            expired = await sandboxes.expired(session, now=now)
            upcoming = await sandboxes.next_end_at(session, after=now)
        return [sandbox.sandbox_id for sandbox in expired], upcoming

    async def reconcile(self) -> tuple[list[str], list[str]]:
        """Make the catalog and this node's runtime agree (at start-up, e.g. after a crash): drop the rows
        of sandboxes the runtime no longer runs, and kill the sandboxes no row knows. Returns both lists."""
        lost = await self.forget_lost()
        live = {handle.sandbox_id for handle in await self._runtime.list()}
        async with self._catalog.transaction() as session:
            rows = {s.sandbox_id for s in await sandboxes.on_node(session, self._node_id)}
        orphans = sorted(live - rows)
        for sandbox_id in orphans:
            await self._runtime.kill(sandbox_id)
        return lost, orphans

    async def forget_lost(self) -> list[str]:
        """Drop the rows of sandboxes this node's runtime no longer runs (one that died on its own, e.g.
        a gVisor sandbox killed for its memory); returns their ids. The rows are read before the runtime
        is asked: a row is written only after its sandbox runs, so a create in progress is never lost."""
        async with self._catalog.transaction() as session:
            rows = {s.sandbox_id for s in await sandboxes.on_node(session, self._node_id)}
        lost = sorted(rows - {handle.sandbox_id for handle in await self._runtime.list()})
        if lost:
            async with self._catalog.transaction() as session:
                for sandbox_id in lost:
                    await sandboxes.remove(session, sandbox_id)
        return lost

    async def _record(self, row: Sandbox) -> Sandbox:
        try:
            async with self._catalog.transaction() as session:
                return await sandboxes.add(session, row)
        except BaseException as error:
            # Shielded: a cancelled request must not leave the new sandbox running.
            await asyncio.shield(self._runtime.kill(row.sandbox_id))
            if isinstance(error, IntegrityError) and row.idempotency_key is not None:
                return await self._created_with(row.team_id, row.idempotency_key)
            raise

    async def _created_with(self, team_id: str, key: str) -> Sandbox:
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
