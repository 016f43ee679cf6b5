"""crun sandboxes whose envd the node's fork server makes: envd enters the sandbox as confined as crun's init
would be, holds nothing of the host or of other sandboxes, and the sandbox ends when envd does."""

from __future__ import annotations

import asyncio
import base64
import os
import re
import select
import signal
from pathlib import Path

import pytest
from e2b import AsyncSandbox

from hutch.envd import FORK_SERVER_ENV
from hutch.runtime import idmap
from hutch.runtime.container import ContainerRuntime, busybox, envd_fork, oci
from hutch.runtime.types import ENVD_PORT, SandboxSpec, TemplateImage
from hutch.templates import base, envd_python
from hutch.templates.envd_zipapp import build

SUBNET = f"172.27.{16 * int(os.environ.get('PYTEST_XDIST_WORKER', 'gw0').removeprefix('gw') or 0)}.0/20"
CACHE = Path("/var/cache/hutch")


def _capability_mask() -> str:
    from hutch.envd.fork_server import CAPABILITIES

    return f"{sum(1 << CAPABILITIES.index(name.removeprefix('CAP_')) for name in oci.CAPABILITIES):016x}"


async def _node(tmp_path: Path, merge_envd_memory: bool = True) -> ContainerRuntime:
    rootfs = base.build(CACHE)
    envd = tmp_path / "envd.pyz"
    rt = ContainerRuntime(
        data_dir=tmp_path / "data",
        cache_dir=CACHE,
        envd_path=envd if envd.exists() else build(envd),
        envd_python=envd_python.build(CACHE, rootfs),
        subnet=SUBNET,
        merge_envd_memory=merge_envd_memory,
    )
    await rt.start()
    assert rt.host.envd_fork is not None, "this node should fork envd"
    rt.test_template = TemplateImage("base", rootfs, default_user="user")  # type: ignore[attr-defined]
    return rt


@pytest.fixture()
async def runtime(tmp_path):
    if os.geteuid() != 0:
        pytest.fail("the runtime tests need root")
    rt = await _node(tmp_path)
    yield rt
    await rt.close()


async def _create(runtime) -> tuple[str, AsyncSandbox, int]:
    """A crun sandbox, a client of its envd, and envd's pid on the host."""
    handle = await runtime.create(SandboxSpec(template=runtime.test_template, engine="crun"))
    client = await AsyncSandbox.create(debug=True, sandbox_url=f"http://{handle.host}:{ENVD_PORT}")
    return handle.sandbox_id, client, _pid_of(runtime._live[handle.sandbox_id].envd_pidfd)


def _pid_of(pidfd: int) -> int:
    return int(re.search(r"^Pid:\s+(\d+)", Path(f"/proc/self/fdinfo/{pidfd}").read_text(), re.M)[1])


def _status(pid: int, key: str) -> str:
    return re.search(rf"^{key}:\s*(.*)$", Path(f"/proc/{pid}/status").read_text(), re.M)[1].strip()


async def test_envd_is_confined_as_the_init_would_be(runtime):
    sandbox_id, client, pid = await _create(runtime)
    try:
        inner = int(_status(pid, "NSpid").split()[-1])
        assert inner != 1
        init = await client.commands.run("cat /proc/1/cmdline | tr '\\0' ' '", user="root")
        assert init.stdout.split() == [oci.FORKED_INIT, "wc", "-c"]
        mask = _capability_mask()
        for key in ("CapPrm", "CapEff", "CapBnd"):
            assert _status(pid, key) == mask, key
        assert _status(pid, "CapInh") == _status(pid, "CapAmb") == "0" * 16
        assert _status(pid, "Seccomp") == "2"
        assert _status(pid, "Uid").split() == [str(idmap.FIRST)] * 4  # the sandbox's root
        assert Path(f"/proc/{pid}/oom_score_adj").read_text().strip() == str(oci.OOM_SCORE_ADJ)
        cgroups = Path(f"/proc/{pid}/cgroup").read_text().splitlines()
        assert all(line.endswith(f"/hutch/{sandbox_id}") for line in cgroups if not line.startswith("0::"))
        for name in ("mnt", "pid", "net", "user", "uts", "ipc", "cgroup"):
            init_pid = _pid_of(runtime._live[sandbox_id].init_pidfd)
            assert os.readlink(f"/proc/{pid}/ns/{name}") == os.readlink(f"/proc/{init_pid}/ns/{name}"), name
        # What it was started with (only the fork server's number more than a crun init's), and what the
        # processes it starts inherit.
        started = dict(
            item.split("=", 1) for item in Path(f"/proc/{pid}/environ").read_text().split("\0") if item
        )
        assert started == {"PATH": oci.PATH, "LANG": "C.UTF-8", FORK_SERVER_ENV: started[FORK_SERVER_ENV]}
        env = await client.commands.run("env", user="root", envs={})
        names = {line.split("=", 1)[0] for line in env.stdout.splitlines()}
        assert FORK_SERVER_ENV not in names and "PWD" in names and "OLDPWD" not in names
        # Its descriptors: /dev/null, its log (twice), the pipe its init waits on, and its own sockets and
        # event poll; no file of the host.
        fds = {int(fd): os.readlink(f"/proc/{pid}/fd/{fd}") for fd in os.listdir(f"/proc/{pid}/fd")}
        log = str(runtime._live[sandbox_id].log_path)
        assert fds[0] == "/dev/null" and fds[1] == fds[2] == log and fds[4].startswith("pipe:")
        files = {target for target in fds.values() if target.startswith("/")}
        assert files == {"/dev/null", log}, fds
        assert all(target.startswith(("/", "pipe:", "socket:", "anon_inode:")) for target in fds.values())
        assert (await client.commands.run("ulimit -n")).stdout.strip() == str(oci.NOFILE)
    finally:
        await runtime.kill(sandbox_id)


def _mergeable_kib(pid: int) -> int:
    """The size of ``pid``'s mappings marked mergeable (``mg``)."""
    total = size = 0
    for line in Path(f"/proc/{pid}/smaps").read_text().splitlines():
        if line.startswith("Size:"):
            size = int(line.split()[1])
        elif line.startswith("VmFlags:") and "mg" in line.split()[1:]:
            total += size
    return total


async def _processes_running(sandbox_id: str, program: bytes) -> list[int]:
    """The host pids of the sandbox's processes running ``program``, once there is one (5 s at most)."""
    procs = Path(f"/sys/fs/cgroup/memory/hutch/{sandbox_id}/cgroup.procs")
    for _ in range(50):
        found = [int(pid) for pid in procs.read_text().split() if _program(int(pid)) == program]
        if found:
            return found
        await asyncio.sleep(0.1)
    return []


def _program(pid: int) -> bytes:
    """The first word of ``pid``'s command line; empty once it has ended."""
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0]
    except OSError:
        return b""


async def test_envds_memory_is_offered_to_the_kernels_merging_and_its_commands_are_not(runtime):
    sandbox_id, client, pid = await _create(runtime)
    try:
        assert Path("/sys/kernel/mm/ksm/run").read_text().strip() == "1"
        assert _mergeable_kib(pid) > 4096  # its heap, its allocator's arenas, the interpreter's data
        await client.commands.run("sleep 60", background=True, timeout=0)
        sleeps = await _processes_running(sandbox_id, b"sleep")
        assert sleeps and _mergeable_kib(sleeps[0]) == 0  # a new program: nothing of envd's marks
    finally:
        await runtime.kill(sandbox_id)


async def test_a_node_that_does_not_merge_offers_nothing(tmp_path):
    runtime = await _node(tmp_path, merge_envd_memory=False)
    try:
        sandbox_id, _, pid = await _create(runtime)
        assert _mergeable_kib(pid) == 0
        await runtime.kill(sandbox_id)
    finally:
        await runtime.close()


async def test_the_sandboxs_root_cannot_look_into_envd(runtime):
    sandbox_id, client, pid = await _create(runtime)
    try:
        inner = _status(pid, "NSpid").split()[-1]
        for probe in (
            "head -c1 {}/environ",
            "head -c1 {}/maps",
            "ls {}/fd",
            "ls {}/root/",
            "readlink {}/exe",
        ):
            command = probe.format(f"/proc/{inner}") + " >/dev/null 2>&1; echo $?"
            assert (await client.commands.run(command, user="root")).stdout.strip() != "0", probe
        mem = await client.commands.run(
            f"dd if=/proc/{inner}/mem bs=1 count=1 skip=4194304 2>&1 >/dev/null; echo $?", user="root"
        )
        assert mem.stdout.split()[-1] != "0"
    finally:
        await runtime.kill(sandbox_id)


async def test_envd_holds_nothing_of_another_sandbox(runtime):
    first_id, first, _ = await _create(runtime)
    await first.commands.run("true")
    second_id, _, pid = await _create(runtime)
    try:
        regions = []
        for line in Path(f"/proc/{pid}/maps").read_text().splitlines():
            span, perms = line.split()[:2]
            if perms.startswith("r") and not line.endswith(("[vvar]", "[vsyscall]", "[vvar_vclock]")):
                regions.append(tuple(int(x, 16) for x in span.split("-")))
        seen = 0
        with open(f"/proc/{pid}/mem", "rb", buffering=0) as mem:
            for start, end in regions:
                try:
                    mem.seek(start)
                    chunk = mem.read(end - start)
                except OSError:
                    continue
                seen += len(chunk)
                assert first_id.encode() not in chunk, f"found in {start:x}-{end:x}"
        assert seen > 1024 * 1024, seen
    finally:
        await runtime.kill(first_id)
        await runtime.kill(second_id)


async def test_the_sandbox_ends_when_envd_does(runtime):
    sandbox_id, client, pid = await _create(runtime)
    inner = _status(pid, "NSpid").split()[-1]
    with pytest.raises(Exception):  # noqa: B017 - the connection ends with envd, however the SDK says it
        await client.commands.run(f"kill -9 {inner}", user="root", timeout=10)
    for _ in range(100):
        if sandbox_id not in runtime._live:
            break
        await asyncio.sleep(0.05)
    assert sandbox_id not in runtime._live
    await runtime.host.settle()
    assert not (runtime.host.sandboxes_dir / sandbox_id).exists()


async def test_orphans_are_reaped(runtime):
    sandbox_id, client, _ = await _create(runtime)
    try:
        await client.commands.run("for i in 1 2 3 4 5; do (sleep 0.1 &); done; sleep 0.5", user="root")
        states = await client.commands.run("ps -eo stat= ", user="root")
        assert "Z" not in states.stdout, states.stdout
    finally:
        await runtime.kill(sandbox_id)


async def test_the_fork_server_pins_no_mount_and_comes_back(runtime):
    sandbox_id, client, _ = await _create(runtime)
    server = runtime.host.envd_fork
    server_pid = server._process.pid
    mounts = Path(f"/proc/{server_pid}/mountinfo").read_text()
    assert sandbox_id not in mounts
    points = {line.split()[4] for line in mounts.splitlines()}
    assert points <= {"/", "/proc", "/usr/local/lib/hutch/runtime", "/usr/local/lib/hutch/envd.pyz"} | {
        p for p in points if p.startswith("/sys/fs/cgroup")
    }, points
    assert list(Path(f"/proc/{server_pid}/fd").iterdir())  # and it holds no sandbox's descriptor:
    for fd in Path(f"/proc/{server_pid}/fd").iterdir():
        assert sandbox_id not in os.readlink(fd)
    await runtime.kill(sandbox_id)
    os.kill(server_pid, signal.SIGKILL)
    for _ in range(50):
        if server._process is None or server._process.returncode is not None:
            break
        await asyncio.sleep(0.05)
    sandbox_id, client, _ = await _create(runtime)  # a new server makes its envd
    try:
        assert (await client.commands.run("echo alive")).stdout.strip() == "alive"
        assert server._process.pid != server_pid
    finally:
        await runtime.kill(sandbox_id)


async def test_a_filesystem_pause_boots_a_forked_envd_again(runtime):
    sandbox_id, client, _ = await _create(runtime)
    try:
        await client.files.write("/home/user/kept.txt", "kept")
        await runtime.pause(sandbox_id, memory=False)
        await runtime.resume(sandbox_id)
        sandbox = runtime._live[sandbox_id]
        assert sandbox.envd_pidfd is not None
        again = await AsyncSandbox.create(
            debug=True, sandbox_url=f"http://{sandbox.network.sandbox_ip}:{ENVD_PORT}"
        )
        assert await again.files.read("/home/user/kept.txt") == "kept"
    finally:
        await runtime.kill(sandbox_id)


async def test_a_restarted_node_finds_the_envd_it_forked(tmp_path):
    node = await _node(tmp_path)
    sandbox_id, client, pid = await _create(node)
    crun_state = Path(node.host.engines.crun.state_dir)
    await node.let_go()
    assert crun_state.is_dir()  # it holds the sandbox's container, which the next start adopts
    node = await _node(tmp_path)
    try:
        adopted = node._live[sandbox_id]
        assert adopted.envd_pidfd is not None and _pid_of(adopted.envd_pidfd) == pid
        assert (await client.commands.run("echo adopted")).stdout.strip() == "adopted"
        envd = os.dup(adopted.envd_pidfd)
        try:
            await node.kill(sandbox_id)  # envd is asked to stop, and does
            assert select.select([envd], [], [], 1)[0], "envd still runs"
        finally:
            os.close(envd)
    finally:
        await node.close()
    assert not crun_state.exists()


async def test_a_node_let_go_without_sandboxes_leaves_no_engine_state_and_no_launcher(tmp_path):
    node = await _node(tmp_path)
    sandbox_id, _, _ = await _create(node)  # crun's launcher started, the state directory made
    await node.kill(sandbox_id)
    await node.let_go()
    try:
        assert not Path(node.host.engines.crun.state_dir).exists()
        children = Path(f"/proc/self/task/{os.getpid()}/children").read_text().split()
        assert not [pid for pid in children if b"crun_launcher" in Path(f"/proc/{pid}/cmdline").read_bytes()]
    finally:  # what a node that lets go keeps for its next start, which this test has none of
        await node.host.firewall.uninstall()
        await node.host.networks.unfence()


def test_only_a_static_busybox_is_an_init(tmp_path):
    found = busybox.static_busybox()
    assert found is not None and found.exists()
    dynamic = tmp_path / "busybox"
    dynamic.write_bytes(Path("/bin/sh").resolve().read_bytes())
    assert busybox._static(dynamic) is None
    assert busybox._static(found) == found
    (tmp_path / "short").write_bytes(b"\x7fELF\x02")
    assert busybox._static(tmp_path / "short") is None


async def test_a_server_that_cannot_start_leaves_envd_the_init(tmp_path):
    seccomp_bpf = base64.b64encode(b"\x06\x00\x00\x00\x00\x00\xff\x7f").decode()  # "allow", one instruction
    missing = tmp_path / "no-runtime"
    missing.mkdir()
    assert await envd_fork.for_node(missing, tmp_path / "envd.pyz", tmp_path, seccomp_bpf, True) is None
    assert await envd_fork.for_node(None, tmp_path / "envd.pyz", tmp_path, seccomp_bpf, True) is None
    assert not list((tmp_path / "envd-fork-root").iterdir())  # nothing mounted on the host
