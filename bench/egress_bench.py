"""Benchmark the latency an egress header rule adds: HTTPS requests from a sandbox's network namespace to
an outside server, direct (routed, the proxy not involved) and through the egress proxy's interception
(TLS terminated with the sandbox's CA, the rule's header with a secret set, TLS again to the server), in
the same run. Each way: a new connection per request, and requests on one keep-alive connection.

Everything is on this machine: the outside is a network namespace (``tests/security/egress_outside.py``,
a threaded Python HTTPS server) behind a veth used as the uplink, the sandboxes are bare network
namespaces, the node's ``Firewall`` and ``EgressProxy`` run in this process. Subnets 172.31.{240,241}.x,
outside 203.0.113.250. Run as root: ``python bench/egress_bench.py [--requests N] [--json]``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

from measure import report, summary

from hutch.runtime.container.egress.authority import CA_ONLY, TRUST, prepare_trust
from hutch.runtime.container.egress.firewall import EgressPolicy, Firewall
from hutch.runtime.container.egress.proxy import EgressProxy
from hutch.runtime.types import EgressSettings, HeaderRule

ROOT = Path(__file__).resolve().parents[1]
SUBNET, UPLINK_NET = "172.31.240.0/24", "172.31.241"
OUTSIDE = "203.0.113.250"
TAG = uuid.uuid4().hex[:6]
OUTSIDE_NS, UPLINK = f"hxb-out-{TAG}", f"hxbu{TAG}"
TABLE = "2499"
CLIENT = r"""
import json, socket, ssl, sys, time
address, name, ca, mode, count = sys.argv[1:6]
context = ssl.create_default_context(cafile=ca)
def connect():
    return context.wrap_socket(socket.create_connection((address, 443), timeout=10), server_hostname=name)
def get(tls):
    tls.sendall(b"GET / HTTP/1.1\r\nHost: " + name.encode() + b"\r\n\r\n")
    data = b""
    while b"\r\n\r\n" not in data:
        data += tls.recv(65536)
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.lower().split(b"\r\n")
    length = next(int(line.split(b":")[1]) for line in lines if line.startswith(b"content-length:"))
    while len(body) < length:
        body += tls.recv(65536)
    assert body.startswith(b"ok"), body
samples = []
kept = connect() if mode == "keep" else None
for _ in range(int(count) + 5):
    started = time.perf_counter()
    tls = kept or connect()
    get(tls)
    samples.append((time.perf_counter() - started) * 1000)
    if kept is None:
        tls.close()
print(json.dumps(samples[5:]))
"""


def ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True)


def openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True)


def make_outside(site: Path) -> subprocess.Popen:
    ec = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes")
    openssl("req", "-x509", *ec, "-keyout", str(site / "ca.key"), "-out", str(site / "ca.pem"), "-days", "1",
            "-subj", "/CN=bench CA")  # fmt: skip
    openssl("req", "-new", *ec, "-keyout", str(site / "key.pem"), "-out", str(site / "req.pem"),
            "-subj", "/CN=api.test")  # fmt: skip
    (site / "ext").write_text("subjectAltName=DNS:api.test\n")
    openssl("x509", "-req", "-in", str(site / "req.pem"), "-CA", str(site / "ca.pem"), "-CAkey",
            str(site / "ca.key"), "-CAcreateserial", "-out", str(site / "cert.pem"), "-days", "1",
            "-extfile", str(site / "ext"))  # fmt: skip
    ip("netns", "add", OUTSIDE_NS)
    ip("link", "add", UPLINK, "type", "veth", "peer", "name", "eth0", "netns", OUTSIDE_NS)
    ip("address", "add", f"{UPLINK_NET}.1/24", "dev", UPLINK)
    ip("link", "set", UPLINK, "up")
    ip("-n", OUTSIDE_NS, "address", "add", f"{UPLINK_NET}.2/24", "dev", "eth0")
    ip("-n", OUTSIDE_NS, "address", "add", f"{OUTSIDE}/32", "dev", "eth0")
    ip("-n", OUTSIDE_NS, "link", "set", "eth0", "up")
    ip("-n", OUTSIDE_NS, "link", "set", "lo", "up")
    server = subprocess.Popen(
        ["ip", "netns", "exec", OUTSIDE_NS, sys.executable, str(ROOT / "tests/security/egress_outside.py"),
         str(site / "cert.pem"), str(site / "key.pem"), "/dev/null", "/dev/null", "u", "p", OUTSIDE],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    assert server.stdout is not None and server.stdout.readline() == b"ready\n"
    ip("route", "add", "throw", SUBNET, "table", TABLE)
    ip("route", "add", "default", "via", f"{UPLINK_NET}.2", "dev", UPLINK, "table", TABLE)
    for selector, value in (("oif", UPLINK), ("from", SUBNET)):
        ip("rule", "add", selector, value, "lookup", TABLE)
    return server


def make_sandbox(index: int) -> tuple[str, str, str]:
    base = f"172.31.240.{2 * index}"
    peer = f"172.31.240.{2 * index + 1}"
    netns, host_if = f"hxb-sb{index}-{TAG}", f"hxbs{index}{TAG}"
    ip("netns", "add", netns)
    ip("link", "add", host_if, "type", "veth", "peer", "name", "eth0", "netns", netns)
    ip("address", "add", f"{base}/31", "dev", host_if)
    ip("link", "set", host_if, "up")
    ip("-n", netns, "address", "add", f"{peer}/31", "dev", "eth0")
    ip("-n", netns, "link", "set", "eth0", "up")
    ip("-n", netns, "link", "set", "lo", "up")
    ip("-n", netns, "route", "add", "default", "via", base)
    return netns, host_if, peer


def cleanup(sandboxes: list[tuple[str, str, str]]) -> None:
    for selector, value in (("oif", UPLINK), ("from", SUBNET)):
        subprocess.run(["ip", "rule", "del", selector, value, "lookup", TABLE], capture_output=True)
    subprocess.run(["ip", "route", "flush", "table", TABLE], capture_output=True)
    for netns, host_if, _ in sandboxes:
        subprocess.run(["ip", "link", "del", host_if], capture_output=True)
        subprocess.run(["ip", "netns", "del", netns], capture_output=True)
    subprocess.run(["ip", "link", "del", UPLINK], capture_output=True)
    subprocess.run(["ip", "netns", "del", OUTSIDE_NS], capture_output=True)


async def client(netns: str, ca: Path, mode: str, count: int) -> list[float]:
    process = await asyncio.create_subprocess_exec(
        "ip", "netns", "exec", netns, sys.executable, "-c", CLIENT,
        OUTSIDE, "api.test", str(ca), mode, str(count), stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, _ = await process.communicate()
    if process.returncode != 0:
        raise RuntimeError(f"the client failed in {mode} mode")
    return json.loads(out)


async def main(count: int, as_json: bool) -> None:
    with tempfile.TemporaryDirectory() as temp:
        site = Path(temp)
        (site / "rootfs").mkdir()
        sandboxes: list[tuple[str, str, str]] = []
        server = make_outside(site)
        firewall = Firewall(SUBNET, UPLINK, name_servers=(OUTSIDE,))
        proxy = EgressProxy(SUBNET, UPLINK, upstream_ca_file=str(site / "ca.pem"))
        try:
            await proxy.start()
            await firewall.install(proxy_port=proxy.port)
            sandboxes = [make_sandbox(1), make_sandbox(2)]
            (site / "sandbox").mkdir()
            prepare_trust(site / "sandbox", site / "rootfs")
            rule = HeaderRule("api.test", {"Authorization": "Bearer ${e2b.secrets.tok}"})
            injected = EgressPolicy(
                False,
                ("api.test",),
                ("0.0.0.0/0",),
                EgressSettings((rule,), {"tok": "x" * 40}),
                site / "sandbox",
            )
            direct = EgressPolicy(False, (OUTSIDE,), ("0.0.0.0/0",))
            for (_, host_if, address), policy, index in zip(
                sandboxes, (direct, injected), (1, 2), strict=True
            ):
                proxy.set_policy(address, policy)
                await firewall.apply(index, host_if, policy)
            results = {}
            for mode in ("new", "keep"):
                plain = await client(sandboxes[0][0], site / "ca.pem", mode, count)
                rewritten = await client(sandboxes[1][0], site / "sandbox" / TRUST / CA_ONLY, mode, count)
                results[f"direct, {mode} connection"] = summary(plain)
                results[f"secret injection, {mode} connection"] = summary(rewritten)
                added = summary(rewritten)["median_ms"] - summary(plain)["median_ms"]
                results[f"added median, {mode} connection (ms)"] = round(added, 2)
            assert proxy.counts["intercepted"] == count + 5 + 1, proxy.counts
            report(f"egress secret injection ({count} requests each)", results, as_json=as_json)
        finally:
            await firewall.uninstall()
            await proxy.stop()
            server.kill()
            server.wait()
            cleanup(sandboxes)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=50)
    parser.add_argument("--json", action="store_true")
    arguments = parser.parse_args()
    asyncio.run(main(arguments.requests, arguments.json))
