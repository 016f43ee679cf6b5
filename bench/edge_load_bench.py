"""Benchmark the TLS edge under load, through the official async SDK with only ``E2B_DOMAIN`` and
``E2B_API_KEY`` (HTTPS to HAProxy, which forwards straight to the sandbox or through the Python proxy).

Starts its own stack (``hutch up --detach``, temporary data, free ports, subnet 10.10.0.0/16 unless
``--subnet``) with the edge on a free port and a certificate authority of its own, which this process
trusts through ``SSL_CERT_FILE`` (the system's bundle plus that authority). Measures:

* ``commands.run("true")`` launched all at once, in rounds of CALLS x SANDBOXES: throughput, p50 and p99
  latency, and the CPU time HAProxy and the Python proxy spent per call;
* 64 MiB ``files.write`` + ``files.read(format="bytes")`` through the edge, through the plain header path
  (plain HTTP to the Python proxy) and to envd directly (its address from the edge's map: only the host
  reaches it);
* idle streams: ``--streams`` HTTP/1.1 requests through the edge to a server in one sandbox that answers
  the headers of a chunked response and then sends nothing, all held at once; HAProxy's and the Python
  proxy's memory per stream, and what is still held after the clients closed;
* new TLS connections to the edge per second (a handshake and one ``GET /health`` to the API each).

``python bench/edge_load_bench.py [--concurrency 50x1,200x10,500x10] [--sandboxes 10] [--streams 10000]
[--json]``
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import os
import resource
import shutil
import ssl
import statistics
import subprocess
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from e2b import AsyncSandbox
from leftovers import leftovers
from measure import HUTCH, free_port, report

SUBNET = "10.10.0.0/16"
SYSTEM_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
MIB = 1024 * 1024
TRANSFER_BYTES = 64 * MIB
TRANSFER_RUNS = 3
SANDBOX_TIMEOUT_S = 3600
IDLE_PORT = 8080
# Idle streams being opened at once (the rest wait their turn), and how long one may take to get its headers.
OPENING_AT_ONCE = 256
OPEN_TIMEOUT_S = 60
HANDSHAKE_SECONDS = 5.0
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")

# Answers every request with the headers of a chunked response, then holds the connection, sending nothing,
# until the client goes. Writes its file limit (soft, hard, after raising the soft one) once it listens.
IDLE_SERVER = """\
import asyncio, resource

soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
HEAD = b"HTTP/1.1 200 OK\\r\\nContent-Type: text/plain\\r\\nTransfer-Encoding: chunked\\r\\n\\r\\n"


async def hold(reader, writer):
    try:
        await reader.readuntil(b"\\r\\n\\r\\n")
        writer.write(HEAD)
        await writer.drain()
        await reader.read()
    except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
        pass
    finally:
        writer.close()


async def main():
    server = await asyncio.start_server(hold, "0.0.0.0", PORT, backlog=4096)
    limits = resource.getrlimit(resource.RLIMIT_NOFILE)
    with open("/tmp/idle-server.ready", "w") as ready:
        ready.write(f"{soft} {hard} {limits[0]}\\n")
    await server.serve_forever()


asyncio.run(main())
"""


@dataclass(frozen=True)
class Round:
    calls: int
    sandboxes: int

    @property
    def label(self) -> str:
        return f"{self.calls}x{self.sandboxes}"


@dataclass(frozen=True)
class EdgeProcesses:
    """The stack's HAProxy processes (master and worker) and its Python proxy."""

    haproxy: list[int]
    proxy: list[int]


def parse_rounds(text: str, sandboxes: int) -> list[Round]:
    """``50x1,200x10,500`` → rounds; a round without ``xSANDBOXES`` uses ``sandboxes``."""
    rounds = []
    for item in text.split(","):
        calls, _, count = item.strip().partition("x")
        rounds.append(Round(int(calls), int(count) if count else sandboxes))
    return rounds


def percentile(samples: list[float], fraction: float) -> float:
    """The nearest-rank ``fraction`` percentile of ``samples``."""
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(fraction * len(ordered)) - 1))]


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def edge_processes(data_dir: Path) -> EdgeProcesses:
    """HAProxy and the Python proxy of the stack with ``data_dir``, found by their command lines (HAProxy's
    names its configuration in the data directory, the proxy's ``--data-dir``)."""
    haproxy, proxy = [], []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        args = _cmdline(int(entry.name))
        if str(data_dir) not in args:
            continue
        if "haproxy" in args:
            haproxy.append(int(entry.name))
        elif "hutch.proxy" in args:
            proxy.append(int(entry.name))
    if not haproxy or not proxy:
        raise SystemExit(f"edge processes not found (haproxy {haproxy}, proxy {proxy})")
    return EdgeProcesses(sorted(haproxy), sorted(proxy))


def cpu_seconds(pids: list[int]) -> float:
    """User plus system CPU time of ``pids``, all their threads included."""
    ticks = 0
    for pid in pids:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
        ticks += int(fields[11]) + int(fields[12])  # utime, stime
    return ticks / CLOCK_TICKS


def rss_kib(pids: list[int]) -> int:
    """Resident memory of ``pids``, summed, in KiB."""
    total = 0
    for pid in pids:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                total += int(line.split()[1])
    return total


class CpuMeter:
    """CPU milliseconds spent between ``start`` and ``per`` by HAProxy, the Python proxy, this client (the
    SDK) and the sandboxes (their cgroups: envd and the commands it runs)."""

    def __init__(self, processes: EdgeProcesses, sandbox_ids: list[str]) -> None:
        self.processes = processes
        self.sandbox_ids = sandbox_ids
        self.started: dict[str, float] = {}

    def _now(self) -> dict[str, float]:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        return {
            "haproxy": cpu_seconds(self.processes.haproxy),
            "proxy": cpu_seconds(self.processes.proxy),
            "client": usage.ru_utime + usage.ru_stime,
            "sandboxes": sum(_sandbox_cpu_s(sandbox_id) for sandbox_id in self.sandbox_ids),
        }

    def start(self) -> None:
        self.started = self._now()

    def per(self, count: int) -> dict[str, float]:
        """CPU ms per unit of work (``count`` units since ``start``)."""
        now = self._now()
        return {
            f"{part}_cpu_ms_per_request": round((now[part] - self.started[part]) * 1000 / max(count, 1), 3)
            for part in now
        }


async def _envd_routes(edge_dir: Path) -> dict[str, str]:
    """Sandbox id → address, as the edge's map holds them now (asked on HAProxy's admin socket)."""
    reader, writer = await asyncio.open_unix_connection(str(edge_dir / "admin.sock"))
    writer.write(f"show map {edge_dir / 'envd.map'}\n".encode())
    answer = (await reader.read()).decode()
    writer.close()
    return {
        fields[1]: fields[2] for fields in (line.split() for line in answer.splitlines()) if len(fields) == 3
    }


def _sandbox_cpu_s(sandbox_id: str) -> float:
    usage = Path("/sys/fs/cgroup/cpuacct/hutch") / sandbox_id / "cpuacct.usage"
    try:
        return int(usage.read_text()) / 1e9
    except (OSError, ValueError):
        return 0.0


async def timed_call(sandbox: AsyncSandbox) -> float:
    start = time.perf_counter()
    await sandbox.commands.run("true")
    return (time.perf_counter() - start) * 1000


async def command_round(sandboxes: list[AsyncSandbox], plan: Round, meter: CpuMeter) -> dict:
    """``plan.calls`` ``commands.run("true")`` launched at once, spread evenly over ``plan.sandboxes``."""
    targets = [sandboxes[index % plan.sandboxes] for index in range(plan.calls)]
    meter.start()
    start = time.perf_counter()
    outcomes = await asyncio.gather(*(timed_call(box) for box in targets), return_exceptions=True)
    wall_s = time.perf_counter() - start
    latencies = [outcome for outcome in outcomes if isinstance(outcome, float)]
    failures = Counter(type(outcome).__name__ for outcome in outcomes if isinstance(outcome, BaseException))
    result: dict[str, object] = {
        "calls_per_s": round(plan.calls / wall_s, 1),
        "p50_ms": round(percentile(latencies, 0.5), 1) if latencies else None,
        "p99_ms": round(percentile(latencies, 0.99), 1) if latencies else None,
        "wall_s": round(wall_s, 2),
        **meter.per(plan.calls),
    }
    if failures:
        result["failures"] = dict(failures)
    return result


async def transfer_rates(sandbox: AsyncSandbox, payload: bytes) -> dict[str, float]:
    """Median MiB/s of ``TRANSFER_RUNS`` writes and reads of ``payload``."""
    path = "/home/user/transfer.bin"
    writes, reads = [], []
    for _ in range(TRANSFER_RUNS):
        start = time.perf_counter()
        await sandbox.files.write(path, payload)
        writes.append(len(payload) / MIB / (time.perf_counter() - start))
        start = time.perf_counter()
        data = await sandbox.files.read(path, format="bytes")
        reads.append(len(payload) / MIB / (time.perf_counter() - start))
        if len(data) != len(payload):
            raise RuntimeError(f"read {len(data)} bytes of {len(payload)}")
    await sandbox.commands.run(f"rm -f {path}")
    return {
        "write_MiBps": round(statistics.median(writes), 1),
        "read_MiBps": round(statistics.median(reads), 1),
    }


async def curl_rates(sandbox: AsyncSandbox, payload: bytes, ca: Path, envd_address: str) -> dict[str, float]:
    """Median MiB/s of ``TRANSFER_RUNS`` downloads of ``payload`` by curl (one process each, signed URL),
    through the edge and from envd directly: what the edge passes on when the client is not the limit."""
    path = "/home/user/transfer.bin"
    await sandbox.files.write(path, payload)
    through_edge = sandbox.download_url(path, use_signature_expiration=600)
    rest = through_edge.partition("/files")[2]
    direct = f"http://{envd_address}:49983/files{rest}"
    rates: dict[str, float] = {}
    for label, url in (("edge", through_edge), ("envd_direct", direct)):
        samples = []
        for _ in range(TRANSFER_RUNS):
            done = await asyncio.to_thread(
                subprocess.run,
                ["curl", "-sS", "-o", "/dev/null", "--cacert", str(ca), "-w", "%{speed_download}", url],
                capture_output=True,
                text=True,
                check=True,
            )
            samples.append(float(done.stdout) / MIB)
        rates[f"{label}_read_MiBps"] = round(statistics.median(samples), 1)
    rates["edge/direct"] = round(rates["edge_read_MiBps"] / rates["envd_direct_read_MiBps"], 2)
    await sandbox.commands.run(f"rm -f {path}")
    return rates


async def handshakes_per_s(
    server_name: str, port: int, context: ssl.SSLContext, workers: int, meter: CpuMeter
) -> dict[str, float]:
    """New TLS connections to the edge per second, ``workers`` at a time: a handshake and one
    ``GET /health`` to the API each, then the connection closes."""
    request = f"GET /health HTTP/1.1\r\nHost: {server_name}:{port}\r\nConnection: close\r\n\r\n".encode()
    deadline = time.monotonic() + HANDSHAKE_SECONDS

    async def worker() -> int:
        done = 0
        while time.monotonic() < deadline:
            reader, writer = await asyncio.open_connection(
                "127.0.0.1", port, ssl=context, server_hostname=server_name
            )
            writer.write(request)
            status = await reader.readline()
            if not status.startswith(b"HTTP/1.1 2"):
                raise RuntimeError(f"GET /health answered {status!r}")
            await reader.read()
            writer.close()
            with contextlib.suppress(OSError, ssl.SSLError):
                await writer.wait_closed()
            done += 1
        return done

    meter.start()
    start = time.perf_counter()
    done = sum(await asyncio.gather(*(worker() for _ in range(workers))))
    rate = done / (time.perf_counter() - start)
    return {"connections_per_s": round(rate, 1), **meter.per(done)}


async def start_idle_server(sandbox: AsyncSandbox) -> tuple[int, str]:
    """Start the idle server on ``IDLE_PORT``; its pid and its file limit (soft before, hard, soft after)."""
    await sandbox.files.write("/home/user/idle_server.py", IDLE_SERVER.replace("PORT", str(IDLE_PORT)))
    handle = await sandbox.commands.run("python3 /home/user/idle_server.py", background=True, timeout=0)
    await handle.disconnect()
    for _ in range(100):
        ready = await sandbox.commands.run("cat /tmp/idle-server.ready 2>/dev/null || true")
        if ready.stdout.strip():
            return handle.pid, ready.stdout.strip()
        await asyncio.sleep(0.1)
    raise RuntimeError("the idle server did not start")


async def open_descriptors(sandbox: AsyncSandbox, pid: int) -> str:
    """How many descriptors process ``pid`` of ``sandbox`` has open, or why that is unknown."""
    try:
        return (await sandbox.commands.run(f"ls /proc/{pid}/fd | wc -l")).stdout.strip()
    except Exception as error:
        return f"unavailable ({type(error).__name__}: {error})"[:120]


async def idle_streams(
    sandbox: AsyncSandbox,
    domain: str,
    tls_port: int,
    context: ssl.SSLContext,
    count: int,
    edge: EdgeProcesses,
) -> dict[str, object]:
    """Hold ``count`` idle chunked responses from a server in ``sandbox`` open through the edge at once."""
    pid, limits = await start_idle_server(sandbox)
    soft_before, hard, soft_after = limits.split()
    host = f"{IDLE_PORT}-{sandbox.sandbox_id}.{domain}"
    request = f"GET / HTTP/1.1\r\nHost: {host}\r\n\r\n".encode()
    server_name = host.rpartition(":")[0]
    opening = asyncio.Semaphore(OPENING_AT_ONCE)
    held: list[asyncio.StreamWriter] = []
    failures: Counter[str] = Counter()
    last_held = 0.0  # when the last stream held got its headers

    async def open_one() -> None:
        nonlocal last_held
        async with opening:
            writer = None
            try:
                async with asyncio.timeout(OPEN_TIMEOUT_S):
                    reader, writer = await asyncio.open_connection(
                        "127.0.0.1", tls_port, ssl=context, server_hostname=server_name
                    )
                    writer.write(request)
                    head = await reader.readuntil(b"\r\n\r\n")
                if not head.startswith(b"HTTP/1.1 200"):
                    raise RuntimeError(head.split(b"\r\n", 1)[0].decode(errors="replace"))
                held.append(writer)
                last_held = time.perf_counter()
            except Exception as error:
                failures[f"{type(error).__name__}: {error}"[:120]] += 1
                if writer is not None:
                    writer.transport.abort()

    haproxy_before, proxy_before = rss_kib(edge.haproxy), rss_kib(edge.proxy)
    start = time.perf_counter()
    await asyncio.gather(*(open_one() for _ in range(count)))
    open_s = last_held - start
    await asyncio.sleep(1)
    haproxy_holding, proxy_holding = rss_kib(edge.haproxy), rss_kib(edge.proxy)
    server_fds = await open_descriptors(sandbox, pid)
    # Closed with TLS close_notify: an edge that does not answer it while the response is unfinished makes
    # this wait out asyncio's 30 s SSL shutdown timeout; "after_close" shows what is still held then.
    start = time.perf_counter()
    for writer in held:
        writer.close()
    await asyncio.gather(*(writer.wait_closed() for writer in held), return_exceptions=True)
    close_s = time.perf_counter() - start
    await asyncio.sleep(1)
    streams = max(len(held), 1)
    result: dict[str, object] = {
        "asked": count,
        "held": len(held),
        "opened_per_s": round(len(held) / open_s, 1) if held else 0,
        "close_s": round(close_s, 1),
        "haproxy_rss_kib": {
            "before": haproxy_before,
            "holding": haproxy_holding,
            "after_close": rss_kib(edge.haproxy),
        },
        "haproxy_kib_per_stream": round((haproxy_holding - haproxy_before) / streams, 2),
        "proxy_rss_kib": {
            "before": proxy_before,
            "holding": proxy_holding,
            "after_close": rss_kib(edge.proxy),
        },
        "proxy_kib_per_stream": round((proxy_holding - proxy_before) / streams, 2),
        "sandbox_server_fds": {
            "holding": server_fds,
            "after_close": await open_descriptors(sandbox, pid),
        },
        "sandbox_file_limit": f"soft {soft_before} -> {soft_after}, hard {hard}",
    }
    if failures:
        result["failures"] = dict(failures.most_common(5))
    await sandbox.commands.run(f"kill {pid}")
    return result


def raise_file_limit() -> int:
    """Raise this process's soft ``RLIMIT_NOFILE`` to its hard limit; the new soft limit."""
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


async def measure(
    args: argparse.Namespace, values: dict[str, str], ports: dict[str, int], data: Path, seen: set[str]
) -> dict:
    """Every measurement, in sandboxes of its own (their ids go into ``seen``)."""
    domain, key = values["E2B_DOMAIN"], values["E2B_API_KEY"]
    ca = Path(values["NODE_EXTRA_CA_CERTS"])
    rounds = parse_rounds(args.concurrency, args.sandboxes)
    edge = edge_processes(data)
    context = ssl.create_default_context(cafile=str(ca))
    results: dict[str, object] = {"file limit (this process)": raise_file_limit()}
    created = await asyncio.gather(
        *(
            AsyncSandbox.create(api_key=key, domain=domain, timeout=SANDBOX_TIMEOUT_S)
            for _ in range(max(plan.sandboxes for plan in rounds))
        ),
        return_exceptions=True,
    )
    sandboxes = [box for box in created if isinstance(box, AsyncSandbox)]
    seen.update(box.sandbox_id for box in sandboxes)
    meter = CpuMeter(edge, [box.sandbox_id for box in sandboxes])
    try:
        if len(sandboxes) < len(created):
            raise SystemExit(
                f"sandboxes not created: {[box for box in created if isinstance(box, Exception)]}"
            )
        await asyncio.gather(*(box.commands.run("true") for box in sandboxes))
        for plan in rounds:
            results[f'commands.run("true") {plan.label}'] = await command_round(sandboxes, plan, meter)

        payload = os.urandom(TRANSFER_BYTES)
        plain = await AsyncSandbox.connect(
            sandboxes[0].sandbox_id,
            api_key=key,
            api_url=f"http://localhost:{ports['api']}",
            sandbox_url=f"http://localhost:{ports['proxy']}",
        )
        through_edge = await transfer_rates(sandboxes[0], payload)
        results["64 MiB through the TLS edge"] = through_edge
        results["64 MiB through the plain header path"] = await transfer_rates(plain, payload)
        # envd itself, at the sandbox's address (the edge's map has it), as a client on the host would be.
        edge_dir = data / "edge"
        if (edge_dir / "admin.sock").exists():
            routes = await _envd_routes(edge_dir)
            direct = await AsyncSandbox.connect(
                sandboxes[0].sandbox_id,
                api_key=key,
                api_url=f"http://localhost:{ports['api']}",
                sandbox_url=f"http://{routes[sandboxes[0].sandbox_id]}:49983",
            )
            envd_direct = await transfer_rates(direct, payload)
            results["64 MiB to envd directly"] = envd_direct
            results["64 MiB edge/direct ratio"] = {
                name: round(through_edge[name] / envd_direct[name], 2) for name in through_edge
            }
            results["64 MiB read by curl"] = await curl_rates(
                sandboxes[0], payload, ca, routes[sandboxes[0].sandbox_id]
            )

        api_name = f"api.{domain.rpartition(':')[0]}"
        for workers in (1, 16):
            results[f"TLS handshakes, {workers} at a time"] = await handshakes_per_s(
                api_name, ports["tls"], context, workers, meter
            )

        results[f"idle streams ({args.streams})"] = await idle_streams(
            sandboxes[0], domain, ports["tls"], context, args.streams, edge
        )
        start = time.perf_counter()
        await sandboxes[0].commands.run("true")
        results['commands.run("true") after the idle streams (ms)'] = round(
            (time.perf_counter() - start) * 1000, 1
        )
    finally:
        await asyncio.gather(*(box.kill() for box in sandboxes), return_exceptions=True)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--concurrency",
        default="50x1,200x10,500x10",
        help="rounds of CALLSxSANDBOXES, comma-separated; a bare CALLS uses --sandboxes",
    )
    parser.add_argument("--sandboxes", type=int, default=10, help="sandboxes of a round that names none")
    parser.add_argument("--streams", type=int, default=10_000)
    parser.add_argument("--subnet", default=SUBNET)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    base = Path(tempfile.mkdtemp(prefix="hutch-edge-load-bench-"))
    data = base / "data"
    ports = {"tls": free_port(), "api": free_port(), "proxy": free_port()}
    env = {
        **os.environ,
        "HUTCH_DATA_DIR": str(data),
        "HUTCH_API__PORT": str(ports["api"]),
        "HUTCH_PROXY__PORT": str(ports["proxy"]),
        "HUTCH_PROXY__TLS_PORT": str(ports["tls"]),
        "HUTCH_PROXY__TRUST_LOCAL_CA": "false",
        "HUTCH_RUNTIME__SUBNET": args.subnet,
        "HUTCH_RUNTIME__EGRESS_INTERFACE": "off",
    }
    env_file = base / "env.local"
    seen: set[str] = set()
    subprocess.run([HUTCH, "up", "--detach", "--env-file", str(env_file)], env=env, check=True)
    try:
        values = dict(line.split("=", 1) for line in env_file.read_text().splitlines() if "=" in line)
        bundle = base / "bundle.pem"
        bundle.write_text(SYSTEM_BUNDLE.read_text() + Path(values["NODE_EXTRA_CA_CERTS"]).read_text())
        os.environ["SSL_CERT_FILE"] = str(bundle)  # before the SDK makes its first connection
        results = asyncio.run(measure(args, values, ports, data, seen))
    finally:
        subprocess.run([HUTCH, "down"], env=env, check=False)
        problems = leftovers(data, args.subnet, seen)
        shutil.rmtree(base, ignore_errors=True)
    report("TLS edge under load", results, as_json=args.json, width=52)
    if problems:
        raise SystemExit(f"left behind: {problems}")


if __name__ == "__main__":
    main()
