"""The ``container`` backend: sandboxes as containers over overlay root filesystems, run by one of two
engines chosen per sandbox: crun (``container``, the default) or gVisor's runsc (``gvisor``, hardened).

Create: disk (the sandbox's own file system, its quota) → overlay (template below, the sandbox's layer
above) → network namespace + veth → ``crun run``/``runsc run`` with envd as init → wait for envd →
``/init``. Everything a step made is undone if a later step fails, and kill undoes it all. A warm pool
keeps started sandboxes per template, so a create usually costs only ``/init``. Each sandbox's directory
(``<data_dir>/sandboxes/<id>``) holds its config, disk image and overlay. Its envd log (the output of its
init, which root in the sandbox can write to through ``/proc/1/fd/1``) is on the sandbox's own disk, so
that it counts against the sandbox's quota rather than the host's free space.

Whatever the host writes into a sandbox's root (``/etc/hostname``, ``/etc/hosts``, ``/etc/resolv.conf``)
goes through ``safe_path``: a link the template or the sandbox left there is replaced, never followed. A
gVisor sandbox's ``/tmp`` is bind-mounted from ``tmp`` in its root (so that it stays in the writable layer,
which snapshots and copies take along); since runsc follows links in a mount source, ``tmp`` is made a real
directory before each run, boot and restore, while none of the sandbox's processes run.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
import json
import logging
import os
import secrets
import shutil
import signal
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import httpx

from ...errors import BackendUnavailable, Conflict, HutchError, NotFound, NotSupported
from ...private_files import write_private
from .. import cgroups, envd_client, envd_log
from ..capabilities import LogLine
from ..disk import Disk
from ..egress_proxy import EgressProxy
from ..firewall import EgressPolicy, Firewall, sandbox_resolv_conf
from ..idmap import IdMap
from ..network import Networks, SandboxNetwork, cut
from ..pool import PoolKey, WarmPool
from ..rootfs import Overlay, remove_tree
from ..safe_path import Root, copy_tree
from ..types import ENVD_PORT, SandboxHandle, SandboxSpec, TemplateImage, new_sandbox_id
from . import boot_id, oci, seccomp
from .checkpoints import Checkpoint
from .crun import Crun
from .engine import OciCli
from .runsc import Runsc

ENGINES = ("container", "gvisor")
# Where a gVisor sandbox paused with its memory keeps its checkpoint (in its directory).
CHECKPOINT = "checkpoint"

log = logging.getLogger("hutch.runtime")
# Pool sandboxes start at a lower CPU priority, so that refilling never slows down sandboxes in use.
POOL_NICE = 10


@dataclass
class _Sandbox:
    sandbox_id: str
    directory: Path
    disk: Disk
    overlay: Overlay
    network: SandboxNetwork
    template: TemplateImage
    engine: str = "container"
    access_token: str | None = None
    handle: SandboxHandle | None = None
    # A pidfd of the container's init: signalling it cannot hit a recycled pid.
    init_pidfd: int | None = None
    egress: EgressPolicy = field(default_factory=EgressPolicy)
    # What it was started with (a boot after a filesystem pause starts it the same way).
    spec: SandboxSpec | None = None
    # ``full`` (frozen in memory) or ``filesystem`` (processes ended, files kept) while paused.
    paused: str | None = None
    # The removal of its stopped container, left to run after a pause returned (runsc takes ~1 s).
    removing: asyncio.Task[None] | None = None

    @property
    def envd_url(self) -> str:
        return f"http://{self.network.sandbox_ip}:{ENVD_PORT}"


def _renice(sandbox: _Sandbox, value: int) -> None:
    """Set the CPU priority of a sandbox's init (its future processes inherit it)."""
    if sandbox.init_pidfd is not None:
        with contextlib.suppress(OSError):
            os.setpriority(os.PRIO_PROCESS, _pid_of(sandbox.init_pidfd), value)


def _pid_of(pidfd: int) -> int:
    with open(f"/proc/self/fdinfo/{pidfd}") as info:
        for line in info:
            if line.startswith("Pid:"):
                return int(line.split()[1])
    raise ProcessLookupError("the sandbox's init is gone")


def _save_state(sandbox: _Sandbox) -> None:
    """What a restarted node needs to adopt the sandbox (``sandbox.json``, readable by root only)."""
    state = {
        "template": sandbox.template.template_id,
        "rootfs": str(sandbox.template.rootfs),
        "index": sandbox.network.index,
        "engine": sandbox.engine,
        "disk_mb": sandbox.disk.size_mb,
        "claimed": sandbox.handle is not None,
        "paused": sandbox.paused,
    }
    if sandbox.handle is not None:
        state["started_at"] = sandbox.handle.started_at.isoformat()
        state["token"] = sandbox.access_token
        if sandbox.spec is not None:
            state["spec"] = dataclasses.asdict(sandbox.spec)
        state["egress"] = {
            "internet": sandbox.egress.internet,
            "allow_out": list(sandbox.egress.allow_out),
            "deny_out": list(sandbox.egress.deny_out),
        }
    write_private(sandbox.directory / "sandbox.json", json.dumps(state, default=str))  # (paths)


def _spec_of(state: dict) -> SandboxSpec | None:
    """The spec ``_save_state`` kept (a boot after a restart needs it)."""
    data = state.get("spec")
    if not data:
        return None
    kept = data["template"]
    paths = {key: Path(kept[key]) for key in ("rootfs", "checkpoint") if kept.get(key)}
    template = TemplateImage(**{**kept, **paths})
    egress = {"allow_out": tuple(data.get("allow_out", ())), "deny_out": tuple(data.get("deny_out", ()))}
    return SandboxSpec(**{**data, "template": template, **egress})


def _load_state(directory: Path) -> dict:
    try:
        return json.loads((directory / "sandbox.json").read_text())
    except (OSError, ValueError):
        return {}


def _write_resolv_conf(root: Path) -> None:
    """With egress, the sandbox resolves names through the host's (non-loopback) name servers. What the
    sandbox's root has there (a link, say, to a host file) is replaced, never written through."""
    try:
        servers = sandbox_resolv_conf(Path("/etc/resolv.conf").read_text())
    except OSError:
        return
    if servers:
        _write_etc(root, {"resolv.conf": servers})


def _log_of(disk: Disk) -> Path:
    """Where the sandbox's envd log is: on its own disk, beside its overlay's layers."""
    return disk.mountpoint / "envd.log"


def _as_result(outcome: SandboxHandle | BaseException) -> SandboxHandle | HutchError:
    """One copy's outcome for the caller: its handle, or why it failed (a cancellation goes on up)."""
    if isinstance(outcome, SandboxHandle | HutchError):
        return outcome
    if not isinstance(outcome, Exception):
        raise outcome
    return BackendUnavailable(f"the copy could not be restored: {outcome}")


def _write_identity(root: Path, sandbox_id: str) -> None:
    """/etc/hostname and /etc/hosts naming the sandbox (sudo and many tools resolve the host name), in place
    of whatever the sandbox's root has there."""
    hosts = f"127.0.0.1\tlocalhost\n::1\tlocalhost\n127.0.1.1\t{sandbox_id}\n"
    _write_etc(root, {"hostname": f"{sandbox_id}\n", "hosts": hosts})


def _write_etc(root: Path, files: dict[str, str]) -> None:
    """Files in the ``/etc`` of a sandbox's root. A root whose ``/etc`` leads nowhere inside it (a link out,
    say) gets none: it broke its own ``/etc``, and nothing outside it is touched."""
    with Root(root) as tree:
        for name, content in files.items():
            try:
                tree.write_file(f"etc/{name}", content)
            except OSError as err:
                log.warning("cannot write /etc/%s in %s: %s", name, root, err)


def _real_tmp(sandbox: _Sandbox) -> None:
    """A gVisor sandbox's ``/tmp`` is bind-mounted from its root by path, and runsc would follow a link
    there onto the host: it is made a real directory before each run, boot and restore, while none of the
    sandbox's processes run (a template or an earlier life of the sandbox may have left a link)."""
    if sandbox.engine == "gvisor":
        with Root(sandbox.overlay.merged) as tree:
            tree.ensure_directory("tmp", 0o1777)


class ContainerRuntime:
    """crun or gVisor sandboxes with overlay roots, a disk and a netns each, cgroup limits and a warm pool."""

    name = "container"

    def __init__(
        self,
        *,
        data_dir: Path,
        cache_dir: Path,
        envd_path: Path,
        envd_runtime: Path | None = None,
        node_id: str = "local",
        subnet: str = "10.11.0.0/16",
        warm_pool: dict[str, int] | None = None,
        egress_interface: str | None = None,
        egress_private_networks: tuple[str, ...] = (),
    ) -> None:
        self.sandboxes_dir = Path(data_dir) / "sandboxes"
        self.cache_dir = Path(cache_dir)
        self.envd_path = Path(envd_path)
        # The Python that runs envd in every sandbox (None: the template's own ``/usr/bin/python3``).
        self.envd_runtime = None if envd_runtime is None else Path(envd_runtime)
        self.node_id = node_id
        self.networks = Networks(subnet, default_route=egress_interface is not None)
        self.firewall = Firewall(subnet, egress_interface, private_networks=tuple(egress_private_networks))
        # Host names in egress policies are judged by a transparent proxy on this node (only with an uplink).
        self.egress_proxy = EgressProxy(subnet, egress_interface) if egress_interface else None
        # A state directory per engine and data directory: two nodes on a host never see each other's.
        digest = hashlib.sha256(str(Path(data_dir).resolve()).encode()).hexdigest()[:10]
        self.crun = Crun(state_dir=f"/run/hutch/crun-{digest}")
        # The user namespaces crun sandboxes' layers are shifted with.
        self.ids = IdMap()
        self._runsc_state_dir = f"/run/hutch/runsc-{digest}"
        self._runsc: Runsc | None = None
        self.warm_sizes = dict(warm_pool or {})
        self.pool: WarmPool[_Sandbox] = WarmPool(self._prepare_for_pool, self._destroy)
        self._templates: dict[str, TemplateImage] = {}
        self._live: dict[str, _Sandbox] = {}
        self._seccomp: str | None = None
        self._warm: list[tuple[PoolKey, int]] = []
        self._cleanups: set[asyncio.Task] = set()
        self._started = False
        self._client = httpx.AsyncClient(trust_env=False)

    # -- lifecycle of the node ---------------------------------------------------------------------------

    async def start(self) -> None:
        self.sandboxes_dir.mkdir(parents=True, exist_ok=True)
        limits = await asyncio.to_thread(cgroups.apply_node_limits)
        log.info("all sandboxes together: at most %(pids)d processes and %(memory)d bytes", limits)
        if self.egress_proxy is not None:
            await self.egress_proxy.start()
        await self.firewall.install(proxy_port=self.egress_proxy.port if self.egress_proxy else None)
        self._seccomp = await asyncio.to_thread(seccomp.precompiled, self.cache_dir)
        await self._recover()
        self._started = True
        for key, size in self._warm:
            self.pool.keep(key, size)

    async def close(self) -> None:
        """Stop the pool and every running sandbox. Paused ones stay as they are (frozen, or only their
        files): the next start of the node adopts them, and they resume as if nothing happened."""
        await self.pool.close()
        for sandbox_id, sandbox in list(self._live.items()):
            if sandbox.paused is None:
                await self.kill(sandbox_id)
            else:
                self._forget(sandbox)
        await asyncio.gather(*self._cleanups, return_exceptions=True)
        await self.firewall.uninstall()
        if self.egress_proxy is not None:
            await self.egress_proxy.stop()
        for state_dir in (self.crun.state_dir, self._runsc_state_dir):
            with contextlib.suppress(OSError):
                os.rmdir(state_dir)  # only when empty: the engines keep a directory per live sandbox
        await self._client.aclose()
        self.ids.close()

    def keep_warm(
        self,
        template: TemplateImage,
        size: int,
        cpu_count: int,
        memory_mb: int,
        disk_mb: int = 1024,
        engine: str = "container",
    ) -> None:
        """Keep ``size`` started sandboxes of ``template`` with these limits (from ``start`` on)."""
        self._templates[template.template_id] = template
        key = (template.template_id, cpu_count, memory_mb, disk_mb, engine)
        if self._started:
            self.pool.keep(key, size)
        else:
            self._warm.append((key, size))

    # -- create and kill ---------------------------------------------------------------------------------

    async def create(self, spec: SandboxSpec) -> SandboxHandle:
        self.engine(spec.runtime)  # an engine this node lacks fails before anything is made
        key = (spec.template.template_id, spec.cpu_count, spec.memory_mb, spec.disk_mb, spec.runtime)
        # A pooled sandbox stands in only for the very image it was started from (not, say, a fork's
        # copy of a sandbox of that template).
        pooled = self._templates.get(spec.template.template_id) == spec.template
        sandbox = self.pool.claim(key) if pooled else None
        # A snapshot's memory, where the engine can restore it; otherwise its files alone.
        checkpoint = None
        if spec.template.checkpoint is not None and spec.runtime == "gvisor":
            checkpoint = Checkpoint(spec.template.checkpoint)
        if sandbox is None:
            sandbox = await self._start(spec.template, spec, checkpoint=checkpoint)
        else:
            _renice(sandbox, 0)  # from background priority to a user's sandbox
        return await self._hand_out(sandbox, spec, checkpoint)

    async def _hand_out(
        self, sandbox: _Sandbox, spec: SandboxSpec, checkpoint: Checkpoint | None = None
    ) -> SandboxHandle:
        """Configure a started sandbox's envd (``/init``: one restored from ``checkpoint`` proves itself with
        the token it holds from there), apply its egress rules and make it a user's; a failure (or
        cancellation) destroys it."""
        try:
            await envd_client.init(
                self._client,
                sandbox.envd_url,
                spec,
                default_user=spec.template.default_user,
                current_token=None if checkpoint is None else checkpoint.token(),
            )
            sandbox.access_token = spec.access_token
            sandbox.spec = spec
            sandbox.egress = EgressPolicy(
                spec.allow_internet_access, tuple(spec.allow_out), tuple(spec.deny_out)
            )
            await self._apply_egress(sandbox)
        except BaseException:  # a cancelled create too: nothing may outlive it
            await asyncio.shield(self._destroy(sandbox))
            raise
        sandbox.handle = SandboxHandle(
            sandbox_id=sandbox.sandbox_id,
            template_id=spec.template.template_id,
            host=sandbox.network.sandbox_ip,
            node_id=self.node_id,
            started_at=datetime.now(UTC),
        )
        _save_state(sandbox)
        self._live[sandbox.sandbox_id] = sandbox
        self._watch(sandbox)
        return sandbox.handle

    async def kill(self, sandbox_id: str) -> None:
        """Stop the sandbox's processes now; release its network, overlay and directory in the background."""
        sandbox = self._live.pop(sandbox_id, None)
        if sandbox is None:
            return
        if sandbox.init_pidfd is not None:
            # The init dies, and with it every process of the sandbox's pid namespace, at once.
            with contextlib.suppress(ProcessLookupError):
                signal.pidfd_send_signal(sandbox.init_pidfd, signal.SIGKILL)
            if sandbox.paused == "full":
                await asyncio.to_thread(cgroups.freeze, sandbox.sandbox_id, False)  # the kill lands now
        else:
            await self.engine(sandbox.engine).delete(sandbox.sandbox_id)
        task = asyncio.ensure_future(self._destroy(sandbox))
        self._cleanups.add(task)
        task.add_done_callback(self._cleanups.discard)

    async def commit(self, sandbox_id: str, destination: Path) -> None:
        """Stop the sandbox, copy its writable layer to ``destination`` and remove the sandbox."""
        sandbox = self._live.pop(sandbox_id, None)
        if sandbox is None:
            raise NotFound(f"sandbox {sandbox_id} is not running on this node")
        try:
            await self.engine(sandbox.engine).delete(sandbox.sandbox_id)
            with sandbox.overlay.stored_upper() as upper:
                await copy_tree(upper, destination)
        finally:
            await self._destroy(sandbox)

    async def snapshot(
        self, sandbox_id: str, destination: Path, *, memory: Path | None = None
    ) -> tuple[SandboxSpec, bool]:
        """Copy a running sandbox's writable layer while its processes are frozen; it then runs on. With
        ``memory``, a gVisor sandbox is also checkpointed there (its memory and processes, taken just
        before the copy). Returns the spec it was started with and whether its memory was kept."""
        sandbox = self._running(sandbox_id)
        if sandbox.paused is not None or sandbox.spec is None:
            raise Conflict(f"sandbox {sandbox_id} is paused; resume it first")
        # What the sandbox's kernel (gVisor's, too) still holds in memory goes to its files first.
        await envd_client.run(
            self._client, sandbox.envd_url, "sync", user="root", shell=("/bin/sh", "-c"),
            access_token=sandbox.access_token, timeout_s=60,
        )  # fmt: skip
        if memory is not None and sandbox.engine == "gvisor":
            if await self._capture(sandbox, Checkpoint(memory), destination):
                return sandbox.spec, True
            await asyncio.to_thread(shutil.rmtree, memory, True)  # its files, then, as on crun
        await asyncio.to_thread(cgroups.freeze, sandbox_id, True)
        try:
            with sandbox.overlay.stored_upper() as upper:
                await copy_tree(upper, destination)
        finally:
            await asyncio.to_thread(cgroups.freeze, sandbox_id, False)
        return sandbox.spec, False

    async def _capture(self, sandbox: _Sandbox, checkpoint: Checkpoint, upper: Path) -> bool:
        """Checkpoint a running gVisor sandbox and copy its writable layer to ``upper`` while it is held
        paused, so that the files match the memory; it then runs on. False (nothing taken) when its memory
        cannot be saved now."""
        checkpoint.create(sandbox.access_token)
        if not await self._save(sandbox, checkpoint.image):
            return False
        try:
            await copy_tree(sandbox.overlay.upper, upper)
            checkpoint.boot_id.write_text(boot_id.read(sandbox.disk.mountpoint))
        finally:
            await self._gvisor().resume(sandbox.sandbox_id)
        return True

    async def fork(
        self, sandbox_id: str, access_tokens: list[str | None]
    ) -> list[SandboxHandle | HutchError]:
        """Running copies of a gVisor sandbox, memory included: it is checkpointed while held paused and
        each copy is restored from that one image over a copy of its files, with its own id, disk,
        address and envd access token (one per copy). The sandbox itself goes on. ``NotSupported`` when
        its memory cannot be copied (crun; a connection gVisor cannot save)."""
        parent = self._running(sandbox_id)
        if parent.engine != "gvisor":
            raise NotSupported("only gVisor sandboxes can be copied with their memory")
        if parent.paused is not None or parent.spec is None:
            raise Conflict(f"sandbox {sandbox_id} is paused; resume it first")
        checkpoint = Checkpoint(parent.directory / f"fork-{secrets.token_hex(4)}")
        upper = checkpoint.directory / "upper"
        try:
            if not await self._capture(parent, checkpoint, upper):
                raise NotSupported(f"the memory of sandbox {sandbox_id} cannot be saved now")
            specs = [dataclasses.replace(parent.spec, access_token=token) for token in access_tokens]
            copies = await asyncio.gather(
                *(self._restore_copy(spec, checkpoint, upper) for spec in specs), return_exceptions=True
            )
        finally:
            await asyncio.to_thread(shutil.rmtree, checkpoint.directory, True)
        return [_as_result(copy) for copy in copies]

    async def _restore_copy(self, spec: SandboxSpec, checkpoint: Checkpoint, upper: Path) -> SandboxHandle:
        sandbox = await self._start(spec.template, spec, checkpoint=checkpoint, upper=upper)
        return await self._hand_out(sandbox, spec, checkpoint)

    async def pause(self, sandbox_id: str, *, memory: bool) -> str:
        """Freeze the sandbox's processes in memory (``full``), or end them and keep its files
        (``filesystem``). Either way its address, disk and egress rules stay; the host's connections to
        it are cut, so streams in flight end now rather than hang."""
        sandbox = self._running(sandbox_id)
        if sandbox.paused is not None:
            raise Conflict(f"sandbox {sandbox_id} is already paused")
        if memory and sandbox.engine == "gvisor":
            # Its memory is on disk (``_save`` cuts the connections): the Sentry, and with it the sandbox's
            # memory, can go. If runsc cannot save it, the sandbox ran on untouched, and is paused with its
            # files only.
            saved = await self._save(sandbox, sandbox.directory / CHECKPOINT)
            await self._stop(sandbox)
            sandbox.paused = "full" if saved else "filesystem"
        elif memory:
            await cut(sandbox.network)
            await asyncio.to_thread(cgroups.freeze, sandbox_id, True)
            sandbox.paused = "full"
        else:
            await cut(sandbox.network)
            await self._stop(sandbox)
            sandbox.paused = "filesystem"
        _save_state(sandbox)
        return sandbox.paused

    async def resume(self, sandbox_id: str, *, memory: bool = True) -> None:
        """Thaw a ``full`` pause; boot a ``filesystem`` one (or any, without ``memory``) from its files."""
        sandbox = self._running(sandbox_id)
        if sandbox.paused is None:
            raise Conflict(f"sandbox {sandbox_id} is not paused")
        checkpointed = sandbox.engine == "gvisor" and sandbox.paused == "full"
        if checkpointed and memory:
            await self._restore(sandbox)
        elif sandbox.paused == "full" and memory:
            await asyncio.to_thread(cgroups.freeze, sandbox_id, False)
        else:
            if sandbox.paused == "full" and not checkpointed:
                await self._stop(sandbox)
            await self._boot(sandbox)
        if checkpointed:
            await asyncio.to_thread(shutil.rmtree, sandbox.directory / CHECKPOINT, True)
        sandbox.paused = None
        _save_state(sandbox)

    async def _save(self, sandbox: _Sandbox, image: Path) -> bool:
        """Checkpoint a gVisor sandbox whole (memory, processes, its kernel's state) to ``image`` while its
        Sentry holds every task stopped (``runsc pause``); it stays paused so, and its files no longer
        change. False, with the sandbox running on untouched, when runsc cannot save it: gVisor saves no
        open TCP connection, and the host's are cut first (a second try lets their ends settle), but one
        the sandbox opened itself, to outside, stays."""
        runsc = self._gvisor()
        for attempt in range(2):
            await cut(sandbox.network)
            await runsc.pause(sandbox.sandbox_id)
            try:
                image.mkdir(mode=0o700, parents=True, exist_ok=True)
                await runsc.checkpoint(sandbox.sandbox_id, image, leave_running=True)
                return True
            except BackendUnavailable as err:
                await runsc.resume(sandbox.sandbox_id)
                await asyncio.to_thread(shutil.rmtree, image, True)
                log.warning("sandbox %s: its memory cannot be saved: %s", sandbox.sandbox_id, err)
            if attempt == 0:
                await asyncio.sleep(0.1)
        return False

    async def _restore(self, sandbox: _Sandbox) -> None:
        """Start a checkpointed gVisor sandbox again where it stopped."""
        runsc = self._gvisor()
        await self._container_removed(sandbox)
        await self.networks.address(sandbox.network)
        _real_tmp(sandbox)
        image = sandbox.directory / CHECKPOINT
        pid = await runsc.restore(sandbox.sandbox_id, sandbox.directory, image, _log_of(sandbox.disk))
        sandbox.init_pidfd = os.pidfd_open(pid)
        await envd_client.wait_healthy(self._client, sandbox.envd_url)
        self._watch(sandbox)

    def _forget(self, sandbox: _Sandbox) -> None:
        """Let go of a paused sandbox without touching it (the node stops; it will be adopted again)."""
        self._live.pop(sandbox.sandbox_id, None)
        if sandbox.init_pidfd is not None:
            asyncio.get_running_loop().remove_reader(sandbox.init_pidfd)
            os.close(sandbox.init_pidfd)
            sandbox.init_pidfd = None

    def _running(self, sandbox_id: str) -> _Sandbox:
        sandbox = self._live.get(sandbox_id)
        if sandbox is None:
            raise NotFound(f"sandbox {sandbox_id} is not running on this node")
        return sandbox

    async def _stop(self, sandbox: _Sandbox) -> None:
        """End every process of the sandbox at once; its container is removed in the background. Its
        files, address and rules stay."""
        if sandbox.init_pidfd is not None:
            asyncio.get_running_loop().remove_reader(sandbox.init_pidfd)
            with contextlib.suppress(ProcessLookupError):
                signal.pidfd_send_signal(sandbox.init_pidfd, signal.SIGKILL)
            if sandbox.paused == "full":
                await asyncio.to_thread(cgroups.freeze, sandbox.sandbox_id, False)
            os.close(sandbox.init_pidfd)
            sandbox.init_pidfd = None
        self._remove_container_later(sandbox)

    def _remove_container_later(self, sandbox: _Sandbox) -> None:
        async def remove() -> None:
            await self.engine(sandbox.engine).delete(sandbox.sandbox_id)
            await asyncio.to_thread(cgroups.remove_sandbox, sandbox.sandbox_id)

        sandbox.removing = asyncio.ensure_future(remove())
        self._cleanups.add(sandbox.removing)
        sandbox.removing.add_done_callback(self._cleanups.discard)

    async def _container_removed(self, sandbox: _Sandbox) -> None:
        """Wait for the removal ``_stop`` or a checkpoint left running (before the id is used again)."""
        if sandbox.removing is not None:
            with contextlib.suppress(Exception):
                await sandbox.removing
            sandbox.removing = None

    async def _boot(self, sandbox: _Sandbox) -> None:
        """Start the sandbox's container again over its files, as it was first started."""
        spec = sandbox.spec
        if spec is None:
            raise BackendUnavailable(f"sandbox {sandbox.sandbox_id} cannot boot: how it was made is unknown")
        engine = self.engine(sandbox.engine)
        directory = sandbox.directory
        await self._container_removed(sandbox)
        if sandbox.engine == "gvisor":
            await self.networks.address(sandbox.network)
        _real_tmp(sandbox)
        boot_id.renew(sandbox.disk.mountpoint)
        pid = await engine.run_detached(sandbox.sandbox_id, directory, _log_of(sandbox.disk))
        sandbox.init_pidfd = os.pidfd_open(pid)
        await envd_client.wait_healthy(self._client, sandbox.envd_url)
        await envd_client.start_template(self._client, sandbox.envd_url, spec.template)
        await envd_client.init(self._client, sandbox.envd_url, spec, default_user=spec.template.default_user)
        self._watch(sandbox)

    async def update_egress(
        self, sandbox_id: str, *, internet: bool | None, allow_out: tuple[str, ...], deny_out: tuple[str, ...]
    ) -> None:
        sandbox = self._live.get(sandbox_id)
        if sandbox is None:
            raise NotFound(f"sandbox {sandbox_id} is not running on this node")
        sandbox.egress = EgressPolicy(
            sandbox.egress.internet if internet is None else internet, allow_out, deny_out
        )
        await self._apply_egress(sandbox)
        _save_state(sandbox)

    async def list(self) -> list[SandboxHandle]:
        return [s.handle for s in self._live.values() if s.handle is not None]

    async def metrics(self, sandbox_id: str) -> dict:
        sandbox = self._running(sandbox_id)
        if sandbox.paused is not None:
            raise Conflict(f"sandbox {sandbox_id} is paused")
        return await envd_client.metrics(self._client, sandbox.envd_url, sandbox.access_token)

    async def logs(self, sandbox_id: str) -> list[LogLine]:
        sandbox = self._live.get(sandbox_id)
        if sandbox is None:
            raise NotFound(f"sandbox {sandbox_id} is not running on this node")
        return await asyncio.to_thread(envd_log.read, _log_of(sandbox.disk))

    def _watch(self, sandbox: _Sandbox) -> None:
        """Notice when a sandbox's init ends on its own (a gVisor sandbox over its memory limit is killed
        whole): it is then torn down like a killed one, and no longer listed."""
        if sandbox.init_pidfd is not None:
            asyncio.get_running_loop().add_reader(sandbox.init_pidfd, self._init_exited, sandbox)

    def _init_exited(self, sandbox: _Sandbox) -> None:
        if self._live.get(sandbox.sandbox_id) is sandbox:
            log.warning("sandbox %s: its init exited (out of memory?); removing it", sandbox.sandbox_id)
            task = asyncio.ensure_future(self.kill(sandbox.sandbox_id))
            self._cleanups.add(task)
            task.add_done_callback(self._cleanups.discard)
        elif sandbox.init_pidfd is not None:
            asyncio.get_running_loop().remove_reader(sandbox.init_pidfd)

    def engine(self, name: str) -> OciCli:
        """The engine called ``name`` (``container`` or ``gvisor``); one this host lacks is NotSupported."""
        if name == "container":
            return self.crun
        if name == "gvisor":
            return self._gvisor()
        raise NotSupported(f"unknown sandbox runtime {name!r}; known: {', '.join(ENGINES)}")

    def _ids_of(self, engine: str) -> IdMap | None:
        """How a sandbox of ``engine`` shifts its layers (crun's run in a user namespace; gVisor's do not)."""
        return self.ids if engine == "container" else None

    def _gvisor(self) -> Runsc:
        if self._runsc is None:
            self._runsc = Runsc(state_dir=self._runsc_state_dir)
        return self._runsc

    # -- the steps ---------------------------------------------------------------------------------------

    async def _prepare_for_pool(self, key: PoolKey) -> _Sandbox:
        template_id, cpu_count, memory_mb, disk_mb, engine = key
        template = self._templates[template_id]
        spec = SandboxSpec(
            template=template, cpu_count=cpu_count, memory_mb=memory_mb, disk_mb=disk_mb, runtime=engine
        )
        return await self._start(template, spec)

    async def _start(
        self,
        template: TemplateImage,
        spec: SandboxSpec,
        *,
        nice: int = 0,
        checkpoint: Checkpoint | None = None,
        upper: Path | None = None,
    ) -> _Sandbox:
        """Root filesystem, network, container, envd answering; all undone if any step fails. From a
        ``checkpoint`` (gVisor), the container is restored instead of booted, with ``upper`` (if any) as
        the start of its writable layer: it goes on where the checkpointed sandbox was, with its host name
        and boot id."""
        sandbox_id = new_sandbox_id()
        directory = self.sandboxes_dir / sandbox_id
        directory.mkdir(parents=True)
        disk = Disk(directory, spec.disk_mb)
        overlay = Overlay(directory, template.rootfs, disk.mountpoint, self._ids_of(spec.runtime))
        network = self.networks.allocate(sandbox_id)
        sandbox = _Sandbox(sandbox_id, directory, disk, overlay, network, template, engine=spec.runtime)
        async with AsyncExitStack() as undo:
            undo.push_async_callback(self._destroy, sandbox)
            _save_state(sandbox)  # first, so that a restart can undo whatever follows
            await asyncio.to_thread(disk.create)
            if upper is not None:
                await copy_tree(upper, overlay.upper)
            if checkpoint is not None:
                boot_id.write(disk.mountpoint, checkpoint.boot_id.read_text())
            overlay.mount()
            if checkpoint is None:
                _write_identity(overlay.merged, sandbox_id)
            if self.firewall.uplink:
                _write_resolv_conf(overlay.merged)
            overlay.hand_over("etc/hostname", "etc/hosts", "etc/resolv.conf")
            _real_tmp(sandbox)
            await self.networks.create(network)
            config = oci.config(
                sandbox_id=sandbox_id,
                rootfs=overlay.merged,
                netns_path=network.netns_path,
                spec=spec,
                envd=self.envd_path,
                envd_runtime=self.envd_runtime,
                seccomp_bpf=self._seccomp,
                engine=spec.runtime,
            )
            if checkpoint is None:
                boot_id.renew(disk.mountpoint)
            boot_id.mount(config, disk.mountpoint)
            write_private(directory / "config.json", json.dumps(config))  # it holds the env vars
            engine = self.engine(spec.runtime)
            if checkpoint is None:
                pid = await engine.run_detached(sandbox_id, directory, _log_of(disk), nice=nice)
            else:
                pid = await self._gvisor().restore(sandbox_id, directory, checkpoint.image, _log_of(disk))
            sandbox.init_pidfd = os.pidfd_open(pid)
            await envd_client.wait_healthy(self._client, sandbox.envd_url)
            if checkpoint is None:
                await envd_client.start_template(self._client, sandbox.envd_url, template)
            undo.pop_all()
        return sandbox

    async def _apply_egress(self, sandbox: _Sandbox) -> None:
        """The sandbox's egress policy, to the proxy first (it must know it before connections arrive)."""
        if self.egress_proxy is not None:
            self.egress_proxy.set_policy(sandbox.network.sandbox_ip, sandbox.egress)
        await self.firewall.apply(sandbox.network.index, sandbox.network.host_if, sandbox.egress)

    async def _remove_egress(self, sandbox: _Sandbox) -> None:
        await self.firewall.remove(sandbox.network.index, sandbox.network.host_if)
        if self.egress_proxy is not None:
            self.egress_proxy.remove(sandbox.network.sandbox_ip)

    async def _destroy(self, sandbox: _Sandbox) -> None:
        """Stop the container and release its network, overlay and directory; safe on partial state."""
        await self._container_removed(sandbox)
        if sandbox.init_pidfd is not None:
            asyncio.get_running_loop().remove_reader(sandbox.init_pidfd)
            os.close(sandbox.init_pidfd)
            sandbox.init_pidfd = None
        errors = []
        for step in (
            lambda: self.engine(sandbox.engine).delete(sandbox.sandbox_id),
            lambda: asyncio.to_thread(cgroups.remove_sandbox, sandbox.sandbox_id),
            lambda: self._remove_egress(sandbox),
            lambda: self.networks.delete(sandbox.network),
            lambda: asyncio.to_thread(sandbox.overlay.unmount),
            lambda: asyncio.to_thread(sandbox.disk.remove),
        ):
            try:
                await step()
            except Exception as err:
                errors.append(err)
        if not errors:
            await asyncio.to_thread(remove_tree, sandbox.directory)
            return
        log.error("sandbox %s: cleanup incomplete: %s", sandbox.sandbox_id, errors)
        raise BackendUnavailable(f"cleanup of sandbox {sandbox.sandbox_id} incomplete: {errors[0]}")

    async def _recover(self) -> None:
        """After a restart: adopt the claimed sandboxes that still run and answer; tear down the rest
        (pool sandboxes, half-made ones, dead ones), and any container of ours without a directory."""
        known = {(name, cid) for name, engine in self._engines() for cid in await engine.list()}
        for directory in sorted(self.sandboxes_dir.iterdir()):
            state = _load_state(directory)
            engine = state.get("engine", "container")
            known.discard((engine, directory.name))
            disk = Disk(directory, int(state.get("disk_mb", 0)))
            sandbox = _Sandbox(
                directory.name,
                directory,
                disk,
                Overlay(directory, Path(state.get("rootfs", "/")), disk.mountpoint, self._ids_of(engine)),
                self.networks.plan(directory.name, int(state.get("index", 0))),
                TemplateImage(state.get("template", ""), Path(state.get("rootfs", "/"))),
                engine=engine if engine in ENGINES else "container",
                access_token=state.get("token"),
            )
            if sandbox.network.index:
                self.networks.used.add(sandbox.network.index)
            if state.get("claimed") and await self._adopt(sandbox, state):
                log.info("sandbox %s: adopted after a restart", sandbox.sandbox_id)
                continue
            await self._destroy(sandbox)
        for name, container_id in known:
            await self.engine(name).delete(container_id)

    def _engines(self) -> list[tuple[str, OciCli]]:
        """The engines this host has (gVisor is optional)."""
        found: list[tuple[str, OciCli]] = [("container", self.crun)]
        with contextlib.suppress(NotSupported):
            found.append(("gvisor", self.engine("gvisor")))
        return found

    async def _adopt(self, sandbox: _Sandbox, state: dict) -> bool:
        """Take a sandbox back after a restart: a running one that answers, a frozen one whose container is
        still there, or one paused to disk (its files, or a gVisor checkpoint: it has no container)."""
        sandbox.paused = state.get("paused")
        sandbox.spec = _spec_of(state)
        if sandbox.spec is not None:
            sandbox.template = sandbox.spec.template
        engine_state = await self.engine(sandbox.engine).state(sandbox.sandbox_id)
        on_disk = sandbox.paused == "filesystem" or (
            sandbox.paused == "full" and (sandbox.directory / CHECKPOINT).is_dir()
        )
        if on_disk:  # it has no container
            if sandbox.spec is None or engine_state:
                return False
        else:
            if engine_state.get("status") not in ("running", "paused"):
                return False
            try:
                sandbox.init_pidfd = os.pidfd_open(int(engine_state["pid"]))
                if sandbox.paused is None:
                    await envd_client.wait_healthy(self._client, sandbox.envd_url, timeout_s=3)
            except (OSError, KeyError, ValueError, BackendUnavailable):
                return False
        sandbox.handle = SandboxHandle(
            sandbox_id=sandbox.sandbox_id,
            template_id=sandbox.template.template_id,
            host=sandbox.network.sandbox_ip,
            node_id=self.node_id,
            started_at=datetime.fromisoformat(state["started_at"]),
        )
        egress = state.get("egress", {})
        sandbox.egress = EgressPolicy(
            bool(egress.get("internet")),
            tuple(egress.get("allow_out", ())),
            tuple(egress.get("deny_out", ())),
        )
        await self._apply_egress(sandbox)
        self._live[sandbox.sandbox_id] = sandbox
        self._watch(sandbox)
        return True
