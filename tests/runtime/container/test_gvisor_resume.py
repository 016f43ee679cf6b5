"""A gVisor sandbox paused with its memory and resumed back to back, again and again: each start gets a
container of its own name (the one it replaces is still being removed), the sandbox keeps its memory, and a
kill (also one during a resume, and one after the node restarted) leaves no container, cgroup, mount or
process of it behind."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

import pytest

from hutch.runtime import envd_client
from hutch.runtime.container import ContainerRuntime, cgroups, state
from hutch.runtime.container.sandbox import container_boot
from hutch.runtime.types import ENVD_PORT, SandboxSpec, TemplateImage
from hutch.templates import base
from hutch.templates.envd_zipapp import build

SUBNET = "10.9.0.0/16"
CACHE = Path("/var/cache/hutch")
# In the sandbox's memory only: it survives a pause only if the memory does.
IN_MEMORY = "/dev/shm/kept"


def _runtime(data_dir: Path, envd: Path) -> ContainerRuntime:
    return ContainerRuntime(data_dir=data_dir, cache_dir=CACHE, envd_path=envd, subnet=SUBNET)


@pytest.fixture()
def envd(tmp_path) -> Path:
    if os.geteuid() != 0:
        pytest.fail("the runtime tests need root")
    return build(tmp_path / "envd.pyz")


@pytest.fixture()
async def runtime(tmp_path, envd):
    rt = _runtime(tmp_path / "data", envd)
    await rt.start()
    yield rt
    await rt.close()


async def _create(rt: ContainerRuntime) -> str:
    spec = SandboxSpec(template=TemplateImage("base", base.build(CACHE)), engine="gvisor")
    return (await rt.create(spec)).sandbox_id


async def _run(rt: ContainerRuntime, sandbox_id: str, command: str) -> str:
    output: list[str] = []
    url = f"http://{rt._live[sandbox_id].network.sandbox_ip}:{ENVD_PORT}"
    code = await envd_client.run(
        url, command, user="root", shell=("/bin/sh", "-c"), on_output=output.append, timeout_s=30
    )
    assert code == 0, output
    return "".join(output)


async def _leftovers(rt: ContainerRuntime, sandbox_id: str) -> list[str]:
    """What is left on the host of the sandbox: containers runsc knows, cgroups, mounts, processes,
    its network namespace and its directory."""
    containers = await rt.host.engines.gvisor().list()
    left = [f"container {c}" for c in containers if container_boot(sandbox_id, c) is not None]
    left += [f"cgroup {name}" for name in cgroups.containers_of(sandbox_id)]
    left += [line for line in Path("/proc/self/mountinfo").read_text().splitlines() if sandbox_id in line]
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and sandbox_id.encode() in (entry / "cmdline").read_bytes():
                left.append(f"process {entry.name}")
        except OSError:
            pass  # it ended meanwhile
    if Path(f"/run/netns/hutch-{sandbox_id}").exists():
        left.append("network namespace")
    if (rt.host.sandboxes_dir / sandbox_id).exists():
        left.append("directory")
    return left


async def _gone(rt: ContainerRuntime, sandbox_id: str) -> list[str]:
    """The leftovers once a killed sandbox's teardown is done (the Sentry's end may take a moment)."""
    await rt.host.settle()
    deadline = time.monotonic() + 10
    while (left := await _leftovers(rt, sandbox_id)) and time.monotonic() < deadline:
        await asyncio.sleep(0.2)
    return left


async def test_back_to_back_pauses_and_resumes_keep_the_memory_and_leave_nothing(runtime):
    sandbox_id = await _create(runtime)
    await _run(runtime, sandbox_id, f"echo kept > {IN_MEMORY}")
    sandbox = runtime._live[sandbox_id]
    for boot in range(1, 4):
        assert await runtime.pause(sandbox_id, memory=True) == "full"
        began = time.monotonic()
        await runtime.resume(sandbox_id)
        # Not held up by the removal of the container it replaces (runsc takes ~1.5 s for that).
        assert time.monotonic() - began < 1.2
        assert sandbox.container_id == f"{sandbox_id}-{boot}"
        assert (await _run(runtime, sandbox_id, f"cat {IN_MEMORY}")).strip() == "kept"
    # What the node samples follows the sandbox to its new container's cgroup.
    usage = runtime.sampler._tracked[sandbox_id].probe()
    assert usage.cpu_s > 0 and usage.mem_used > 0
    await runtime.kill(sandbox_id)
    assert await _gone(runtime, sandbox_id) == []


async def test_a_kill_during_a_resume_leaves_nothing(runtime):
    sandbox_id = await _create(runtime)
    await runtime.pause(sandbox_id, memory=True)
    resuming = asyncio.ensure_future(runtime.resume(sandbox_id))
    await asyncio.sleep(0.1)  # runsc is restoring it
    assert not resuming.done()
    await runtime.kill(sandbox_id)
    await asyncio.gather(resuming, return_exceptions=True)
    assert await _gone(runtime, sandbox_id) == []


async def test_a_restarted_node_adopts_a_sandbox_under_its_latest_container(tmp_path, envd):
    first = _runtime(tmp_path / "data", envd)
    await first.start()
    try:
        sandbox_id = await _create(first)
        await _run(first, sandbox_id, f"echo kept > {IN_MEMORY}")
        await first.pause(sandbox_id, memory=True)
        await first.resume(sandbox_id)
        await first.pause(sandbox_id, memory=True)  # its second container is being removed
    finally:
        await first.close()  # the paused sandbox stays
    second = _runtime(tmp_path / "data", envd)
    await second.start()
    try:
        assert [handle.sandbox_id for handle in await second.list()] == [sandbox_id]
        assert second._live[sandbox_id].container_id == f"{sandbox_id}-1"
        await second.resume(sandbox_id)
        assert second._live[sandbox_id].container_id == f"{sandbox_id}-2"
        assert (await _run(second, sandbox_id, f"cat {IN_MEMORY}")).strip() == "kept"
        await second.kill(sandbox_id)
        assert await _gone(second, sandbox_id) == []
    finally:
        await second.close()


async def test_a_restarted_node_removes_what_a_cut_short_resume_left(tmp_path, envd):
    """A node that stopped while a resume had named and started the sandbox's next container, before it
    recorded the sandbox as running: the next node tears the sandbox down (a checkpoint and a running
    container: it cannot tell which is the sandbox) with every container it had."""
    first = _runtime(tmp_path / "data", envd)
    await first.start()
    try:
        sandbox_id = await _create(first)
        await first.pause(sandbox_id, memory=True)
        await first.resume(sandbox_id)
        sandbox = first._live[sandbox_id]
        sandbox.paused = "full"  # as it was before the resume returned
        sandbox.checkpoint_path.mkdir()
        state.save(sandbox)
        first._live.pop(sandbox_id)
        sandbox.release_init()
        await first.host.settle()
    finally:
        await first.close()
    second = _runtime(tmp_path / "data", envd)
    await second.start()
    try:
        assert await second.list() == []
        assert await _gone(second, sandbox_id) == []
    finally:
        await second.close()
