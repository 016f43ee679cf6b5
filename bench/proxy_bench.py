"""Benchmark the proxy's overhead: the same calls direct to envd and through the proxy.

Starts envd (``python -m hutch.envd``) and the proxy (``hutch.proxy.serve`` with a dict lookup as the
resolver, in its own process, as in production) on loopback, then measures with the official e2b SDK:

* ``GET /health`` on one keep-alive connection (the proxy's own cost, nearly nothing behind it);
* ``commands.run("true")`` (a Connect server stream: chunked request, response flushed per message);
* 4 KiB ``files.write`` + ``files.read``; 64 MiB download and upload throughput.

Run as root (it creates a throw-away user): ``python bench/proxy_bench.py [--runs N] [--json]``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx
from e2b import ConnectionConfig, Sandbox
from measure import free_port, throughput, timed
from packaging.version import Version

from hutch.config import ProxySettings
from hutch.envd.version import VERSION
from hutch.proxy import SandboxRoute, serve
from hutch.runtime.types import ENVD_PORT, SandboxHandle

SANDBOX_ID = "benchsandbox00000000"
# A throw-away default user: root's login shell may run slow profile scripts of the host.
USER = "hutch-proxy-bench"
MIB = 1024 * 1024


def wait_health(url: str, headers: dict[str, str], deadline_s: float = 10.0) -> None:
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        try:
            if httpx.get(f"{url}/health", headers=headers, timeout=0.5).status_code == 204:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.01)
    raise TimeoutError(f"{url} did not become healthy")


def run_proxy(port: int, envd_port: int) -> None:
    """The proxy process: one sandbox, resolved from a dict like a warm catalog cache."""
    handle = SandboxHandle(
        sandbox_id=SANDBOX_ID,
        template_id="base",
        host="127.0.0.1",
        node_id="bench",
        started_at=datetime.now(UTC),
        port_overrides={ENVD_PORT: envd_port},
    )
    handles = {SANDBOX_ID: SandboxRoute(handle)}

    async def resolve(sandbox_id: str) -> SandboxRoute | None:
        return handles.get(sandbox_id)

    asyncio.run(serve(ProxySettings(host="127.0.0.1", port=port), resolve))


def sdk_sandbox(url: str) -> Sandbox:
    headers = {"E2b-Sandbox-Id": SANDBOX_ID, "E2b-Sandbox-Port": str(ENVD_PORT)}
    return Sandbox(
        sandbox_id=SANDBOX_ID,
        sandbox_domain=None,
        envd_version=Version(VERSION),
        envd_access_token=None,
        connection_config=ConnectionConfig(sandbox_url=url, extra_sandbox_headers=headers, debug=True),
    )


def measure(url: str, home: Path, runs: int) -> dict:
    results: dict = {}
    headers = {"E2b-Sandbox-Id": SANDBOX_ID, "E2b-Sandbox-Port": str(ENVD_PORT)}
    with httpx.Client(base_url=url, headers=headers) as client:
        results["GET /health"] = timed(lambda: client.get("/health"), runs * 5, warmup=10, digits=3)
    sandbox = sdk_sandbox(url)
    results['commands.run("true")'] = timed(lambda: sandbox.commands.run("true"), runs, warmup=10, digits=3)
    small = os.urandom(4096)
    small_path = str(home / "small.bin")

    def write_read() -> None:
        sandbox.files.write(small_path, small)
        sandbox.files.read(small_path, format="bytes")

    results["4KiB write+read"] = timed(write_read, runs, warmup=10, digits=3)
    big = os.urandom(64 * MIB)
    big_path = str(home / "big.bin")
    results["64MiB write"] = throughput(lambda: sandbox.files.write(big_path, big), len(big))
    results["64MiB read"] = throughput(lambda: sandbox.files.read(big_path, format="bytes"), len(big))
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    base = Path(tempfile.mkdtemp(prefix="hutch-proxy-bench-"))
    base.chmod(0o755)
    home = base / "home"
    subprocess.run(["useradd", "-m", "-d", str(home), "-s", "/bin/bash", USER], check=True)
    envd_port, proxy_port = free_port(), free_port()
    envd_url, proxy_url = f"http://127.0.0.1:{envd_port}", f"http://127.0.0.1:{proxy_port}"
    envd = subprocess.Popen(
        [sys.executable, "-m", "hutch.envd", "--port", str(envd_port), "--host", "127.0.0.1"],
        stdin=subprocess.DEVNULL,
    )
    proxy = multiprocessing.get_context("spawn").Process(target=run_proxy, args=(proxy_port, envd_port))
    proxy.start()
    try:
        wait_health(envd_url, {})
        httpx.post(f"{envd_url}/init", json={"defaultUser": USER}).raise_for_status()
        wait_health(proxy_url, {"E2b-Sandbox-Id": SANDBOX_ID, "E2b-Sandbox-Port": str(ENVD_PORT)})
        results = {"direct": measure(envd_url, home, args.runs), "proxy": measure(proxy_url, home, args.runs)}
    finally:
        proxy.terminate()
        proxy.join(10)
        envd.terminate()
        envd.wait(10)
        subprocess.run(["userdel", "-f", "-r", USER], check=False, capture_output=True)
        shutil.rmtree(base, ignore_errors=True)

    if args.json:
        print(json.dumps(results, indent=2))
        return
    print(f"{'':24} {'direct':>26} {'through the proxy':>26} {'overhead':>12}")
    for name, direct in results["direct"].items():
        via = results["proxy"][name]
        if "median_ms" in direct:
            cell = "median {median_ms:7.3f} p95 {p95_ms:7.3f} ms"
            extra = via["median_ms"] - direct["median_ms"]
            print(f"{name:24} {cell.format(**direct):>26} {cell.format(**via):>26} {extra:+9.3f} ms")
        else:
            cell = "median {median_MBps:7.1f} MB/s"
            print(f"{name:24} {cell.format(**direct):>26} {cell.format(**via):>26}")


if __name__ == "__main__":
    main()
