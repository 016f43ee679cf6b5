"""Benchmark the TLS edge against the plain header path: the same calls through the official SDK, once with
``E2B_DOMAIN`` (HTTPS through HAProxy, straight to the sandbox) and once with ``E2B_API_URL`` +
``E2B_SANDBOX_URL`` (plain HTTP to the Python proxy).

Starts its own stack (``hutch up --detach``, temporary data, free ports, subnet 10.10.0.0/16 unless
``--subnet``) with the edge on a free port and a certificate authority of its own in the stack's data
directory, which this process trusts through ``SSL_CERT_FILE`` (the system's bundle plus that authority).
Measures, in one sandbox, ``commands.run("true")`` and a 4 KiB ``files.write`` + ``files.read``; create →
first command (the warm pool refilling between creates); and new TLS connections per second to the edge (a
handshake and one request each).

``python bench/edge_bench.py [--runs 200] [--json]``
"""

from __future__ import annotations

import argparse
import os
import shutil
import ssl
import subprocess
import tempfile
import time
from pathlib import Path

import httpx
from e2b import Sandbox
from measure import HUTCH, free_port, report, summary, timed

SUBNET = "10.10.0.0/16"
CREATE_RUNS = 20
SYSTEM_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")


def _create_to_first_command(opts: dict, runs: int) -> dict:
    """Latency of ``Sandbox.create`` + the first ``commands.run("true")`` (each sandbox killed after, not
    timed); the pool refills between runs."""
    samples = []
    for _ in range(runs):
        time.sleep(0.3)
        start = time.perf_counter()
        sandbox = Sandbox.create(**opts)
        sandbox.commands.run("true")
        samples.append((time.perf_counter() - start) * 1000)
        sandbox.kill()
    return summary(samples)


def _connections_per_s(host: str, port: int, ca: Path, seconds: float = 5.0) -> float:
    """New TLS connections to the edge (a handshake and one ``GET /health`` to the API each) per second."""
    context = ssl.create_default_context(cafile=str(ca))
    done, deadline = 0, time.monotonic() + seconds
    while time.monotonic() < deadline:
        with httpx.Client(verify=context, http2=False) as client:
            client.get(f"https://api.{host}:{port}/health").raise_for_status()
        done += 1
    return round(done / seconds, 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--subnet", default=SUBNET)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    base = Path(tempfile.mkdtemp(prefix="hutch-edge-bench-"))
    tls_port, api_port, proxy_port = free_port(), free_port(), free_port()
    env = {
        **os.environ,
        "HUTCH_DATA_DIR": str(base / "data"),
        "HUTCH_API__PORT": str(api_port),
        "HUTCH_PROXY__PORT": str(proxy_port),
        "HUTCH_PROXY__TLS_PORT": str(tls_port),
        "HUTCH_PROXY__TRUST_LOCAL_CA": "false",
        "HUTCH_RUNTIME__SUBNET": args.subnet,
        "HUTCH_RUNTIME__EGRESS_INTERFACE": "off",
    }
    env_file = base / "env.local"
    subprocess.run([HUTCH, "up", "--detach", "--env-file", str(env_file)], env=env, check=True)
    results: dict[str, object] = {}
    try:
        values = dict(line.split("=", 1) for line in env_file.read_text().splitlines() if "=" in line)
        domain, key = values["E2B_DOMAIN"], values["E2B_API_KEY"]
        ca = Path(values["NODE_EXTRA_CA_CERTS"])
        bundle = base / "bundle.pem"
        bundle.write_text(SYSTEM_BUNDLE.read_text() + ca.read_text())
        os.environ["SSL_CERT_FILE"] = str(bundle)  # before the SDK makes its first connection
        paths = {
            "header path (plain HTTP)": {
                "api_key": key,
                "api_url": f"http://localhost:{api_port}",
                "sandbox_url": f"http://localhost:{proxy_port}",
            },
            "TLS edge (E2B_DOMAIN)": {"api_key": key, "domain": domain},
        }
        sandbox = Sandbox.create(**paths["header path (plain HTTP)"])
        try:
            payload = os.urandom(4096)
            for label, opts in paths.items():
                same = Sandbox.connect(sandbox.sandbox_id, **opts)

                def write_read(box: Sandbox = same) -> None:
                    box.files.write("/home/user/bench.bin", payload)
                    box.files.read("/home/user/bench.bin", format="bytes")

                results[f'{label}: run("true")'] = timed(lambda box=same: box.commands.run("true"), args.runs)
                results[f"{label}: create → first command"] = _create_to_first_command(opts, CREATE_RUNS)
                results[f"{label}: 4 KiB write+read"] = timed(write_read, args.runs)
            host = domain.rpartition(":")[0]
            results["TLS edge: new connections/s (handshake + GET)"] = _connections_per_s(host, tls_port, ca)
        finally:
            sandbox.kill()
    finally:
        subprocess.run([HUTCH, "down"], env=env, check=False)
        shutil.rmtree(base, ignore_errors=True)
    report("TLS edge vs header path (ms)", results, as_json=args.json, width=52)


if __name__ == "__main__":
    main()
