"""Directory trees between a cluster's nodes, as tar streams over the node API: a template's layers, and
the writable layer of a sandbox that moves. Whiteouts, owners (numeric: the sandboxes' mapped ids),
overlayfs's own attributes and holes are kept; a stream is unpacked by ``tar`` into a directory the
receiving node chose, and a failed one is an error, never a half-read tree taken as whole."""

from __future__ import annotations

import asyncio
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import httpx

from ..errors import NotFound
from ..runtime import node_wire as wire

# tar keeps overlayfs's own attributes (opaque directories) and numeric owners (the sandboxes' mapped ids).
_TAR_OPTIONS = ["--xattrs", "--xattrs-include=trusted.overlay.*", "--numeric-owner", "--acls"]
CHUNK = 1 << 20
COPY_TIMEOUT_S = 1800.0


async def archive(directory: Path) -> AsyncIterator[bytes]:
    """The directory as a tar stream (its holes kept as holes)."""
    process = await asyncio.create_subprocess_exec(
        "tar", *_TAR_OPTIONS, "--sparse", "-C", str(directory), "-cf", "-", ".",
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    assert process.stdout is not None
    try:
        while chunk := await process.stdout.read(CHUNK):
            yield chunk
    finally:
        if process.returncode is None:
            process.kill()
        await process.wait()


class ArchiveFetcher:
    """Fetches tar streams from other nodes' APIs, with the cluster secret."""

    def __init__(self, key: str) -> None:
        self._client = httpx.AsyncClient(
            headers={wire.CLUSTER_KEY_HEADER: key},
            timeout=httpx.Timeout(COPY_TIMEOUT_S, connect=3),
            trust_env=False,
        )

    async def close(self) -> None:
        await self._client.aclose()

    async def unpack(self, address: str, path: str, into: Path, params: dict[str, str] | None = None) -> None:
        """Unpack the tar stream the node API at ``address`` serves at ``path`` into the directory
        ``into``. ``NotFound`` when the node has no such tree; ``CalledProcessError`` when the stream
        cannot be unpacked (cut short, or the directory's disk is full)."""
        process = await asyncio.create_subprocess_exec(
            "tar", *_TAR_OPTIONS, "--same-permissions", "--same-owner", "-C", str(into), "-xf", "-",
            stdin=subprocess.PIPE, stderr=subprocess.PIPE,
        )  # fmt: skip
        assert process.stdin is not None
        try:
            url = f"http://{address}{wire.PREFIX}{path}"
            async with self._client.stream("GET", url, params=params) as response:
                if response.status_code != 200:
                    raise NotFound(f"{response.status_code} for {path} from {address}")
                async for chunk in response.aiter_raw(CHUNK):
                    process.stdin.write(chunk)
                    await process.stdin.drain()
            process.stdin.close()
            _, stderr = await process.communicate()
        except BaseException:
            process.kill()
            await process.wait()
            raise
        if process.returncode != 0:
            raise subprocess.CalledProcessError(process.returncode or 1, "tar", stderr=stderr)
