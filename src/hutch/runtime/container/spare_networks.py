"""Networks made ahead of time: a cold start takes one that is ready instead of making its own (two ``ip``
processes, the longest of the steps a start runs side by side).

A spare is made for a sandbox id chosen with it, so its namespace is named as any sandbox's; the start
that takes it uses that id. Pooled starts make their own (they are off a create's path already), and so
does a start that keeps a given id (a sandbox moved from another node). After a take, the set is filled
again in the background a moment after that start has finished, so that the new sandbox's first requests
(a client's first command comes right after its create) do not share the CPU with it.

While a spare is no sandbox's, a file named after its sandbox id (holding its address's index) records it
in the node's ``spare-networks`` directory; the sandbox's own state file takes over when a start takes it.
A node that stopped without removing its spares removes what is recorded there when it starts again.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
from pathlib import Path

from ...ids import is_id
from ...private_files import private_directory, write_private
from ..types import new_sandbox_id
from .network import Networks, SandboxNetwork

log = logging.getLogger(__name__)
# How long after a start that took a spare the set is filled again.
REFILL_DELAY_S = 0.1


class SpareNetworks:
    """Up to ``count`` ready networks of ``networks``, recorded in ``directory``."""

    def __init__(self, networks: Networks, directory: Path, count: int) -> None:
        self.networks = networks
        self.directory = directory
        self.count = count
        self.ready: collections.deque[tuple[str, SandboxNetwork]] = collections.deque()
        self._filling: asyncio.Task[None] | None = None
        self._closed = False

    async def start(self) -> None:
        """Remove the spares an earlier run of the node left behind (after the node took its sandboxes
        back: an address one of them holds is left alone), then make the set."""
        private_directory(self.directory)
        await self._remove_recorded(keep=set(self.networks.used))
        self.fill()

    def take(self) -> tuple[str, SandboxNetwork] | None:
        """A ready network and the sandbox id it was made for; None when none is ready. The caller saves
        the sandbox's state, then calls :meth:`handed_over`."""
        return self.ready.popleft() if self.ready else None

    def handed_over(self, sandbox_id: str) -> None:
        """The sandbox's state file now records the network: its spare record goes."""
        (self.directory / sandbox_id).unlink(missing_ok=True)

    def fill(self) -> None:
        """Make spares in the background, from :data:`REFILL_DELAY_S` on, until ``count`` are ready (one
        filling at a time)."""
        if self._filling is None and not self._closed and len(self.ready) < self.count:
            self._filling = asyncio.ensure_future(self._fill())

    async def close(self) -> None:
        """Stop filling and remove every spare, ready or half made."""
        self._closed = True
        if self._filling is not None:
            self._filling.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._filling
        self.ready.clear()
        if self.directory.is_dir():
            await self._remove_recorded(keep=set())

    async def _fill(self) -> None:
        try:
            await asyncio.sleep(REFILL_DELAY_S)
            while len(self.ready) < self.count:
                sandbox_id = new_sandbox_id()
                network = self.networks.allocate(sandbox_id)
                # Recorded first: a crash while it is made leaves a record.
                write_private(self.directory / sandbox_id, str(network.index))
                try:
                    await self.networks.create(network)
                except Exception as err:  # a start makes its own network instead; the next take tries again
                    log.warning("spare network %s could not be made: %s", network.netns, err)
                    await self._remove(sandbox_id, network.index)
                    return
                self.ready.append((sandbox_id, network))
        except Exception as err:  # no address left, or the record could not be written
            log.warning("spare networks: %s", err)
        finally:
            self._filling = None

    async def _remove_recorded(self, keep: set[int]) -> None:
        """Remove each recorded spare, but for those at an address in ``keep``."""
        for record in sorted(self.directory.iterdir()):
            try:
                index = int(record.read_text())
            except (OSError, ValueError):
                index = 0
            if not is_id(record.name) or index <= 0 or index in keep:
                record.unlink(missing_ok=True)  # nothing of ours to remove: only the record goes
                continue
            await self._remove(record.name, index)

    async def _remove(self, sandbox_id: str, index: int) -> None:
        try:
            await self.networks.delete(self.networks.plan(sandbox_id, index))
        except Exception as err:
            log.error("spare network of %s could not be removed: %s", sandbox_id, err)
            return
        (self.directory / sandbox_id).unlink(missing_ok=True)
