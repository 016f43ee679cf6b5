"""Sandboxes moving between nodes: a sandbox paused with its files only, on a node being drained, starts
again on another node when it resumes. The node it goes to fetches its writable layer straight from the
node it leaves (:mod:`.archives`), into the new sandbox's own disk, so a layer larger than the sandbox's
quota fails the move rather than fill the node."""

from __future__ import annotations

import subprocess
from collections.abc import Awaitable, Callable
from pathlib import Path

import httpx

from ..catalog import Catalog
from ..catalog.repos import nodes
from ..errors import NodeUnavailable, NotFound
from .archives import ArchiveFetcher


async def source_address(catalog: Catalog, node_id: str) -> str:
    """The node API address of ``node_id``, the node a sandbox leaves (a ready node of the catalog)."""
    async with catalog.transaction() as session:
        row = await nodes.get(session, node_id)
    if row is None or row.state != "ready":
        raise NodeUnavailable(f"node {node_id} cannot hand over a sandbox: it is not a ready node")
    return row.api_address


def fill_from(fetcher: ArchiveFetcher, address: str, sandbox_id: str) -> Callable[[Path], Awaitable[None]]:
    """What writes the moving sandbox's layer: its tar stream from the node at ``address``, unpacked."""

    async def fill(upper: Path) -> None:
        try:
            await fetcher.unpack(address, f"/sandboxes/{sandbox_id}/files", upper)
        except subprocess.CalledProcessError as error:
            why = error.stderr.decode(errors="replace").strip()[-500:]
            raise NodeUnavailable(
                f"the files of sandbox {sandbox_id} could not be unpacked: {why}"
            ) from error
        except (httpx.HTTPError, NotFound) as error:
            raise NodeUnavailable(
                f"the files of sandbox {sandbox_id} could not be fetched: {error}"
            ) from error

    return fill
