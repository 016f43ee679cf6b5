"""The node API: what an API replica asks a node to do with its sandboxes (the calls of
:class:`~hutch.runtime.node_client.NodeClient`, over :mod:`hutch.runtime.node_wire`), template builds on its
builder (their log streamed back as they go), the layers of its templates for other nodes (:mod:`.layers`),
and sandboxes moving to or from other nodes (:mod:`.moves`). Every route wants the cluster secret; a create
beyond what the node offers is refused as ``NodeFull``, for the API to try another node, and one whose
template's layers are elsewhere copies them first."""

from __future__ import annotations

import asyncio
import hmac
import json
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Header, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from pydantic import BaseModel, TypeAdapter

from ..catalog import Catalog
from ..errors import HutchError, NodeFull, NotSupported, Unauthenticated
from ..runtime import node_wire as wire
from ..runtime.capabilities import Reserved, SupportsCluster, SupportsMove
from ..runtime.node_client import LocalNode, Runtime
from ..runtime.types import EgressSettings
from ..templates import garbage
from ..templates.builder import Builder, BuildFailed, Built, Plan
from ..templates.layers import LayerStore
from . import archives, layers, moves, uploads
from .archives import ArchiveFetcher
from .layers import LayerCopier

# A node error's HTTP status (the body names the error; the client maps it back).
_STATUS = {
    "NotFound": 404, "Conflict": 409, "InvalidRequest": 400, "NotSupported": 501, "NodeFull": 507,
    "OutOfSpace": 507,
}  # fmt: skip


@dataclass(frozen=True)
class Capacity:
    """What the node offers to sandboxes."""

    cpu_count: int
    memory_mb: int
    disk_mb: int


class Pause(BaseModel):
    memory: bool = True


class Fork(BaseModel):
    tokens: list[str | None]


class Arrival(BaseModel):
    """A sandbox to start here that moves from ``source_node``, where it is paused with its files only."""

    sandbox_id: str
    spec: dict[str, Any]
    source_node: str


class NewVolume(BaseModel):
    size_mb: int


class VolumeOwner(BaseModel):
    """A path in a volume and the owner, group and mode it gets (None: unchanged, or the default)."""

    path: str
    uid: int | None = None
    gid: int | None = None
    mode: int | None = None
    force: bool = False


class Secrets(BaseModel):
    secrets: dict[str, str]


class Egress(BaseModel):
    internet: bool | None = None
    allow_out: list[str] = []
    deny_out: list[str] = []
    settings: EgressSettings | None = None


class Admission:
    """Creates are admitted while what the node's sandboxes hold, plus the creates under way, plus the new
    one fit its capacity (CPU overcommitted by a factor)."""

    def __init__(self, runtime: Runtime, capacity: Capacity, cpu_overcommit: float) -> None:
        self._runtime = runtime
        self.capacity = capacity
        self._cpu_overcommit = cpu_overcommit
        self._starting: list[tuple[int, int, int]] = []
        self._lock = asyncio.Lock()

    def reserved(self) -> Reserved:
        if isinstance(self._runtime, SupportsCluster):
            held = self._runtime.reserved()
        else:
            held = Reserved(0, 0, 0, 0)
        return Reserved(
            cpu_count=held.cpu_count + sum(s[0] for s in self._starting),
            memory_mb=held.memory_mb + sum(s[1] for s in self._starting),
            disk_mb=held.disk_mb + sum(s[2] for s in self._starting),
            sandboxes=held.sandboxes + len(self._starting),
        )

    async def admit(self, cpu_count: int, memory_mb: int, disk_mb: int) -> tuple[int, int, int]:
        async with self._lock:
            held, cap = self.reserved(), self.capacity
            if (
                held.memory_mb + memory_mb > cap.memory_mb
                or held.disk_mb + disk_mb > cap.disk_mb
                or held.cpu_count + cpu_count > cap.cpu_count * self._cpu_overcommit
            ):
                raise NodeFull(
                    f"the node has no room for {cpu_count} vCPUs, {memory_mb} MiB of memory and "
                    f"{disk_mb} MiB of disk (it holds {held.cpu_count}/{cap.cpu_count} vCPUs, "
                    f"{held.memory_mb}/{cap.memory_mb} MiB, {held.disk_mb}/{cap.disk_mb} MiB of disk)"
                )
            entry = (cpu_count, memory_mb, disk_mb)
            self._starting.append(entry)
            return entry

    def done(self, entry: tuple[int, int, int]) -> None:
        self._starting.remove(entry)


PLAN = TypeAdapter(Plan)
BUILT = TypeAdapter(Built)
# Log entries of a build waiting to be sent to the API; beyond, they are dropped (the builder bounds them
# already: ``templates.build_log_entries``).
MAX_QUEUED_ENTRIES = 10_000


@dataclass(frozen=True)
class Templates:
    """What the node does with templates: its catalog (which layers it may hand out, where the other nodes
    are), its cache, the copier of the layers it lacks, what fetches trees from other nodes, and its
    builder (None: it cannot build), whose copies of a build's ``COPY`` files go when the build ends."""

    catalog: Catalog
    cache_dir: Path
    data_dir: Path
    copier: LayerCopier
    fetcher: ArchiveFetcher
    builder: Builder | None
    # The builds running here, by template.
    building: Counter[str] = field(default_factory=Counter)


async def _build_events(builder: Builder, plan: Plan) -> AsyncIterator[bytes]:
    """The build's log entries as they come, then how it ended, one JSON object per line."""
    queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(MAX_QUEUED_ENTRIES)

    def add(message: str, level: str, step: str | None) -> None:
        if not queue.full():
            queue.put_nowait({"log": [message, level, step]})

    async def run() -> dict[str, Any]:
        try:
            built = await builder.build(plan, add)
        except BuildFailed as error:
            return {"failed": {"message": error.message, "step": error.step}}
        except HutchError as error:
            return {"failed": {"message": error.message, "step": None}}
        return {"built": BUILT.dump_python(built, mode="json")}

    task = asyncio.ensure_future(run())
    try:
        while not task.done() or not queue.empty():
            getter = asyncio.ensure_future(queue.get())
            await asyncio.wait([getter, task], return_when=asyncio.FIRST_COMPLETED)
            if getter.done():
                yield json.dumps(getter.result()).encode() + b"\n"
            else:
                getter.cancel()
        yield json.dumps(task.result()).encode() + b"\n"
    finally:
        task.cancel()  # the API went away: the build stops
        await asyncio.gather(task, return_exceptions=True)


def create_node_app(
    runtime: Runtime, *, key: str, admission: Admission, templates: Templates | None = None
) -> FastAPI:
    """The node API over ``runtime`` (started and closed by its owner, not by this app); with
    ``templates``, builds and layers too."""
    node = LocalNode(runtime)
    expected = key.encode()

    def authenticate(given: Annotated[str | None, Header(alias=wire.CLUSTER_KEY_HEADER)] = None) -> None:
        if given is None or not hmac.compare_digest(given.encode(), expected):
            raise Unauthenticated("this is a node API: the cluster key is wrong")

    app = FastAPI(title="Hutch node", dependencies=[Depends(authenticate)], openapi_url=None)

    @app.exception_handler(HutchError)
    async def _error(_request: Request, error: HutchError) -> JSONResponse:
        body = wire.error_body(error)
        status = 401 if isinstance(error, Unauthenticated) else _STATUS.get(body["error"], 500)
        return JSONResponse(body, status)

    p = wire.PREFIX

    @app.post(f"{p}/sandboxes")
    async def create(body: dict[str, Any]) -> Any:
        spec = wire.load(wire.SPEC, body)
        entry = await admission.admit(spec.cpu_count, spec.memory_mb, spec.disk_mb)
        try:
            if templates is not None:
                await templates.copier.ensure(spec.template.rootfs, spec.template.template_id)
            return wire.dump(wire.HANDLE, await node.create(spec))
        finally:
            admission.done(entry)

    @app.post(f"{p}/sandboxes/{{sandbox_id}}/files-copy")
    async def copy_files(sandbox_id: str) -> Any:
        if templates is None:
            raise NotSupported("this node keeps no template layers")
        store = LayerStore(templates.cache_dir)
        partial = store.partial()
        try:
            spec, _ = await node.snapshot(sandbox_id, partial, memory=None)
            layer = store.publish(partial, f"snapshot-{uuid.uuid4().hex}")
        except BaseException:
            store.discard(partial)
            raise
        garbage.mark(templates.cache_dir, templates.data_dir, str(layer))
        return {"spec": wire.dump(wire.SPEC, spec), "layer": str(layer)}

    @app.get(f"{p}/layers")
    async def layer(path: str) -> StreamingResponse:
        if templates is None:
            raise NotSupported("this node keeps no template layers")
        directory = await layers.checked(templates.catalog, templates.cache_dir, path)
        return StreamingResponse(archives.archive(directory), media_type="application/x-tar")

    def movable() -> SupportsMove:
        if templates is None or not isinstance(runtime, SupportsMove):
            raise NotSupported(f"the {runtime.name} runtime cannot move sandboxes between nodes")
        return runtime

    @app.get(f"{p}/sandboxes/{{sandbox_id}}/departure")
    async def departure(sandbox_id: str) -> Any:
        return wire.dump(wire.SPEC, movable().departure(sandbox_id))

    @app.get(f"{p}/sandboxes/{{sandbox_id}}/files")
    async def files(sandbox_id: str) -> StreamingResponse:
        leaving = movable()
        leaving.departure(sandbox_id)  # one that cannot move is refused before the stream starts

        async def stream() -> AsyncIterator[bytes]:
            with leaving.files(sandbox_id) as upper:
                async for chunk in archives.archive(upper):
                    yield chunk

        return StreamingResponse(stream(), media_type="application/x-tar")

    @app.post(f"{p}/arrivals")
    async def arrive(body: Arrival) -> Any:
        arriving = movable()
        assert templates is not None
        spec = wire.load(wire.SPEC, body.spec)
        entry = await admission.admit(spec.cpu_count, spec.memory_mb, spec.disk_mb)
        try:
            address = await moves.source_address(templates.catalog, body.source_node)
            await templates.copier.ensure(spec.template.rootfs, spec.template.template_id)
            fill = moves.fill_from(templates.fetcher, address, body.sandbox_id)
            return wire.dump(wire.HANDLE, await arriving.arrive(body.sandbox_id, spec, fill))
        finally:
            admission.done(entry)

    @app.post(f"{p}/builds")
    async def build(body: dict[str, Any]) -> StreamingResponse:
        if templates is None or templates.builder is None:
            raise NotSupported("this node's runtime cannot build templates")
        plan = PLAN.validate_python(body)
        builder, building = templates.builder, templates.building
        building[plan.template_id] += 1

        def done() -> None:  # the node's copies of its COPY files go with the template's last build here
            building[plan.template_id] -= 1
            if not building[plan.template_id]:
                del building[plan.template_id]
                builder.uploads.remove_template(plan.template_id)

        try:
            if plan.from_template is not None:  # built on another node: its layers first
                await templates.copier.ensure(plan.from_template.rootfs)
            await uploads.fetch(templates.catalog, builder.uploads, plan)
        except BaseException:
            done()
            raise

        async def events() -> AsyncIterator[bytes]:
            try:
                async for line in _build_events(builder, plan):
                    yield line
            finally:
                done()

        return StreamingResponse(events(), media_type="application/x-ndjson")

    @app.get(f"{p}/sandboxes")
    async def listing() -> Any:
        return wire.dump(wire.HANDLES, await node.list())

    @app.delete(f"{p}/sandboxes/{{sandbox_id}}", status_code=204, response_class=Response)
    async def kill(sandbox_id: str) -> Response:
        await node.kill(sandbox_id)
        return Response(status_code=204)

    @app.get(f"{p}/sandboxes/{{sandbox_id}}/metrics")
    async def metrics(sandbox_id: str, start: datetime | None = None, end: datetime | None = None) -> Any:
        return wire.dump(wire.SAMPLES, await node.metrics(sandbox_id, start=start, end=end))

    @app.get(f"{p}/usage")
    async def usage() -> Any:
        return wire.dump(wire.USAGE, await node.usage())

    @app.get(f"{p}/sandboxes/{{sandbox_id}}/logs")
    async def logs(sandbox_id: str) -> Any:
        return wire.dump(wire.LINES, await node.logs(sandbox_id))

    @app.post(f"{p}/sandboxes/{{sandbox_id}}/pause")
    async def pause(sandbox_id: str, body: Pause) -> Any:
        return {"mode": await node.pause(sandbox_id, memory=body.memory)}

    @app.post(f"{p}/sandboxes/{{sandbox_id}}/resume", status_code=204, response_class=Response)
    async def resume(sandbox_id: str, body: Pause) -> Response:
        await node.resume(sandbox_id, memory=body.memory)
        return Response(status_code=204)

    @app.post(f"{p}/sandboxes/{{sandbox_id}}/fork")
    async def fork(sandbox_id: str, body: Fork) -> Any:
        results = await node.fork(sandbox_id, body.tokens)
        return [
            wire.error_body(r) if isinstance(r, HutchError) else {"sandbox": wire.dump(wire.HANDLE, r)}
            for r in results
        ]

    @app.put(f"{p}/sandboxes/{{sandbox_id}}/secrets", status_code=204, response_class=Response)
    async def secrets(sandbox_id: str, body: Secrets) -> Response:
        await node.update_secrets(sandbox_id, body.secrets)
        return Response(status_code=204)

    @app.put(f"{p}/sandboxes/{{sandbox_id}}/egress", status_code=204, response_class=Response)
    async def egress(sandbox_id: str, body: Egress) -> Response:
        await node.update_egress(
            sandbox_id,
            internet=body.internet,
            allow_out=tuple(body.allow_out),
            deny_out=tuple(body.deny_out),
            settings=body.settings,
        )
        return Response(status_code=204)

    _volume_routes(app, node)
    return app


def _volume_routes(app: FastAPI, node: LocalNode) -> None:
    """A node's volumes (``SupportsVolumes``): made, deleted, and their content read and written with no
    sandbox running; a file's content streams both ways, never held whole."""
    v = f"{wire.PREFIX}/volumes/{{volume_id}}"

    @app.put(v, status_code=204, response_class=Response)
    async def create_volume(volume_id: str, body: NewVolume) -> Response:
        await node.create_volume(volume_id, size_mb=body.size_mb)
        return Response(status_code=204)

    @app.delete(v, status_code=204, response_class=Response)
    async def delete_volume(volume_id: str) -> Response:
        await node.delete_volume(volume_id)
        return Response(status_code=204)

    @app.get(f"{v}/used")
    async def volume_used(volume_id: str) -> Any:
        return {"bytes": await node.volume_used(volume_id)}

    @app.get(f"{v}/stat")
    async def volume_stat(volume_id: str, path: str) -> Any:
        return wire.dump(wire.VOLUME_ENTRY, await node.volume_stat(volume_id, path))

    @app.get(f"{v}/list")
    async def volume_list(volume_id: str, path: str, depth: int = 1) -> Any:
        return wire.dump(wire.VOLUME_ENTRIES, await node.volume_list(volume_id, path, depth=depth))

    @app.post(f"{v}/dirs")
    async def volume_make_dir(volume_id: str, body: VolumeOwner) -> Any:
        made = await node.volume_make_dir(
            volume_id, body.path, uid=body.uid, gid=body.gid, mode=body.mode, force=body.force
        )
        return wire.dump(wire.VOLUME_ENTRY, made)

    @app.get(f"{v}/file")
    async def volume_read(volume_id: str, path: str) -> StreamingResponse:
        chunks = node.volume_read(volume_id, path)
        try:
            first = await anext(chunks)  # a missing file is an error answer, not a broken stream
        except StopAsyncIteration:
            first = b""

        async def stream() -> AsyncIterator[bytes]:
            try:
                yield first
                async for chunk in chunks:
                    yield chunk
            finally:
                await chunks.aclose()  # type: ignore[attr-defined]

        return StreamingResponse(stream(), media_type="application/octet-stream")

    @app.put(f"{v}/file")
    async def volume_write(volume_id: str, request: Request, owner: Annotated[VolumeOwner, Depends()]) -> Any:
        written = await node.volume_write(
            volume_id, owner.path, request.stream(), uid=owner.uid, gid=owner.gid, mode=owner.mode,
            force=owner.force,
        )  # fmt: skip
        return wire.dump(wire.VOLUME_ENTRY, written)

    @app.patch(f"{v}/entry")
    async def volume_change(volume_id: str, body: VolumeOwner) -> Any:
        changed = await node.volume_change(volume_id, body.path, uid=body.uid, gid=body.gid, mode=body.mode)
        return wire.dump(wire.VOLUME_ENTRY, changed)

    @app.delete(f"{v}/entry", status_code=204, response_class=Response)
    async def volume_remove(volume_id: str, path: str) -> Response:
        await node.volume_remove(volume_id, path)
        return Response(status_code=204)
