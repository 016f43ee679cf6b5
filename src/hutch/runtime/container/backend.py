"""``ContainerRuntime``: the node's sandboxes as containers, from the node's start to its stop.

A create takes a started sandbox from the warm pool of its template and limits, or starts one (``start``),
then hands it out: envd's ``/init`` with the caller's env vars and token, its egress rules, its state file.
A kill ends its processes at once and releases the rest in the background. The runtime watches each
sandbox's init, so that a sandbox that dies on its own (a gVisor sandbox over its memory limit is killed
whole) is torn down like a killed one. Pause, snapshots and recovery after a restart are in their own
modules; this class keeps the node's list of sandboxes and checks each request against it, and samples
what each one uses while it runs (``metrics``).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

from ...errors import Conflict, HutchError, NotFound, NotSupported
from ...ids import is_id
from .. import envd_client
from ..capabilities import (
    LogLine,
    MetricSample,
    NodeUsage,
    Reserved,
    SandboxUsage,
    VolumeEntry,
    WarmPoolUsage,
)
from ..safe_path import Root
from ..sampler import Sampler
from ..types import EgressSettings, Engine, SandboxHandle, SandboxSpec, TemplateImage
from . import (
    cgroups,
    envd_fork,
    envd_log,
    page_merging,
    pause,
    recovery,
    seccomp,
    snapshots,
    state,
    volume_files,
    volumes,
)
from .checkpoints import Checkpoint
from .egress.authority import has_trust, trust_env
from .egress.firewall import EgressPolicy, Firewall
from .egress.proxy import EgressProxy
from .egress.uplink import find_uplink
from .host import Engines, Host
from .metrics import CgroupProbe
from .network import Networks
from .pool import PoolKey, WarmPool
from .sandbox import ContainerSandbox
from .spare_networks import SpareNetworks
from .start import destroy, start_sandbox

log = logging.getLogger("hutch.runtime")
# How long a kill lets envd end its streams and exit before every process of the sandbox is killed.
STOP_GRACE_S = 0.5
# How long deleting a volume waits for the teardowns of sandboxes killed just before that still hold it.
TEARDOWN_WAIT_S = 30.0


def _policy(sandbox: ContainerSandbox, spec: SandboxSpec | None = None) -> EgressPolicy:
    """The egress policy ``spec`` asks for (without one: what a create asks for unless it says otherwise,
    internet and nothing else), with the sandbox's CA when it has one."""
    authority = sandbox.directory if has_trust(sandbox.directory) else None
    if spec is None:
        return EgressPolicy(True, authority=authority)
    return EgressPolicy(
        spec.allow_internet_access, tuple(spec.allow_out), tuple(spec.deny_out), spec.egress, authority
    )


class ContainerRuntime:
    """crun or gVisor sandboxes with overlay roots, a disk and a netns each, cgroup limits and a warm pool."""

    name = "container"

    def __init__(
        self,
        *,
        data_dir: Path,
        cache_dir: Path,
        envd_path: Path,
        envd_python: Path | None = None,
        node_id: str = "local",
        subnet: str = "10.11.0.0/16",
        egress_interface: str | None = None,
        egress_name_servers: tuple[str, ...] = (),
        egress_private_networks: tuple[str, ...] = (),
        egress_upstream_ca_file: str | None = None,
        metrics_interval_s: float = 5.0,
        favor_cgroup_moves: bool = False,
        merge_envd_memory: bool = False,
        spare_networks: int = 0,
    ) -> None:
        self.cache_dir = Path(cache_dir)
        self.node_id = node_id
        uplink = find_uplink(egress_interface)  # "auto": the default route's interface
        networks = Networks(subnet, default_route=uplink is not None)
        self.host = Host(
            sandboxes_dir=Path(data_dir) / "sandboxes",
            envd_path=Path(envd_path),
            envd_python=None if envd_python is None else Path(envd_python),
            engines=Engines(Path(data_dir)),
            networks=networks,
            spares=SpareNetworks(networks, Path(data_dir) / "spare-networks", spare_networks),
            firewall=Firewall(
                subnet,
                uplink,
                name_servers=tuple(egress_name_servers),
                private_networks=tuple(egress_private_networks),
            ),
            egress_proxy=(
                EgressProxy(subnet, uplink, upstream_ca_file=egress_upstream_ca_file) if uplink else None
            ),
        )
        self.pool: WarmPool[ContainerSandbox] = WarmPool(self._prepare_for_pool, partial(destroy, self.host))
        self._templates: dict[str, TemplateImage] = {}
        self._live: dict[str, ContainerSandbox] = {}
        self._warm: dict[PoolKey, int] = {}
        self._started = False
        self._favor_cgroup_moves = favor_cgroup_moves
        self._merge_envd_memory = merge_envd_memory
        self.sampler = Sampler(metrics_interval_s)

    # -- lifecycle of the node ---------------------------------------------------------------------------

    async def start(self) -> None:
        host = self.host
        host.sandboxes_dir.mkdir(parents=True, exist_ok=True)
        limits = await asyncio.to_thread(cgroups.apply_node_limits)
        log.info("all sandboxes together: at most %(pids)d processes and %(memory)d bytes", limits)
        if self._favor_cgroup_moves:
            await asyncio.to_thread(cgroups.favor_moves)
        await host.networks.fence()
        if host.egress_proxy is not None:
            await host.egress_proxy.start()
        await host.firewall.install(proxy_port=host.egress_proxy.port if host.egress_proxy else None)
        host.seccomp = await asyncio.to_thread(seccomp.precompiled, self.cache_dir)
        merge_pages = self._merge_envd_memory and await asyncio.to_thread(page_merging.start)
        host.envd_fork = await envd_fork.for_node(
            host.envd_python, host.envd_path, host.sandboxes_dir.parent, host.seccomp, merge_pages
        )
        await recovery.recover(host, self.node_id, self._keep)
        await host.spares.start()
        self.sampler.start()
        self._started = True
        for key, size in self._warm.items():
            self.pool.keep(key, size)

    async def close(self) -> None:
        """Stop the pool and every running sandbox. Paused ones stay as they are (frozen, or only their
        files): the next start of the node adopts them, and they resume as if nothing happened."""
        await self.pool.close()
        await self.host.spares.close()
        await self.sampler.close()
        for sandbox_id, sandbox in list(self._live.items()):
            if sandbox.paused is None:
                await self.kill(sandbox_id)
            else:
                self._live.pop(sandbox_id, None)  # let go without touching it
                sandbox.release_init()
        await self.host.settle()
        await asyncio.to_thread(self.host.volumes.release_idle, self._volumes_in_use())
        await self.host.firewall.uninstall()
        await self.host.networks.unfence()
        if self.host.egress_proxy is not None:
            await self.host.egress_proxy.stop()
        if self.host.envd_fork is not None:
            await self.host.envd_fork.close()
        self.host.engines.close()

    async def let_go(self) -> None:
        """Stop the pool and the sampler and let go of every handed-out sandbox, running or paused, without
        touching it or the firewall: a cluster's node stopping for a restart, whose next start adopts them."""
        await self.pool.close()
        await self.host.spares.close()
        await self.sampler.close()
        for sandbox in self._live.values():
            sandbox.release_init()
        self._live.clear()
        await self.host.settle()
        if self.host.envd_fork is not None:  # the envds it made live on without it
            await self.host.envd_fork.close()
        self.host.engines.close()  # crun's launcher; an engine's state directory only if no container is left

    def reserved(self) -> Reserved:
        """What the node's sandboxes were given, summed: vCPUs, memory and disk (MiB), and how many."""
        specs = [s.spec for s in self._live.values() if s.spec is not None]
        return Reserved(
            cpu_count=sum(spec.cpu_count for spec in specs),
            memory_mb=sum(spec.memory_mb for spec in specs),
            disk_mb=sum(spec.disk_mb for spec in specs),
            sandboxes=len(self._live),
        )

    def keep_warm(
        self,
        template: TemplateImage,
        size: int,
        cpu_count: int,
        memory_mb: int,
        disk_mb: int = 1024,
        engine: Engine = "crun",
    ) -> None:
        """Keep ``size`` started sandboxes of ``template`` with these limits (from ``start`` on)."""
        self._templates[template.template_id] = template
        key = (template.template_id, cpu_count, memory_mb, disk_mb, engine)
        self._warm[key] = size
        if self._started:
            self.pool.keep(key, size)

    # -- create and kill ---------------------------------------------------------------------------------

    async def create(self, spec: SandboxSpec) -> SandboxHandle:
        self.host.engines.get(spec.engine)  # an engine this node lacks fails before anything is made
        volumes.check_mounts(spec.volumes)
        key = (spec.template.template_id, spec.cpu_count, spec.memory_mb, spec.disk_mb, spec.engine)
        # A pooled sandbox stands in only for the very image it was started from (not, say, a fork's
        # copy of a sandbox of that template), and has no volume mounted.
        pooled = self._templates.get(spec.template.template_id) == spec.template and not spec.volumes
        sandbox = self.pool.claim(key) if pooled else None
        # A snapshot's memory, where the engine can restore it; otherwise its files alone.
        checkpoint = None
        if spec.template.checkpoint is not None and spec.engine == "gvisor":
            checkpoint = Checkpoint(spec.template.checkpoint)
        if sandbox is None:
            sandbox = await start_sandbox(
                self.host, spec.template, spec, checkpoint=checkpoint, egress=self._egress_of(spec)
            )
        else:
            cgroups.set_cpu_shares(sandbox.container_id, cgroups.CPU_SHARES)  # from the pool's to a user's
        return await self._hand_out(sandbox, spec, checkpoint)

    async def _hand_out(
        self, sandbox: ContainerSandbox, spec: SandboxSpec, checkpoint: Checkpoint | None = None
    ) -> SandboxHandle:
        """Configure a started sandbox's envd (``/init``: one restored from ``checkpoint`` proves itself with
        the token it holds from there), apply its egress rules and make it a user's; a failure (or
        cancellation) destroys it."""
        try:
            # The variables that make TLS clients trust the sandbox's CA: given to envd, never in its spec.
            env_vars = {**trust_env(sandbox.directory), **spec.env_vars}
            await envd_client.init(
                sandbox.envd_url,
                dataclasses.replace(spec, env_vars=env_vars),
                default_user=spec.template.default_user,
                current_token=None if checkpoint is None else checkpoint.token(),
            )
            sandbox.access_token = spec.access_token
            sandbox.spec = spec
            await self._apply_egress(sandbox, _policy(sandbox, spec))
        except BaseException:  # a cancelled create too: nothing may outlive it
            await asyncio.shield(destroy(self.host, sandbox))
            raise
        sandbox.handle = SandboxHandle(
            sandbox_id=sandbox.sandbox_id,
            template_id=spec.template.template_id,
            host=sandbox.network.sandbox_ip,
            node_id=self.node_id,
            started_at=datetime.now(UTC),
        )
        state.save(sandbox)
        self._keep(sandbox)
        return sandbox.handle

    async def kill(self, sandbox_id: str) -> None:
        """Stop the sandbox's processes now; release its network, overlay and directory in the background."""
        sandbox = self._live.pop(sandbox_id, None)
        self.sampler.drop(sandbox_id)
        if sandbox is None:
            return
        if sandbox.init_pidfd is not None:
            if sandbox.paused is None and sandbox.engine == "crun":
                # envd ends its open streams with an error first (gVisor's init is not envd).
                await sandbox.stop_init(STOP_GRACE_S)
            # The init dies, and with it every process of the sandbox's pid namespace, at once.
            sandbox.kill_init()
            if sandbox.paused == "full":
                await asyncio.to_thread(cgroups.freeze, sandbox.container_id, False)  # the kill lands now
        else:
            await self.host.engines.get(sandbox.engine).delete(sandbox.container_id)
        self.host.in_background(destroy(self.host, sandbox))

    # -- pause, snapshots, forks -------------------------------------------------------------------------

    async def pause(self, sandbox_id: str, *, memory: bool) -> str:
        """Freeze the sandbox's processes in memory (``full``), or end them and keep its files
        (``filesystem``). Either way its address, disk and egress rules stay."""
        sandbox = self._running(sandbox_id)
        if sandbox.paused is not None:
            raise Conflict(f"sandbox {sandbox_id} is already paused")
        self.sampler.pause(sandbox_id)
        try:
            return await pause.pause(self.host, sandbox, memory=memory)
        finally:
            if sandbox.paused is None:  # the pause failed: it runs on
                self.sampler.resume(sandbox_id)

    async def resume(self, sandbox_id: str, *, memory: bool = True) -> None:
        """Thaw a ``full`` pause; boot a ``filesystem`` one (or any, without ``memory``) from its files."""
        sandbox = self._running(sandbox_id)
        if sandbox.paused is None:
            raise Conflict(f"sandbox {sandbox_id} is not paused")
        await pause.resume(self.host, sandbox, memory=memory)
        self._watch(sandbox)  # a new init after a boot or a restore; the same one again after a thaw
        self.sampler.resume(sandbox_id)

    # -- moves between nodes ------------------------------------------------------------------------------

    def departure(self, sandbox_id: str) -> SandboxSpec:
        """How a sandbox paused with its files only starts again on another node: its spec, with its egress
        rules as they are now. ``Conflict`` for one that runs or keeps its memory."""
        sandbox = self._running(sandbox_id)
        if sandbox.paused != "filesystem" or sandbox.spec is None:
            raise Conflict(f"sandbox {sandbox_id} is not paused with its files only: it cannot move")
        if sandbox.spec.volumes:
            raise Conflict(f"sandbox {sandbox_id} mounts volumes, which stay on their node: it cannot move")
        egress = sandbox.egress
        return dataclasses.replace(
            sandbox.spec,
            allow_internet_access=egress.internet,
            allow_out=egress.allow_out,
            deny_out=egress.deny_out,
            egress=egress.settings,
        )

    @contextlib.contextmanager
    def files(self, sandbox_id: str) -> Iterator[Path]:
        """The writable layer of a sandbox paused with its files only (no process of it runs, so nothing
        changes it while the caller reads it)."""
        self.departure(sandbox_id)
        yield self._live[sandbox_id].overlay.upper

    async def arrive(
        self, sandbox_id: str, spec: SandboxSpec, fill: Callable[[Path], Awaitable[None]]
    ) -> SandboxHandle:
        """Start the sandbox ``sandbox_id``, which moved here from another node, from ``spec``: ``fill``
        writes its writable layer, then it boots as after a pause of its files."""
        self.host.engines.get(spec.engine)
        taken = sandbox_id in self._live or (self.host.sandboxes_dir / sandbox_id).exists()
        if taken or not is_id(sandbox_id):
            raise Conflict(f"sandbox {sandbox_id!r} cannot move to this node")
        sandbox = await start_sandbox(self.host, spec.template, spec, sandbox_id=sandbox_id, fill=fill)
        return await self._hand_out(sandbox, spec)

    async def commit(self, sandbox_id: str, destination: Path) -> None:
        """Stop the sandbox, copy its writable layer to ``destination`` and remove the sandbox."""
        sandbox = self._live.pop(sandbox_id, None)
        self.sampler.drop(sandbox_id)
        if sandbox is None:
            raise NotFound(f"sandbox {sandbox_id} is not running on this node")
        await snapshots.commit(self.host, sandbox, destination)

    async def snapshot(
        self, sandbox_id: str, destination: Path, *, memory: Path | None = None
    ) -> tuple[SandboxSpec, bool]:
        """Copy a running sandbox's writable layer while its processes are frozen; it then runs on. With
        ``memory``, a gVisor sandbox is also checkpointed there (its memory and processes, taken just
        before the copy). Returns the spec it was started with and whether its memory was kept."""
        sandbox = self._running(sandbox_id)
        if sandbox.paused is not None or sandbox.spec is None:
            raise Conflict(f"sandbox {sandbox_id} is paused; resume it first")
        return sandbox.spec, await snapshots.snapshot(self.host, sandbox, destination, memory=memory)

    async def fork(
        self, sandbox_id: str, access_tokens: list[str | None]
    ) -> list[SandboxHandle | HutchError]:
        """Running copies of a gVisor sandbox, memory included: each copy is restored from one checkpoint
        over a copy of its files, with its own id, disk, address and envd access token (one per copy). The
        sandbox itself goes on. ``NotSupported`` when its memory cannot be copied (crun; a connection
        gVisor cannot save)."""
        parent = self._running(sandbox_id)
        if parent.engine != "gvisor":
            raise NotSupported("only gVisor sandboxes can be copied with their memory")
        if parent.paused is not None or parent.spec is None:
            raise Conflict(f"sandbox {sandbox_id} is paused; resume it first")
        specs = [dataclasses.replace(parent.spec, access_token=token) for token in access_tokens]
        async with snapshots.fork_checkpoint(self.host, parent) as (checkpoint, upper):
            copies = await asyncio.gather(
                *(self._restore_copy(spec, checkpoint, upper) for spec in specs), return_exceptions=True
            )
        return [snapshots.as_result(copy) for copy in copies]

    async def _restore_copy(self, spec: SandboxSpec, checkpoint: Checkpoint, upper: Path) -> SandboxHandle:
        sandbox = await start_sandbox(self.host, spec.template, spec, checkpoint=checkpoint, upper=upper)
        return await self._hand_out(sandbox, spec, checkpoint)

    # -- what a running sandbox is asked -----------------------------------------------------------------

    async def update_egress(
        self,
        sandbox_id: str,
        *,
        internet: bool | None,
        allow_out: tuple[str, ...],
        deny_out: tuple[str, ...],
        settings: EgressSettings | None = None,
    ) -> None:
        sandbox = self._running(sandbox_id)
        sandbox.egress = dataclasses.replace(
            sandbox.egress,
            internet=sandbox.egress.internet if internet is None else internet,
            allow_out=allow_out,
            deny_out=deny_out,
            settings=sandbox.egress.settings if settings is None else settings,
        )
        await self.host.apply_egress(sandbox)
        state.save(sandbox)

    async def update_secrets(self, sandbox_id: str, secrets: dict[str, str]) -> None:
        sandbox = self._running(sandbox_id)
        settings = dataclasses.replace(sandbox.egress.settings, secrets=dict(secrets))
        sandbox.egress = dataclasses.replace(sandbox.egress, settings=settings)
        await self.host.apply_egress(sandbox)
        state.save(sandbox)

    async def list(self) -> list[SandboxHandle]:
        return [s.handle for s in self._live.values() if s.handle is not None]

    async def metrics(
        self, sandbox_id: str, *, start: datetime | None = None, end: datetime | None = None
    ) -> list[MetricSample]:
        self._running(sandbox_id)
        return self.sampler.samples(sandbox_id, start, end)

    async def usage(self) -> NodeUsage:
        sandboxes = (
            SandboxUsage(
                sandbox_id=sandbox_id,
                template_id=sandbox.template.template_id,
                paused=sandbox.paused is not None,
                latest=self.sampler.latest(sandbox_id),
            )
            for sandbox_id, sandbox in self._live.items()
        )
        pools = (
            WarmPoolUsage(template_id=key[0], engine=key[4], ready=self.pool.size(key), target=size)
            for key, size in self._warm.items()
        )
        return NodeUsage(tuple(sandboxes), tuple(pools), self.sampler.pass_s)

    async def logs(self, sandbox_id: str) -> list[LogLine]:
        sandbox = self._running(sandbox_id)
        return await asyncio.to_thread(envd_log.read, sandbox.log_path)

    # -- volumes (see ``volumes`` and ``volume_files``) --------------------------------------------------

    async def create_volume(self, volume_id: str, *, size_mb: int) -> None:
        await asyncio.to_thread(self.host.volumes.create, volume_id, size_mb)

    async def delete_volume(self, volume_id: str) -> None:
        in_use = volume_id in self._volumes_in_use()
        if not in_use and self.host.volumes.users.get(volume_id) and self.host.background:
            # a sandbox killed just now still holds it until its teardown, running in the background, ends
            await asyncio.wait(set(self.host.background), timeout=TEARDOWN_WAIT_S)
        await asyncio.to_thread(self.host.volumes.delete, volume_id, in_use)

    async def volume_used(self, volume_id: str) -> int:
        return await asyncio.to_thread(self.host.volumes.used, volume_id)

    async def volume_stat(self, volume_id: str, path: str) -> VolumeEntry:
        return await self._in_volume(volume_id, volume_files.stat_path, path)

    async def volume_list(self, volume_id: str, path: str, *, depth: int) -> list[VolumeEntry]:
        return await self._in_volume(volume_id, volume_files.list_path, path, depth)

    async def volume_make_dir(
        self, volume_id: str, path: str, *, uid: int | None, gid: int | None, mode: int | None, force: bool
    ) -> VolumeEntry:
        return await self._in_volume(
            volume_id, partial(volume_files.make_dir, uid=uid, gid=gid, mode=mode, force=force), path
        )

    async def volume_read(self, volume_id: str, path: str) -> AsyncIterator[bytes]:
        fd = await self._in_volume(volume_id, volume_files.open_read, path)
        try:
            while chunk := await asyncio.to_thread(os.read, fd, volume_files.READ_CHUNK):
                yield chunk
        finally:
            os.close(fd)

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
        volume_files.check_ids(uid, gid, mode)
        opened = partial(volume_files.open_for_write, force=force)
        parent, name, new_file, fd = await self._in_volume(volume_id, opened, path)
        try:
            async for chunk in chunks:
                await asyncio.to_thread(volume_files.write_chunk, fd, chunk, path)
            finish = partial(volume_files.finish_write, uid=uid, gid=gid, mode=mode)
            return await asyncio.to_thread(finish, parent, name, new_file, fd, path)
        except BaseException:
            await asyncio.shield(asyncio.to_thread(volume_files.abandon_write, parent, new_file))
            raise
        finally:
            os.close(fd)
            os.close(parent)

    async def volume_change(
        self, volume_id: str, path: str, *, uid: int | None, gid: int | None, mode: int | None
    ) -> VolumeEntry:
        changed = partial(volume_files.change, uid=uid, gid=gid, mode=mode)
        return await self._in_volume(volume_id, changed, path)

    async def volume_remove(self, volume_id: str, path: str) -> None:
        await self._in_volume(volume_id, volume_files.remove, path)

    async def _in_volume(self, volume_id: str, work: Callable, *args: object) -> Any:
        """``work(tree, *args)`` in a thread, on a ``Root`` of the volume's mount (mounted if it was not)."""

        def run() -> Any:
            with Root(self.host.volumes.ensure_mounted(volume_id)) as tree:
                return work(tree, *args)

        return await asyncio.to_thread(run)

    def _volumes_in_use(self) -> set[str]:
        """The volumes the node's handed-out sandboxes (running or paused) mount."""
        return {m.volume_id for s in self._live.values() if s.spec is not None for m in s.spec.volumes}

    # -- the node's list of sandboxes --------------------------------------------------------------------

    async def _prepare_for_pool(self, key: PoolKey) -> ContainerSandbox:
        template_id, cpu_count, memory_mb, disk_mb, engine = key
        template = self._templates[template_id]
        spec = SandboxSpec(
            template=template, cpu_count=cpu_count, memory_mb=memory_mb, disk_mb=disk_mb, engine=engine
        )
        # Nothing of a tenant's runs in a sandbox without a start command until it is handed out: it may
        # have the policy most creates ask for (internet, no lists, no rules) now, so those apply nothing.
        early = self.host.firewall.uplink and not template.start_cmd
        return await start_sandbox(
            self.host, template, spec, pooled=True, egress=self._egress_of(None) if early else None
        )

    def _egress_of(self, spec: SandboxSpec | None) -> Callable[[ContainerSandbox], Awaitable[None]]:
        """What gives a starting sandbox the egress policy of ``spec`` (without one: the default)."""

        async def apply(sandbox: ContainerSandbox) -> None:
            await self._apply_egress(sandbox, _policy(sandbox, spec))

        return apply

    async def _apply_egress(self, sandbox: ContainerSandbox, policy: EgressPolicy) -> None:
        """Give the sandbox ``policy``, unless it has it already."""
        if sandbox.egress_applied and sandbox.egress == policy:
            return
        sandbox.egress = policy
        await self.host.apply_egress(sandbox)
        sandbox.egress_applied = True

    def _keep(self, sandbox: ContainerSandbox) -> None:
        """List a sandbox that is a user's, watch its init and sample what it uses."""
        self._live[sandbox.sandbox_id] = sandbox
        self._watch(sandbox)
        probe = CgroupProbe(lambda: sandbox.container_id, sandbox.disk.mountpoint)
        self.sampler.track(sandbox.sandbox_id, probe, running=sandbox.paused is None)

    def _running(self, sandbox_id: str) -> ContainerSandbox:
        sandbox = self._live.get(sandbox_id)
        if sandbox is None:
            raise NotFound(f"sandbox {sandbox_id} is not running on this node")
        return sandbox

    def _watch(self, sandbox: ContainerSandbox) -> None:
        """Notice when a sandbox's init ends on its own: it is then torn down like a killed one, and no
        longer listed."""
        if sandbox.init_pidfd is not None:
            asyncio.get_running_loop().add_reader(sandbox.init_pidfd, self._init_exited, sandbox)

    def _init_exited(self, sandbox: ContainerSandbox) -> None:
        if self._live.get(sandbox.sandbox_id) is sandbox:
            log.warning("sandbox %s: its init exited (out of memory?); removing it", sandbox.sandbox_id)
            self.host.in_background(self.kill(sandbox.sandbox_id))
        elif sandbox.init_pidfd is not None:
            asyncio.get_running_loop().remove_reader(sandbox.init_pidfd)
