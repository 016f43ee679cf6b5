"""Benchmark envd through the official e2b SDK, envd on loopback.

Starts the packaged envd (``dist/envd.pyz``, built if missing) as a real process, initialised with a
throw-away Unix user as the default user, and measures what users feel:

* ``commands.run("true")`` (the SDK runs ``bash -l -c true``), next to the cost of that login shell alone;
* a 4 KiB ``files.write`` + ``files.read``; 64 MiB uploads and downloads;
* ``files.list`` of a 1,000-entry directory;
* 100 commands at once from one ``AsyncSandbox``;
* envd's idle RSS, and the time from exec to ``/health`` answering.

Run as root: ``python bench/envd_bench.py [--runs N] [--json]``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from e2b import AsyncSandbox, Sandbox
from measure import free_port, report, summary, throughput, timed

from hutch.templates.envd_zipapp import build

ROOT = Path(__file__).resolve().parent.parent
USER = "hutch-bench"
MIB = 1024 * 1024
# The interpreter templates run envd with (Debian's), not a development shim.
ENVD_PYTHON = shutil.which("python3", path="/usr/bin:/bin") or "python3"


def wait_health(url: str, deadline_s: float = 10.0) -> None:
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        try:
            if httpx.get(f"{url}/health", timeout=0.5).status_code == 204:
                return
        except httpx.TransportError:
            time.sleep(0.002)
    raise TimeoutError("envd did not become healthy")


def start(pyz: Path, port: int) -> subprocess.Popen:
    return subprocess.Popen(
        [ENVD_PYTHON, "-I", str(pyz), "--port", str(port), "--host", "127.0.0.1"],
        stdin=subprocess.DEVNULL,
        env={"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"},
    )


def startup_ms(pyz: Path, runs: int) -> dict:
    """Time from exec to the first 204 from /health (polling a raw socket every 0.5 ms)."""
    samples = []
    for _ in range(runs):
        port = free_port()
        begin = time.perf_counter()
        process = start(pyz, port)
        request = b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
                    sock.sendall(request)
                    if sock.recv(64).startswith(b"HTTP/1.1 204"):
                        break
            except OSError:
                time.sleep(0.0005)
        samples.append((time.perf_counter() - begin) * 1000)
        process.terminate()
        process.wait()
    return summary(samples)


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return round(int(line.split()[1]) / 1024, 1)
    return float("nan")


async def concurrent_commands(url: str, count: int) -> dict:
    sandbox = await AsyncSandbox.create(debug=True, sandbox_url=url)
    start = time.perf_counter()
    results = await asyncio.gather(*(sandbox.commands.run(f"echo {i}") for i in range(count)))
    total = (time.perf_counter() - start) * 1000
    ok = sum(1 for i, r in enumerate(results) if r.exit_code == 0 and r.stdout.strip() == str(i))
    return {"commands": count, "succeeded": ok, "total_ms": round(total, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    pyz = build(ROOT / "dist" / "envd.pyz")
    base = Path(tempfile.mkdtemp(prefix="hutch-bench-"))
    base.chmod(0o755)
    home = base / "home"
    subprocess.run(["useradd", "-m", "-d", str(home), "-s", "/bin/bash", USER], check=True)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    process = start(pyz, port)
    results: dict = {}
    try:
        wait_health(url)
        init = httpx.post(f"{url}/init", json={"defaultUser": USER})
        init.raise_for_status()
        time.sleep(0.5)
        results["idle_rss_mib"] = rss_mib(process.pid)
        sandbox = Sandbox.create(debug=True, sandbox_url=url)

        results["commands.run(true)"] = timed(lambda: sandbox.commands.run("true"), args.runs)
        login = ["/bin/bash", "-l", "-c", "true"]
        env = {"HOME": str(home), "PATH": "/usr/bin:/bin", "USER": USER}
        results["bash -l -c true alone"] = timed(lambda: subprocess.run(login, user=USER, env=env), args.runs)

        small = os.urandom(4096)
        path = str(home / "small.bin")

        def write_read() -> None:
            sandbox.files.write(path, small)
            assert sandbox.files.read(path, format="bytes") == small

        results["4KiB write+read"] = timed(write_read, args.runs)

        big = os.urandom(64 * MIB)
        big_path = str(home / "big.bin")
        results["64MiB write (multipart)"] = throughput(lambda: sandbox.files.write(big_path, big), len(big))
        results["64MiB write (octet-stream)"] = throughput(
            lambda: sandbox.files.write(big_path, big, use_octet_stream=True), len(big)
        )
        results["64MiB read (bytes)"] = throughput(
            lambda: sandbox.files.read(big_path, format="bytes"), len(big)
        )

        def read_stream() -> None:
            for _ in sandbox.files.read(big_path, format="stream"):
                pass

        results["64MiB read (stream)"] = throughput(read_stream, len(big))

        def curl(*extra: str) -> None:
            subprocess.run(["curl", "-sf", "-o", "/dev/null", *extra], check=True)

        results["64MiB read (curl)"] = throughput(lambda: curl(f"{url}/files?path={big_path}"), len(big))
        results["64MiB write (curl)"] = throughput(
            lambda: curl(
                "-H", "content-type: application/octet-stream", "--data-binary", f"@{big_path}",
                f"{url}/files?path={home}/copy.bin",
            ),
            len(big),
        )  # fmt: skip

        listing = home / "many"
        listing.mkdir()
        for i in range(1000):
            (listing / f"file-{i:04d}.txt").write_bytes(b"x")
        listed = sandbox.files.list(str(listing))
        assert len(listed) == 1000, len(listed)
        results["files.list 1000 entries"] = timed(
            lambda: sandbox.files.list(str(listing)), max(20, args.runs // 4)
        )

        results["100 concurrent commands"] = asyncio.run(concurrent_commands(url, 100))
        results["idle_rss_mib_after_load"] = rss_mib(process.pid)
        results["exec -> /health"] = startup_ms(pyz, 20)
    finally:
        process.terminate()
        process.wait()
        subprocess.run(["userdel", "-f", "-r", USER], check=False, capture_output=True)
        shutil.rmtree(base, ignore_errors=True)

    title = f"envd benchmark (python3 {sys.version.split()[0]} client; envd: {ENVD_PYTHON} -I dist/envd.pyz)"
    report(title, results, as_json=args.json, width=32)


if __name__ == "__main__":
    main()
