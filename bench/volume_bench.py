"""Benchmark volumes on the container backend, driven directly (no API), on crun and gVisor:

* 64 MiB written (``dd ... conv=fsync``) and read back into a volume from inside a sandbox, with the host's
  page cache dropped before the read (gVisor's own cache of the file, if any, is not);
* 64 MiB through the node's ``volume_write`` (1 MiB chunks; synced before it returns) and ``volume_read``
  (host cache dropped first);
* create → first command, with one volume mounted and without, alternated in the same run (no warm pool:
  a sandbox with a volume never comes from one), p50/p95 of ``--creates`` each.

Everything it makes (data directory, sandboxes, the volume) goes at the end. Run as root, on subnet
172.30.0.0/20: ``.venv/bin/python bench/volume_bench.py [--creates 20] [--engines crun,gvisor] [--json]``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import shutil
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx

from hutch.runtime import envd_client
from hutch.runtime.container import ContainerRuntime
from hutch.runtime.types import ENVD_PORT, SandboxHandle, SandboxSpec, TemplateImage, VolumeMount
from hutch.templates import base
from hutch.templates.envd_zipapp import build

CACHE = Path("/var/cache/hutch")
SUBNET = "172.30.0.0/20"
MIB = 1 << 20
SIZE_MIB = 64
VOLUME = "bench-volume"


def _percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round((len(ordered) - 1) * q))]


def _summary(samples_ms: list[float]) -> dict:
    return {
        "p50_ms": round(_percentile(samples_ms, 0.5), 1),
        "p95_ms": round(_percentile(samples_ms, 0.95), 1),
        "n": len(samples_ms),
    }


def _drop_caches() -> None:
    Path("/proc/sys/vm/drop_caches").write_text("3\n")


async def _run(client: httpx.AsyncClient, handle: SandboxHandle, command: str) -> str:
    output: list[str] = []
    code = await envd_client.run(
        client, f"http://{handle.host}:{ENVD_PORT}", command, user="user", shell=("/bin/sh", "-c"),
        on_output=output.append, timeout_s=300,
    )  # fmt: skip
    if code != 0:
        raise RuntimeError(f"{command!r} failed: {''.join(output)}")
    return "".join(output)


def _dd_rate(output: str) -> float:
    """MB/s from dd's summary line ("... copied, 0.5 s, 134 MB/s"), as bytes over seconds."""
    found = re.search(r"(\d+) bytes .* copied, ([\d.]+) s", output)
    if found is None:
        raise RuntimeError(f"no dd summary in {output!r}")
    return round(int(found.group(1)) / float(found.group(2)) / 1e6, 1)


async def _megabytes() -> AsyncIterator[bytes]:
    block = b"\x5a" * MIB
    for _ in range(SIZE_MIB):
        yield block


async def _throughput(runtime: ContainerRuntime, spec: SandboxSpec, client: httpx.AsyncClient) -> dict:
    handle = await runtime.create(spec)
    try:
        written = await _run(
            client, handle, f"dd if=/dev/zero of=/v/in bs=1M count={SIZE_MIB} conv=fsync 2>&1"
        )
        _drop_caches()
        read = await _run(client, handle, "dd if=/v/in of=/dev/null bs=1M 2>&1")
    finally:
        await runtime.kill(handle.sandbox_id)
        await runtime.host.settle()
    started = time.perf_counter()
    await runtime.volume_write(VOLUME, "/out", _megabytes(), uid=None, gid=None, mode=None, force=False)
    write_s = time.perf_counter() - started
    _drop_caches()
    started, total = time.perf_counter(), 0
    async for chunk in runtime.volume_read(VOLUME, "/out"):
        total += len(chunk)
    read_s = time.perf_counter() - started
    assert total == SIZE_MIB * MIB
    for path in ("/in", "/out"):
        await runtime.volume_remove(VOLUME, path)
    return {
        "sandbox_write_fsync_MBps": _dd_rate(written),
        "sandbox_read_cold_MBps": _dd_rate(read),
        "node_volume_write_MBps": round(SIZE_MIB * MIB / write_s / 1e6, 1),
        "node_volume_read_cold_MBps": round(SIZE_MIB * MIB / read_s / 1e6, 1),
    }


async def _creates(runtime: ContainerRuntime, plain: SandboxSpec, mounted: SandboxSpec, count: int) -> dict:
    samples: dict[str, list[float]] = {"without_volume": [], "with_volume": []}
    async with httpx.AsyncClient(trust_env=False) as client:
        for _ in range(count):
            for name, spec in (("without_volume", plain), ("with_volume", mounted)):
                started = time.perf_counter()
                handle = await runtime.create(spec)
                try:
                    await _run(client, handle, "true")
                    samples[name].append((time.perf_counter() - started) * 1000)
                finally:
                    await runtime.kill(handle.sandbox_id)
                    await runtime.host.settle()
    return {name: _summary(values) for name, values in samples.items()}


async def main(engines: list[str], creates: int) -> dict:
    data = Path(tempfile.mkdtemp(prefix="hutch-volume-bench-", dir="/var/tmp"))
    runtime = ContainerRuntime(
        data_dir=data / "data", cache_dir=CACHE, envd_path=build(data / "envd.pyz"), subnet=SUBNET,
        egress_interface="off",
    )  # fmt: skip
    await runtime.start()
    results: dict = {}
    try:
        await runtime.create_volume(VOLUME, size_mb=4 * SIZE_MIB)
        template = TemplateImage("base", base.build(CACHE))
        async with httpx.AsyncClient(trust_env=False) as client:
            for engine in engines:
                plain = SandboxSpec(template=template, engine=engine)
                mounted = SandboxSpec(template=template, engine=engine, volumes=(VolumeMount(VOLUME, "/v"),))
                results[engine] = {
                    "throughput_64MiB": await _throughput(runtime, mounted, client),
                    "create_to_first_command": await _creates(runtime, plain, mounted, creates),
                }
    finally:
        for handle in await runtime.list():
            await runtime.kill(handle.sandbox_id)
        await runtime.host.settle()
        await runtime.delete_volume(VOLUME)
        await runtime.close()
        shutil.rmtree(data, ignore_errors=True)
    return results


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--creates", type=int, default=20)
    parser.add_argument("--engines", default="crun,gvisor")
    parser.add_argument("--json", action="store_true")
    arguments = parser.parse_args()
    found = asyncio.run(main(arguments.engines.split(","), arguments.creates))
    if arguments.json:
        print(json.dumps(found))
    else:
        for engine, sections in found.items():
            for section, values in sections.items():
                print(f"{engine} {section}: {json.dumps(values)}")
