""":class:`RemoteNode`: a :class:`~.node_client.NodeClient` for a node reached over the network (``hutch
node``'s node API), with the cluster secret. A node that cannot be reached is ``NodeUnavailable``; its own
errors come back as the same ``HutchError`` classes (:mod:`.node_wire`)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

from ..errors import HutchError, NodeUnavailable, NotSupported
from . import node_wire as wire
from .capabilities import LogLine, MetricSample, NodeUsage, VolumeEntry
from .types import EgressSettings, SandboxHandle, SandboxSpec

# Connecting is quick or the node is down; a start, resume or pause may take minutes (a template's ready
# command, a memory image), the other calls are short.
CONNECT_TIMEOUT_S = 3.0
LONG_CALL_S = 900.0
SHORT_CALL_S = 30.0


class RemoteNode:
    """The node ``node_id`` at ``address`` (``host:port`` of its node API)."""

    def __init__(self, node_id: str, address: str, *, key: str) -> None:
        self.node_id = node_id
        self.address = address
        self._client = httpx.AsyncClient(
            base_url=f"http://{address}{wire.PREFIX}",
            headers={wire.CLUSTER_KEY_HEADER: key},
            timeout=httpx.Timeout(SHORT_CALL_S, connect=CONNECT_TIMEOUT_S),
            limits=httpx.Limits(max_connections=256, max_keepalive_connections=32),
            trust_env=False,
        )

    async def start(self) -> None:
        """Nothing to do: the node runs on its own."""

    async def close(self) -> None:
        await self._client.aclose()

    async def create(self, spec: SandboxSpec) -> SandboxHandle:
        body = await self._call("POST", "/sandboxes", json=wire.dump(wire.SPEC, spec), long=True)
        return wire.load(wire.HANDLE, body)

    async def kill(self, sandbox_id: str) -> None:
        await self._call("DELETE", f"/sandboxes/{sandbox_id}", long=True)

    async def list(self) -> list[SandboxHandle]:
        return wire.load(wire.HANDLES, await self._call("GET", "/sandboxes"))

    async def metrics(
        self, sandbox_id: str, *, start: datetime | None = None, end: datetime | None = None
    ) -> list[MetricSample]:
        params = {name: when.isoformat() for name, when in (("start", start), ("end", end)) if when}
        return wire.load(
            wire.SAMPLES, await self._call("GET", f"/sandboxes/{sandbox_id}/metrics", params=params)
        )

    async def usage(self) -> NodeUsage:
        return wire.load(wire.USAGE, await self._call("GET", "/usage"))

    async def logs(self, sandbox_id: str) -> list[LogLine]:
        return wire.load(wire.LINES, await self._call("GET", f"/sandboxes/{sandbox_id}/logs"))

    async def pause(self, sandbox_id: str, *, memory: bool) -> str:
        body = await self._call("POST", f"/sandboxes/{sandbox_id}/pause", json={"memory": memory}, long=True)
        return str(body["mode"])

    async def resume(self, sandbox_id: str, *, memory: bool = True) -> None:
        await self._call("POST", f"/sandboxes/{sandbox_id}/resume", json={"memory": memory}, long=True)

    async def snapshot(
        self, sandbox_id: str, destination: Path, *, memory: Path | None = None
    ) -> tuple[SandboxSpec, bool]:
        raise NotSupported(
            "a cluster's node copies a sandbox's files into its own cache (copy_files), not into a directory "
            "of the caller's, and keeps no memory in a copy yet"
        )

    async def copy_files(self, sandbox_id: str) -> tuple[SandboxSpec, str]:
        """Copy the running sandbox's writable layer into the node's layer cache (its files only): the spec
        it was started with and the new layer's directory."""
        body = await self._call("POST", f"/sandboxes/{sandbox_id}/files-copy", long=True)
        return wire.load(wire.SPEC, body["spec"]), str(body["layer"])

    async def departure(self, sandbox_id: str) -> SandboxSpec:
        """How the sandbox, paused here with its files only, starts again on another node (``Conflict``
        when it cannot move)."""
        return wire.load(wire.SPEC, await self._call("GET", f"/sandboxes/{sandbox_id}/departure"))

    async def arrive(self, sandbox_id: str, spec: SandboxSpec, *, source_node: str) -> SandboxHandle:
        """Start the sandbox ``sandbox_id`` on this node from ``spec``, over its files copied from
        ``source_node``, where it is paused; returns once it answers."""
        body = {"sandbox_id": sandbox_id, "spec": wire.dump(wire.SPEC, spec), "source_node": source_node}
        return wire.load(wire.HANDLE, await self._call("POST", "/arrivals", json=body, long=True))

    async def fork(
        self, sandbox_id: str, access_tokens: list[str | None]
    ) -> list[SandboxHandle | HutchError]:
        body = await self._call(
            "POST", f"/sandboxes/{sandbox_id}/fork", json={"tokens": access_tokens}, long=True
        )
        return wire.fork_results(body)

    async def update_egress(
        self,
        sandbox_id: str,
        *,
        internet: bool | None,
        allow_out: tuple[str, ...],
        deny_out: tuple[str, ...],
        settings: EgressSettings | None = None,
    ) -> None:
        body = {
            "internet": internet,
            "allow_out": list(allow_out),
            "deny_out": list(deny_out),
            "settings": None if settings is None else wire.dump(wire.EGRESS_SETTINGS, settings),
        }
        await self._call("PUT", f"/sandboxes/{sandbox_id}/egress", json=body)

    async def update_secrets(self, sandbox_id: str, secrets: dict[str, str]) -> None:
        await self._call("PUT", f"/sandboxes/{sandbox_id}/secrets", json={"secrets": secrets})

    async def build(self, plan: dict[str, Any]) -> AsyncIterator[dict[str, Any]]:
        """Run a template build (its plan as JSON) on the node: its events as they come, a log entry
        (``{"log": [message, level, step]}``) each, then ``{"built": …}`` or ``{"failed": …}``. It has no
        time limit of its own (its steps have theirs); ``NodeUnavailable`` if the node cannot be reached
        or goes away."""
        try:
            async with self._client.stream(
                "POST", "/builds", json=plan, timeout=httpx.Timeout(None, connect=CONNECT_TIMEOUT_S)
            ) as answer:
                if answer.status_code != 200:
                    await answer.aread()
                    raise wire.error_from(_json(answer), answer.status_code)
                async for line in answer.aiter_lines():
                    if line:
                        yield json.loads(line)
        except httpx.TransportError as error:
            raise NodeUnavailable(f"node {self.node_id} ({self.address}): {error!r}") from error

    # -- volumes: a file's content streams both ways ----------------------------------------------------

    async def create_volume(self, volume_id: str, *, size_mb: int) -> None:
        await self._call("PUT", f"/volumes/{volume_id}", json={"size_mb": size_mb}, long=True)

    async def delete_volume(self, volume_id: str) -> None:
        await self._call("DELETE", f"/volumes/{volume_id}", long=True)

    async def volume_used(self, volume_id: str) -> int:
        return int((await self._call("GET", f"/volumes/{volume_id}/used"))["bytes"])

    async def volume_stat(self, volume_id: str, path: str) -> VolumeEntry:
        body = await self._call("GET", f"/volumes/{volume_id}/stat", params={"path": path})
        return wire.load(wire.VOLUME_ENTRY, body)

    async def volume_list(self, volume_id: str, path: str, *, depth: int) -> list[VolumeEntry]:
        params = {"path": path, "depth": depth}
        listed = await self._call("GET", f"/volumes/{volume_id}/list", params=params)
        return wire.load(wire.VOLUME_ENTRIES, listed)

    async def volume_make_dir(
        self, volume_id: str, path: str, *, uid: int | None, gid: int | None, mode: int | None, force: bool
    ) -> VolumeEntry:
        body = {"path": path, "uid": uid, "gid": gid, "mode": mode, "force": force}
        return wire.load(wire.VOLUME_ENTRY, await self._call("POST", f"/volumes/{volume_id}/dirs", json=body))

    async def volume_read(self, volume_id: str, path: str) -> AsyncIterator[bytes]:
        try:
            async with self._client.stream(
                "GET", f"/volumes/{volume_id}/file", params={"path": path},
                timeout=httpx.Timeout(LONG_CALL_S, connect=CONNECT_TIMEOUT_S),
            ) as answer:  # fmt: skip
                if answer.status_code != 200:
                    await answer.aread()
                    raise wire.error_from(_json(answer), answer.status_code)
                async for chunk in answer.aiter_bytes():
                    yield chunk
        except httpx.TransportError as error:
            raise NodeUnavailable(f"node {self.node_id} ({self.address}): {error!r}") from error

    async def volume_write(
        self,
        volume_id: str,
        path: str,
        chunks: AsyncIterator[bytes],
        *,
        uid: int | None,
        gid: int | None,
        mode: int | None,
        force: bool,
    ) -> VolumeEntry:
        options = {"uid": uid, "gid": gid, "mode": mode}
        params = {"path": path, "force": force, **{k: v for k, v in options.items() if v is not None}}
        body = await self._call("PUT", f"/volumes/{volume_id}/file", params=params, content=chunks, long=True)
        return wire.load(wire.VOLUME_ENTRY, body)

    async def volume_change(
        self, volume_id: str, path: str, *, uid: int | None, gid: int | None, mode: int | None
    ) -> VolumeEntry:
        body = {"path": path, "uid": uid, "gid": gid, "mode": mode}
        changed = await self._call("PATCH", f"/volumes/{volume_id}/entry", json=body)
        return wire.load(wire.VOLUME_ENTRY, changed)

    async def volume_remove(self, volume_id: str, path: str) -> None:
        await self._call("DELETE", f"/volumes/{volume_id}/entry", params={"path": path})

    async def _call(self, method: str, path: str, *, long: bool = False, **kwargs: Any) -> Any:
        timeout = httpx.Timeout(LONG_CALL_S if long else SHORT_CALL_S, connect=CONNECT_TIMEOUT_S)
        try:
            response = await self._client.request(method, path, timeout=timeout, **kwargs)
        except httpx.TransportError as error:
            raise NodeUnavailable(
                f"node {self.node_id} ({self.address}) does not answer: {error!r}"
            ) from error
        if response.status_code == 204:
            return None
        body = _json(response)
        if response.status_code >= 400:
            raise wire.error_from(body, response.status_code)
        return body


def _json(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None
