"""The ``fake`` backend: envd as a plain host process per sandbox, no isolation at all.

For unit tests of the API and proxy, and for development on machines without crun. Every sandbox is a
real envd on a free loopback port, so the official SDK works against it end to end. Its metrics are those
of its envd process, read from ``/proc``: no limit applies, so its totals are the host's.
"""

from __future__ import annotations

import asyncio
import os
import pwd
import signal
import socket
import subprocess
import sys
from datetime import UTC, datetime
from functools import partial

from ..errors import NotFound
from . import envd_client
from .capabilities import MetricSample, NodeUsage, Reserved, SandboxUsage
from .sampler import Sampler, Usage
from .types import ENVD_PORT, SandboxHandle, SandboxSpec, new_sandbox_id


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _envd_usage(pid: int) -> Usage:
    """What one envd process uses: its CPU time (its children's too, once they ended), its resident memory
    (file-backed pages as its cache) out of the host's, and the host's root file system."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rpartition(")")[2].split()  # from field 3, the state, on
    cpu_ticks = sum(int(ticks) for ticks in fields[11:15])  # utime, stime, cutime, cstime
    with open(f"/proc/{pid}/status") as status:
        sizes = {
            key: int(rest.split()[0]) * 1024
            for key, _, rest in (line.partition(":") for line in status)
            if key in ("RssAnon", "RssFile", "RssShmem")
        }
    disk = os.statvfs("/")
    return Usage(
        cpu_s=cpu_ticks / os.sysconf("SC_CLK_TCK"),
        cpu_count=os.cpu_count() or 1,
        mem_used=sizes["RssAnon"] + sizes["RssShmem"],
        mem_total=os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"),
        mem_cache=sizes["RssFile"],
        disk_used=(disk.f_blocks - disk.f_bfree) * disk.f_frsize,
        disk_total=disk.f_blocks * disk.f_frsize,
    )


def _user_exists(name: str) -> bool:
    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True


class FakeRuntime:
    """Sandboxes as host processes running ``python -m hutch.envd``."""

    name = "fake"

    def __init__(self, *, node_id: str = "local", metrics_interval_s: float = 5.0) -> None:
        self.node_id = node_id
        self._procs: dict[str, subprocess.Popen] = {}
        self._handles: dict[str, SandboxHandle] = {}
        self._specs: dict[str, SandboxSpec] = {}
        self.sampler = Sampler(metrics_interval_s)

    async def start(self) -> None:
        self.sampler.start()

    async def create(self, spec: SandboxSpec) -> SandboxHandle:
        sandbox_id = new_sandbox_id()
        port = _free_port()
        process = subprocess.Popen(
            [sys.executable, "-m", "hutch.envd", "--port", str(port), "--host", "127.0.0.1"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            start_new_session=True,
        )
        self._procs[sandbox_id] = process
        base_url = f"http://127.0.0.1:{port}"
        try:
            await envd_client.wait_healthy(base_url)
            user = spec.template.default_user
            await envd_client.init(base_url, spec, default_user=user if _user_exists(user) else "root")
        except BaseException:
            await self.kill(sandbox_id)
            raise
        handle = SandboxHandle(
            sandbox_id=sandbox_id,
            template_id=spec.template.template_id,
            host="127.0.0.1",
            node_id=self.node_id,
            started_at=datetime.now(UTC),
            port_overrides={ENVD_PORT: port},
        )
        self._handles[sandbox_id] = handle
        self._specs[sandbox_id] = spec
        self.sampler.track(sandbox_id, partial(_envd_usage, process.pid))
        return handle

    async def kill(self, sandbox_id: str) -> None:
        """End the sandbox's envd; it leaves the node's list once its process is gone."""
        process = self._procs.pop(sandbox_id, None)
        self.sampler.drop(sandbox_id)
        try:
            if process is not None:
                try:
                    os.killpg(process.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                await asyncio.to_thread(process.wait)
        finally:
            self._handles.pop(sandbox_id, None)
            self._specs.pop(sandbox_id, None)

    async def list(self) -> list[SandboxHandle]:
        return list(self._handles.values())

    async def metrics(
        self, sandbox_id: str, *, start: datetime | None = None, end: datetime | None = None
    ) -> list[MetricSample]:
        if sandbox_id not in self._handles:
            raise NotFound(f"sandbox {sandbox_id} is not running on this node")
        return self.sampler.samples(sandbox_id, start, end)

    async def usage(self) -> NodeUsage:
        sandboxes = tuple(
            SandboxUsage(sandbox_id, handle.template_id, False, self.sampler.latest(sandbox_id))
            for sandbox_id, handle in self._handles.items()
        )
        return NodeUsage(sandboxes, (), self.sampler.pass_s)

    def reserved(self) -> Reserved:
        specs = list(self._specs.values())
        return Reserved(
            cpu_count=sum(spec.cpu_count for spec in specs),
            memory_mb=sum(spec.memory_mb for spec in specs),
            disk_mb=sum(spec.disk_mb for spec in specs),
            sandboxes=len(specs),
        )

    async def let_go(self) -> None:
        """Host processes cannot be adopted by a next start: they end, as at ``close``."""
        await self.close()

    async def close(self) -> None:
        await self.sampler.close()
        for sandbox_id in list(self._procs):
            await self.kill(sandbox_id)
