"""What all sandboxes of a node share on the host: where their directories are, the envd they run and its
fork server, the engines, the networks, the firewall and egress proxy, the HTTP client to their envd, and
the background work (container removals, teardowns) that the node waits for when it stops.

The engines are ``crun`` (always there) and runsc (``gvisor``, optional, found on first use),
each with a state directory per data directory: two nodes on one host never see each other's containers.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
from collections.abc import Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ...errors import NotSupported
from ..idmap import IdMap
from ..types import ENGINES, Engine, engine_named
from .crun import Crun
from .egress.firewall import Firewall
from .egress.proxy import EgressProxy
from .envd_fork import EnvdForkServer
from .network import Networks
from .oci_cli import OciCli
from .runsc import Runsc
from .sandbox import ContainerSandbox
from .spare_networks import SpareNetworks
from .volumes import Volumes


class Engines:
    """crun and runsc for the node whose data is in ``data_dir``."""

    def __init__(self, data_dir: Path) -> None:
        digest = hashlib.sha256(str(Path(data_dir).resolve()).encode()).hexdigest()[:10]
        self.crun = Crun(state_dir=f"/run/hutch/crun-{digest}")
        # The user namespaces crun sandboxes' layers are shifted with.
        self.ids = IdMap()
        self._runsc_state_dir = f"/run/hutch/runsc-{digest}"
        self._runsc: Runsc | None = None

    def get(self, name: str) -> OciCli:
        """The engine called ``name``; one this host lacks is NotSupported."""
        engine = engine_named(name)
        if engine == "crun":
            return self.crun
        if engine == "gvisor":
            return self.gvisor()
        raise NotSupported(f"unknown sandbox engine {name!r}; known: {', '.join(ENGINES)}")

    def gvisor(self) -> Runsc:
        if self._runsc is None:
            self._runsc = Runsc(state_dir=self._runsc_state_dir)
        return self._runsc

    def available(self) -> list[tuple[Engine, OciCli]]:
        """The engines this host has (gVisor is optional)."""
        found: list[tuple[Engine, OciCli]] = [("crun", self.crun)]
        with contextlib.suppress(NotSupported):
            found.append(("gvisor", self.gvisor()))
        return found

    def ids_of(self, engine: Engine) -> IdMap | None:
        """How a sandbox of ``engine`` shifts its layers (crun's run in a user namespace; gVisor's do not)."""
        return self.ids if engine == "crun" else None

    def close(self) -> None:
        """Stop crun's launcher; let go of the id mapping and of the state directories, where no container is
        left in them."""
        self.crun.close()
        for state_dir in (self.crun.state_dir, self._runsc_state_dir):
            with contextlib.suppress(OSError):
                os.rmdir(state_dir)  # only when empty: the engines keep a directory per live sandbox
        self.ids.close()


@dataclass
class Host:
    """The parts every step of every sandbox uses, made once by the runtime."""

    sandboxes_dir: Path
    envd_path: Path
    # The Python that runs envd in every sandbox (None: the template's own ``/usr/bin/python3``).
    envd_python: Path | None
    engines: Engines
    networks: Networks
    # Networks made ahead for cold starts.
    spares: SpareNetworks
    firewall: Firewall
    # Host names in egress policies are judged by a transparent proxy on this node (only with an uplink).
    egress_proxy: EgressProxy | None
    # The seccomp filter of crun sandboxes, compiled once when the node starts.
    seccomp: str | None = None
    # What makes the envd of crun sandboxes, when the node can have one (envd's own Python, a static
    # busybox and the precompiled seccomp filter); without it envd is their init.
    envd_fork: EnvdForkServer | None = None
    background: set[asyncio.Task] = field(default_factory=set)
    # The node's volumes, beside its sandboxes' directories.
    volumes: Volumes = field(init=False)

    def __post_init__(self) -> None:
        self.volumes = Volumes(self.sandboxes_dir.parent / "volumes", self.engines.ids)

    @property
    def disk_blanks(self) -> Path:
        """Blank file systems, by size, that sandboxes' disks are copies of."""
        return self.sandboxes_dir.parent / "disk-blanks"

    def in_background(self, work: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        """Run ``work`` on its own; ``settle`` waits for it."""
        task = asyncio.ensure_future(work)
        self.background.add(task)
        task.add_done_callback(self.background.discard)
        return task

    async def settle(self) -> None:
        """Wait for all background work; one that fails does not stop the wait."""
        await asyncio.gather(*self.background, return_exceptions=True)

    async def apply_egress(self, sandbox: ContainerSandbox) -> None:
        """The sandbox's egress policy, to the proxy first (it must know it before connections arrive)."""
        if self.egress_proxy is not None:
            self.egress_proxy.set_policy(sandbox.network.sandbox_ip, sandbox.egress)
        await self.firewall.apply(sandbox.network.index, sandbox.network.host_if, sandbox.egress)

    async def remove_egress(self, sandbox: ContainerSandbox) -> None:
        await self.firewall.remove(sandbox.network.index, sandbox.network.host_if)
        if self.egress_proxy is not None:
            self.egress_proxy.remove(sandbox.network.sandbox_ip)
