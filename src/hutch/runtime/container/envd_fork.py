"""crun sandboxes whose envd is forked, not started: the node's envd fork server (``hutch.envd.fork_server``)
and a container's run through it.

The server is started once per node, on envd's own Python, in a mount namespace whose root is a small
tmpfs holding only envd and that Python (at the paths a sandbox has them), ``/proc`` and the cgroup
hierarchies: the host's other mounts, sandboxes' included, are detached from it, so it pins none of them.

A container's run: crun starts busybox's ``wc -c`` as the container's init, reading a pipe; the server
forks envd into the container and envd alone holds the pipe's write end. When envd ends, for whatever
reason, the init reads the end of the pipe and exits, and with it every process of the sandbox: the node
watches the init as before. A sandbox's start thus costs a fork instead of a Python start and envd's
imports (~90 ms of CPU), and its envd shares the server's pages until it writes them; where the node
merges pages (``page_merging``), the kernel shares again those it wrote back as they were.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import socket
from pathlib import Path

from ...envd import FORK_SERVER_ENV
from ...errors import BackendUnavailable
from . import oci
from .busybox import static_busybox
from .oci_cli import OciCli

log = logging.getLogger("hutch.runtime")

START_TIMEOUT_S = 30.0
SPAWN_TIMEOUT_S = 10.0
STOP_TIMEOUT_S = 5.0
MAX_REPLY = 4096
# Run as ``sh -c SCRIPT sh ROOT RUNTIME ENVD COMMAND…`` in a new mount namespace: the server's root.
_ROOT_SCRIPT = """set -e
root="$1"; runtime="$2"; envd="$3"; shift 3
mount -t tmpfs -o mode=0755,size=1m,nosuid,nodev hutch-envd "$root"
mkdir -p "$root/usr/local/lib/hutch/runtime" "$root/proc" "$root/sys/fs/cgroup" "$root/.host"
touch "$root/usr/local/lib/hutch/envd.pyz"
mount --bind "$runtime" "$root/usr/local/lib/hutch/runtime"
mount -o remount,bind,ro,nosuid,nodev "$root/usr/local/lib/hutch/runtime"
mount --bind "$envd" "$root/usr/local/lib/hutch/envd.pyz"
mount -o remount,bind,ro,nosuid,nodev "$root/usr/local/lib/hutch/envd.pyz"
mount --rbind /sys/fs/cgroup "$root/sys/fs/cgroup"
mount -t proc -o nosuid,nodev,noexec proc "$root/proc"
cd "$root"
pivot_root . .host
unset OLDPWD PWD
exec "$@"
"""


def settings(seccomp_bpf: str, merge_pages: bool) -> dict:
    """What every forked envd gets: what crun gives the init of a sandbox (``oci``), and whether its pages
    may be merged."""
    return {
        "capabilities": oci.CAPABILITIES,
        "seccomp": seccomp_bpf,
        "nofile": oci.NOFILE,
        "oom_score_adj": oci.OOM_SCORE_ADJ,
        "env": dict(item.split("=", 1) for item in oci.INIT_ENV),
        "merge_pages": merge_pages,
    }


async def for_node(
    envd_python: Path | None, envd: Path, data_dir: Path, seccomp_bpf: str | None, merge_pages: bool
) -> EnvdForkServer | None:
    """The node's fork server, started; None where envd stays the init (no Python of envd's own, no
    precompiled seccomp filter, no static busybox, or a server that cannot start here)."""
    busybox = static_busybox()
    if envd_python is None or seccomp_bpf is None or busybox is None:
        log.info("crun sandboxes start envd as their init (no fork server on this node)")
        return None
    server = EnvdForkServer(
        runtime=envd_python,
        envd=envd,
        root=data_dir / "envd-fork-root",
        init=busybox,
        seccomp_bpf=seccomp_bpf,
        merge_pages=merge_pages,
    )
    try:
        await server.start()
    except BackendUnavailable as err:
        log.warning("crun sandboxes start envd as their init: %s", err)
        return None
    return server


class EnvdForkServer:
    """The node's fork server: started with ``start``, asked for one envd per sandbox with ``spawn``."""

    def __init__(
        self, *, runtime: Path, envd: Path, root: Path, init: Path, seccomp_bpf: str, merge_pages: bool
    ) -> None:
        self.runtime = runtime
        self.envd = envd
        self.root = root  # an empty directory: the server's root is mounted on it in its own namespace
        self.init = init  # the static busybox every such sandbox's init is
        self.settings = settings(seccomp_bpf, merge_pages)
        self._process: asyncio.subprocess.Process | None = None
        self._control: socket.socket | None = None
        self._starting = asyncio.Lock()

    async def start(self) -> None:
        async with self._starting:
            if self._process is not None and self._process.returncode is None:
                return
            await self._start()

    async def _start(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        self.root.chmod(0o700)  # an empty mount point, root's alone
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        command = [
            "unshare", "--mount", "--propagation", "private", "sh", "-c", _ROOT_SCRIPT, "sh",
            str(self.root), str(self.runtime), str(self.envd), *oci.envd_command(),
        ]  # fmt: skip
        try:
            self._process = await asyncio.create_subprocess_exec(
                *command,
                stdin=asyncio.subprocess.DEVNULL,
                pass_fds=(theirs.fileno(),),
                env={
                    **dict(item.split("=", 1) for item in oci.INIT_ENV),
                    FORK_SERVER_ENV: str(theirs.fileno()),
                },
            )
        finally:
            theirs.close()
        ours.setblocking(False)
        self._control = ours
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(START_TIMEOUT_S):
                await loop.sock_sendall(ours, json.dumps(self.settings).encode())
                answer = await loop.sock_recv(ours, MAX_REPLY)
        except (OSError, TimeoutError) as err:
            await self.close()
            raise BackendUnavailable(f"envd's fork server did not start: {err}") from err
        if not answer:
            await self.close()
            raise BackendUnavailable(
                "envd's fork server did not start: it exited (its output is in the node's log)"
            )
        log.info("envd's fork server is ready (pid %d)", self._process.pid)

    async def spawn(self, init_pidfd: int, log_path: Path, keepalive: int) -> int:
        """Fork envd into the container whose init ``init_pidfd`` is; it holds ``keepalive`` (the init's
        pipe). Returns envd's pid once it is confined and listens."""
        await self.start()
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        log_fd = os.open(log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            await self._send([theirs.fileno(), init_pidfd, log_fd, keepalive])
        finally:
            theirs.close()
            os.close(log_fd)
        ours.setblocking(False)
        loop = asyncio.get_running_loop()
        pid, ready = None, False  # from the forking child and from envd: either may come first
        with ours:
            try:
                async with asyncio.timeout(SPAWN_TIMEOUT_S):
                    while pid is None or not ready:
                        message = await loop.sock_recv(ours, MAX_REPLY)
                        if not message:
                            raise BackendUnavailable("envd ended before it was ready")
                        answer = json.loads(message)
                        if "error" in answer:
                            raise BackendUnavailable(f"envd could not enter the sandbox: {answer['error']}")
                        pid = int(answer["pid"]) if "pid" in answer else pid
                        ready = ready or answer.get("ready") is True
                    return pid
            except TimeoutError as err:
                raise BackendUnavailable("envd did not get ready in time") from err

    async def _send(self, fds: list[int]) -> None:
        """One request; the server is started again once if it has gone."""
        for attempt in range(2):
            control = self._control
            try:
                if control is None:
                    raise BrokenPipeError("not running")
                await _send_fds(control, fds)
                return
            except OSError as err:
                if attempt:
                    raise BackendUnavailable(f"envd's fork server is unreachable: {err}") from err
                log.warning("envd's fork server is gone (%s): starting it again", err)
                await self.close()
                await self.start()

    async def close(self) -> None:
        """Close the control socket (the server exits) and wait for it."""
        if self._control is not None:
            self._control.close()
            self._control = None
        process, self._process = self._process, None
        if process is None or process.returncode is not None:
            return
        try:
            async with asyncio.timeout(STOP_TIMEOUT_S):
                await process.wait()
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            await process.wait()


async def _send_fds(control: socket.socket, fds: list[int]) -> None:
    """``send_fds`` on a non-blocking socket: waits while the server's queue is full."""
    loop = asyncio.get_running_loop()
    while True:
        try:
            socket.send_fds(control, [b"e"], fds)
            return
        except BlockingIOError:
            writable = loop.create_future()
            loop.add_writer(control, _settle, writable)
            try:
                await writable
            finally:
                loop.remove_writer(control)


def find_envd(bundle: Path, init_pid: int) -> int | None:
    """A pidfd of the forked envd of the container of ``bundle`` whose init is ``init_pid`` (a node
    adopting its sandboxes after a restart); None if its envd is its init. A forked envd is the
    container's pid 2: it is forked into it right after its init, and the container ends with it."""
    try:
        if not oci.forks_envd(json.loads((bundle / "config.json").read_bytes())):
            return None
        pids = Path(f"/proc/{init_pid}/cgroup").read_text()
        path = next(line.split(":", 2)[2] for line in pids.splitlines() if line.split(":")[1] == "pids")
        members = Path(f"/sys/fs/cgroup/pids{path}/cgroup.procs").read_text().split()
    except (OSError, StopIteration):
        return None
    for pid in members:
        try:
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            continue
        spaces = next((line.split()[1:] for line in status.splitlines() if line.startswith("NSpid:")), [])
        if spaces[-1:] == ["2"] and len(spaces) > 1:
            with contextlib.suppress(OSError):
                return os.pidfd_open(int(pid))
    return None


def _settle(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


async def run_container(
    server: EnvdForkServer, engine: OciCli, container_id: str, bundle: Path, log_path: Path
) -> tuple[int, int]:
    """Run the container (its init waits on a pipe), then fork envd into it; returns pidfds of the init
    and of envd. If envd cannot start, the init ends with the pipe."""
    read_end, write_end = os.pipe2(os.O_CLOEXEC)
    try:
        try:
            pid = await engine.run_detached(container_id, bundle, log_path, stdin=read_end)
        finally:
            os.close(read_end)
        init_pidfd = os.pidfd_open(pid)
        try:
            envd_pid = await server.spawn(init_pidfd, log_path, write_end)
            return init_pidfd, os.pidfd_open(envd_pid)
        except BaseException:
            os.close(init_pidfd)
            raise
    finally:
        os.close(write_end)
