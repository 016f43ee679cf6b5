"""Benchmark the sandbox lifecycle through the official e2b SDK: create, first command, kill, memory.

Starts its own stacks (``hutch up`` with a data directory under a temporary directory, free ports and the
subnet 10.13.0.0/16 or ``--subnet``, so another stack on the machine is never touched) and measures:

* create → first ``commands.run("echo hi")``: p50/p95/p99 with a warm pool (each create waits until the
  pool is full again, so every create is a claim) and cold (a second stack with ``{"base": 0}``); for cold
  creates also the split at the moment crun created the container (read from ``crun state``);
* a burst of concurrent creates (``AsyncSandbox.create`` + one echo each): every one's latency and the
  wall time, with the warm pool and without it; all of them are killed afterwards;
* envd's own start-up inside a sandbox (spawn → ``/health``) next to a bare ``python3 -c pass``;
* kill latency (``Sandbox.kill``), measured on the sandboxes of the serial runs;
* sustained creates/s over a duration (create, one echo, kill in a loop by a few workers);
* memory per idle sandbox: the drop of ``MemAvailable`` while N idle sandboxes run (and its rise when they
  are killed), once the kernel has merged envd's pages where the host merges them (the drop before, too),
  envd's ``Private_Dirty``/``Pss`` and the sandbox's memory cgroup; from that, how many idle
  sandboxes fit into the memory available (``--fit-verify N`` starts N idle sandboxes at once);
* ``podman run --rm <base image> true`` for comparison: podman and runc are installed with apt if missing,
  the base template's root filesystem is imported once as an image (cached in ``--podman-root``).

Every sandbox it creates is killed and every stack stopped, also on Ctrl-C or an error. Run as root:
``.venv/bin/python bench/create_bench.py [--quick] [--json]`` (``--quick`` takes under three minutes).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import hashlib
import ipaddress
import json
import logging
import math
import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

import httpx
from e2b import AsyncSandbox, CommandExitException, Sandbox

from hutch.templates import base as base_template

TEMPLATE = "base"
SUBNET = "10.13.0.0/16"
ENVD_PORT = 49983
SANDBOX_TIMEOUT_S = 1800
START_TIMEOUT_S = 900  # a fresh machine builds the base template first
STOP_TIMEOUT_S = 300
PODMAN_TIMEOUT_S = 120
CACHE_DIR = Path("/var/cache/hutch")
PODMAN_RUNROOT = Path("/run/hutch-bench-podman")
MIB = 1024 * 1024
T = TypeVar("T")


# -- small helpers ------------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def percentile(samples: list[float], q: float) -> float:
    """Linear interpolation between the closest ranks (q in 0..100)."""
    if not samples:
        return math.nan
    ordered = sorted(samples)
    rank = (len(ordered) - 1) * q / 100
    low, high = math.floor(rank), math.ceil(rank)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def summary(samples_ms: list[float]) -> dict[str, float]:
    if not samples_ms:
        return {"n": 0}
    return {
        "n": len(samples_ms),
        "p50_ms": round(percentile(samples_ms, 50), 1),
        "p95_ms": round(percentile(samples_ms, 95), 1),
        "p99_ms": round(percentile(samples_ms, 99), 1),
        "min_ms": round(min(samples_ms), 1),
        "max_ms": round(max(samples_ms), 1),
    }


def load_average() -> list[float]:
    return [float(x) for x in Path("/proc/loadavg").read_text().split()[:3]]


def meminfo_kib() -> dict[str, int]:
    values: dict[str, int] = {}
    for line in Path("/proc/meminfo").read_text().splitlines():
        key, _, rest = line.partition(":")
        values[key] = int(rest.split()[0])
    return values


def mem_available_kib(samples: int = 9, interval_s: float = 0.3) -> int:
    """The median of a few readings of MemAvailable (other processes on the machine make it move)."""
    readings = []
    for i in range(samples):
        if i:
            time.sleep(interval_s)
        readings.append(meminfo_kib()["MemAvailable"])
    return sorted(readings)[len(readings) // 2]


def smaps_rollup_kib(pid: int) -> dict[str, int]:
    values: dict[str, int] = {}
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()[1:]:
            key, _, rest = line.partition(":")
            values[key] = int(rest.split()[0])
    return values


def read_int(path: Path) -> int | None:
    try:
        return int(path.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


KSM = Path("/sys/kernel/mm/ksm")
# While the bench waits for the kernel to merge the idle envds' pages: 100,000 pages a second (the kernel's
# default is 5,000), put back afterwards.
MERGE_SCAN_PAGES = 2000


def _ksmd_cpu_ticks() -> int:
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (entry / "comm").exists():
            with contextlib.suppress(OSError):
                if (entry / "comm").read_text().strip() == "ksmd":
                    fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
                    return int(fields[11]) + int(fields[12])
    return 0


def settle_merging(timeout_s: float = 90) -> dict[str, Any]:
    """Wait until a full pass of ``ksmd`` merges less than 1 MiB more (a page is merged on the pass after
    the one that saw it unchanged, so two passes at least), scanning faster meanwhile; {} when the host
    does not merge pages or has none to merge."""
    if read_int(KSM / "run") != 1:
        return {}
    scanned = read_int(KSM / "pages_scanned")
    time.sleep(1)
    if read_int(KSM / "pages_scanned") == scanned:
        return {}  # ksmd runs but has nothing to scan: this node's envds are not offered to it
    rate = (KSM / "pages_to_scan").read_text().strip()
    ticks, started = _ksmd_cpu_ticks(), time.perf_counter()
    first = passes = read_int(KSM / "full_scans") or 0
    sharing = [read_int(KSM / "pages_sharing") or 0]
    (KSM / "pages_to_scan").write_text(str(MERGE_SCAN_PAGES))
    try:
        while time.perf_counter() - started < timeout_s:
            time.sleep(0.2)
            now = read_int(KSM / "full_scans") or 0
            if now == passes:
                continue
            passes = now
            sharing.append(read_int(KSM / "pages_sharing") or 0)
            if len(sharing) > 2 and abs(sharing[-1] - sharing[-2]) < 256:
                break
    finally:
        (KSM / "pages_to_scan").write_text(rate)
    waited = time.perf_counter() - started
    return {
        "merge_wait_s": round(waited, 1),
        "merge_passes": passes - first,
        "ksmd_cpu_percent_while_waiting": round(
            100 * (_ksmd_cpu_ticks() - ticks) / os.sysconf("SC_CLK_TCK") / waited, 1
        ),
    }


def short_error(err: BaseException) -> str:
    text = " | ".join(line.strip() for line in str(err).strip().splitlines() if line.strip())
    return f"{type(err).__name__}: {text[:400]}"


def median(values: list[float]) -> float:
    return percentile(values, 50)


@contextlib.contextmanager
def phase(results: dict[str, Any], name: str, say: Callable[[str], None]) -> Iterator[dict[str, Any]]:
    """Collects one phase's numbers with the load average before and after it."""
    entry: dict[str, Any] = {"load_before": load_average()}
    results[name] = entry
    say(f"· {name} …")
    started = time.perf_counter()
    try:
        yield entry
    except Exception as err:
        entry["error"] = short_error(err)
        say(f"  {name} failed: {entry['error']}")
    finally:
        entry["load_after"] = load_average()
        entry["seconds"] = round(time.perf_counter() - started, 1)


async def bounded(items: list[Callable[[], Awaitable[T]]], limit: int) -> list[T | BaseException]:
    semaphore = asyncio.Semaphore(limit)

    async def run(item: Callable[[], Awaitable[T]]) -> T:
        async with semaphore:
            return await item()

    return await asyncio.gather(*(run(item) for item in items), return_exceptions=True)


# -- the stack ----------------------------------------------------------------------------------------------


@dataclass
class Stack:
    """One ``hutch up`` in the foreground of a child process, with its own data directory and ports."""

    name: str
    root: Path
    warm_pool: int
    api_port: int = field(default_factory=free_port)
    proxy_port: int = field(default_factory=free_port)
    api_key: str = ""
    process: subprocess.Popen[bytes] | None = None
    live: set[str] = field(default_factory=set)
    stopped_cleanly: bool = True

    @property
    def data_dir(self) -> Path:
        return self.root / self.name / "data"

    @property
    def log_path(self) -> Path:
        return self.root / self.name / "hutch.log"

    @property
    def opts(self) -> dict[str, str]:
        return {
            "api_key": self.api_key,
            "api_url": f"http://localhost:{self.api_port}",
            "sandbox_url": f"http://localhost:{self.proxy_port}",
        }

    @property
    def crun_state_dir(self) -> str:
        # The container runtime keeps one crun state directory per data directory, named this way.
        digest = hashlib.sha256(str(self.data_dir.resolve()).encode()).hexdigest()[:10]
        return f"/run/hutch/crun-{digest}"

    def start(self) -> None:
        self.data_dir.mkdir(parents=True)
        env_file = self.root / self.name / "env.local"
        env = {k: v for k, v in os.environ.items() if not k.startswith(("HUTCH_", "E2B_"))}
        env |= {
            "HUTCH_DATA_DIR": str(self.data_dir),
            "HUTCH_API__PORT": str(self.api_port),
            "HUTCH_PROXY__PORT": str(self.proxy_port),
            "HUTCH_RUNTIME__SUBNET": SUBNET,
            "HUTCH_RUNTIME__NODE_ID": f"bench-{self.name}",
            "HUTCH_RUNTIME__WARM_POOL": json.dumps({TEMPLATE: self.warm_pool}),
            "HUTCH_RUNTIME__EGRESS_INTERFACE": "off",
            # The bench measures how many sandboxes fit, not the team's default limit on them.
            "HUTCH_QUOTAS__CONCURRENT_SANDBOXES": "10000",
            # The plain-HTTP paths only: no TLS edge on 443, nothing added to the host's trust store.
            "HUTCH_PROXY__TLS_PORT": "0",
            "HUTCH_PROXY__TRUST_LOCAL_CA": "false",
        }
        command = [sys.executable, "-m", "hutch.cli.main", "up", "--env-file", str(env_file)]
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                [*command, "--log-level", "WARNING"],
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                start_new_session=True,  # Ctrl-C reaches only this script, which then stops the stack
            )
        deadline = time.monotonic() + START_TIMEOUT_S
        while not env_file.exists():
            if self.process.poll() is not None:
                raise RuntimeError(f"hutch up exited with {self.process.returncode}; see {self.log_path}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"hutch up did not become ready in {START_TIMEOUT_S} s")
            time.sleep(0.1)
        values = dict(line.split("=", 1) for line in env_file.read_text().splitlines() if "=" in line)
        self.api_key = values["E2B_API_KEY"].strip()
        with httpx.Client(trust_env=False) as client:
            while True:
                with contextlib.suppress(httpx.HTTPError):
                    if client.get(f"http://127.0.0.1:{self.api_port}/health").status_code < 300:
                        break
                if time.monotonic() > deadline:
                    raise RuntimeError(f"the API did not answer /health in {START_TIMEOUT_S} s")
                time.sleep(0.1)

    def containers(self) -> list[dict[str, Any]]:
        """The stack's containers as crun lists them (id, pid, status, created)."""
        done = subprocess.run(
            ["crun", "--root", self.crun_state_dir, "list", "--format", "json"],
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0 or not done.stdout.strip():
            return []
        return list(json.loads(done.stdout))

    def created_at(self, sandbox_id: str) -> float | None:
        """When crun created the sandbox's container (Unix time)."""
        done = subprocess.run(
            ["crun", "--root", self.crun_state_dir, "state", sandbox_id],
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0:
            return None
        return datetime.fromisoformat(json.loads(done.stdout)["created"]).timestamp()

    def sandbox_ip(self, sandbox_id: str) -> str | None:
        try:
            index = json.loads((self.data_dir / "sandboxes" / sandbox_id / "sandbox.json").read_text())[
                "index"
            ]
        except (OSError, ValueError, KeyError):
            return None
        return str(ipaddress.ip_network(SUBNET).network_address + 2 * int(index) + 1)

    def ready_spares(self, client: httpx.Client) -> int:
        """Containers that are not ours and whose envd answers: the warm pool (and the development sandbox,
        where the stack keeps one)."""
        ready = 0
        for container in self.containers():
            if container["id"] in self.live or container.get("status") != "running":
                continue
            ip = self.sandbox_ip(container["id"])
            if ip is None:
                continue
            with contextlib.suppress(httpx.HTTPError):
                if client.get(f"http://{ip}:{ENVD_PORT}/health", timeout=0.5).status_code == 204:
                    ready += 1
        return ready

    def wait_pool(self, timeout_s: float = 60.0) -> float:
        """Wait until the warm pool is full again; returns the seconds waited (raises on timeout)."""
        started = time.perf_counter()
        with httpx.Client(trust_env=False) as client:
            wanted = self.warm_pool + (self.data_dir / "debug-sandbox.json").exists()
            while self.ready_spares(client) < wanted:
                if time.perf_counter() - started > timeout_s:
                    raise TimeoutError(f"the warm pool did not refill to {self.warm_pool} in {timeout_s} s")
                time.sleep(0.05)
        return time.perf_counter() - started

    def kill_all(self) -> list[str]:
        """Kill every sandbox this script created on the stack and has not killed yet."""
        errors = []
        for sandbox_id in list(self.live):
            try:
                Sandbox.kill(sandbox_id, request_timeout=30, **self.opts)
            except Exception as err:
                errors.append(f"{sandbox_id}: {short_error(err)}")
            self.live.discard(sandbox_id)
        return errors

    def stop(self) -> None:
        """Kill our sandboxes, then stop the stack with SIGTERM (which removes all its sandboxes)."""
        if self.process is None:
            return
        if self.process.poll() is None and self.api_key:
            for error in self.kill_all():
                print(f"warning: kill failed: {error}", file=sys.stderr)
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.stopped_cleanly = False
                print(
                    f"warning: the {self.name} stack did not stop in {STOP_TIMEOUT_S} s; killing it. "
                    f"Starting `hutch up` with HUTCH_DATA_DIR={self.data_dir} removes what it left behind.",
                    file=sys.stderr,
                )
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        leftovers = self.containers()
        if leftovers:
            self.stopped_cleanly = False
            print(f"warning: containers left in {self.crun_state_dir}: {leftovers}", file=sys.stderr)
        else:
            with contextlib.suppress(OSError):
                os.rmdir(self.crun_state_dir)  # the runtime leaves its (now empty) crun state directory
        self.process = None


# -- the measurements ---------------------------------------------------------------------------------------


def serial_creates(stack: Stack, runs: int, warmup: int, *, warm: bool, pause_s: float) -> dict[str, Any]:
    """create → first echo, one at a time, each sandbox killed (kill timed) before the next."""
    total, create, first, second, kill, pool_wait = [], [], [], [], [], []
    until_crun, after_crun = [], []
    errors: list[str] = []
    for i in range(warmup + runs):
        measured = i >= warmup
        if warm:
            pool_wait.append(stack.wait_pool() * 1000)
        else:
            time.sleep(pause_s)  # let the previous sandbox's background cleanup finish
        sandbox: Sandbox | None = None
        try:
            sent = time.time()
            t0 = time.perf_counter()
            sandbox = Sandbox.create(TEMPLATE, timeout=SANDBOX_TIMEOUT_S, **stack.opts)
            stack.live.add(sandbox.sandbox_id)
            t1 = time.perf_counter()
            result = sandbox.commands.run("echo hi")
            t2 = time.perf_counter()
            if result.stdout != "hi\n":
                raise RuntimeError(f"unexpected output {result.stdout!r}")
            sandbox.commands.run("echo hi")
            t3 = time.perf_counter()
            if measured:
                second.append((t3 - t2) * 1000)
                total.append((t2 - t0) * 1000)
                create.append((t1 - t0) * 1000)
                first.append((t2 - t1) * 1000)
                created = stack.created_at(sandbox.sandbox_id) if not warm else None
                if created is not None:
                    until_crun.append((created - sent) * 1000)
                    after_crun.append((t1 - t0) * 1000 - (created - sent) * 1000)
        except Exception as err:
            errors.append(short_error(err))
            if len(errors) > max(5, runs // 4):
                raise RuntimeError(f"too many failures: {errors[:3]}") from err
        finally:
            if sandbox is not None:
                k0 = time.perf_counter()
                try:
                    sandbox.kill()
                    stack.live.discard(sandbox.sandbox_id)
                    if measured:
                        kill.append((time.perf_counter() - k0) * 1000)
                except Exception as err:
                    errors.append(f"kill: {short_error(err)}")
    out: dict[str, Any] = {
        "create_to_first_echo": summary(total),
        "create": summary(create),
        "first_echo": summary(first),
        "second_echo": summary(second),
        "kill": summary(kill),
        "failures": len(errors),
        "errors": errors[:5],
        "kill_samples_ms": kill,
    }
    if warm:
        out["pool_refill_wait"] = summary(pool_wait)
    if until_crun:
        out["cold_split"] = {
            "request_to_container_created": summary(until_crun),
            "container_created_to_create_returned": summary(after_crun),
        }
    return out


# Run inside a sandbox: how long a second envd takes from spawn to answering /health, and a bare python3.
ENVD_START_PROBE = """
import json, subprocess, sys, time, urllib.request
opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
envd, bare = [], []
for i in range(int(sys.argv[1])):
    t0 = time.perf_counter()
    subprocess.run(["python3", "-I", "-c", "pass"], check=True)
    bare.append((time.perf_counter() - t0) * 1000)
    port = 49990 + i
    t0 = time.perf_counter()
    p = subprocess.Popen(["python3", "-I", "/usr/local/lib/hutch/envd.pyz", "--port", str(port)])
    while True:
        try:
            if opener.open(f"http://127.0.0.1:{port}/health", timeout=1).status == 204:
                break
        except Exception:  # not listening yet, or closed while starting
            time.sleep(0.002)
    envd.append((time.perf_counter() - t0) * 1000)
    p.terminate()
    p.wait()
print(json.dumps({"envd": envd, "bare": bare}))
"""


def envd_start(stack: Stack, runs: int) -> dict[str, Any]:
    """Inside one sandbox: envd's own start-up (spawn → /health) and a bare ``python3 -c pass``."""
    sandbox = Sandbox.create(TEMPLATE, timeout=SANDBOX_TIMEOUT_S, **stack.opts)
    stack.live.add(sandbox.sandbox_id)
    try:
        sandbox.files.write("/tmp/envd_start_probe.py", ENVD_START_PROBE)
        try:
            command = f"python3 /tmp/envd_start_probe.py {runs}"
            result = sandbox.commands.run(command, user="root", timeout=120)
        except CommandExitException as err:
            raise RuntimeError(f"the probe failed: {(err.stderr or err.stdout or '')[-400:]}") from err
        samples = json.loads(result.stdout)
    finally:
        sandbox.kill()
        stack.live.discard(sandbox.sandbox_id)
    return {"envd_to_health": summary(samples["envd"]), "python3_pass": summary(samples["bare"])}


async def burst(stack: Stack, n: int) -> dict[str, Any]:
    """n concurrent creates, each followed by one echo; then all of them are killed at once."""

    async def one() -> float:
        t0 = time.perf_counter()
        sandbox = await AsyncSandbox.create(TEMPLATE, timeout=SANDBOX_TIMEOUT_S, **stack.opts)
        stack.live.add(sandbox.sandbox_id)
        result = await sandbox.commands.run("echo hi")
        if result.stdout != "hi\n":
            raise RuntimeError(f"unexpected output {result.stdout!r}")
        return (time.perf_counter() - t0) * 1000

    t0 = time.perf_counter()
    outcomes = await asyncio.gather(*(one() for _ in range(n)), return_exceptions=True)
    wall = time.perf_counter() - t0
    latencies = [x for x in outcomes if isinstance(x, float)]
    errors = [short_error(x) for x in outcomes if isinstance(x, BaseException)]
    ids = list(stack.live)

    async def kill(sandbox_id: str) -> None:
        await AsyncSandbox.kill(sandbox_id, request_timeout=60, **stack.opts)
        stack.live.discard(sandbox_id)

    k0 = time.perf_counter()
    killed = await asyncio.gather(*(kill(i) for i in ids), return_exceptions=True)
    kill_wall = time.perf_counter() - k0
    errors += [f"kill: {short_error(x)}" for x in killed if isinstance(x, BaseException)]
    return {
        "concurrency": n,
        "latency": summary(latencies),
        "wall_s": round(wall, 2),
        "kill_all_wall_s": round(kill_wall, 2),
        "failures": len(errors),
        "errors": errors[:5],
    }


async def sustained(stack: Stack, duration_s: float, workers: int) -> dict[str, Any]:
    """Workers loop create → echo → kill until the duration is over."""
    deadline = time.perf_counter() + duration_s
    cycles: list[float] = []
    errors: list[str] = []

    async def worker() -> None:
        while time.perf_counter() < deadline:
            t0 = time.perf_counter()
            sandbox: AsyncSandbox | None = None
            try:
                sandbox = await AsyncSandbox.create(TEMPLATE, timeout=SANDBOX_TIMEOUT_S, **stack.opts)
                stack.live.add(sandbox.sandbox_id)
                result = await sandbox.commands.run("echo hi")
                if result.stdout != "hi\n":
                    raise RuntimeError(f"unexpected output {result.stdout!r}")
                await sandbox.kill()
                stack.live.discard(sandbox.sandbox_id)
                cycles.append((time.perf_counter() - t0) * 1000)
            except Exception as err:
                errors.append(short_error(err))
                if sandbox is not None:
                    with contextlib.suppress(Exception):
                        await sandbox.kill()
                        stack.live.discard(sandbox.sandbox_id)
                await asyncio.sleep(0.1)

    t0 = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(workers)))
    elapsed = time.perf_counter() - t0
    return {
        "duration_s": round(elapsed, 1),
        "workers": workers,
        "cycles": len(cycles),
        "creates_per_s": round(len(cycles) / elapsed, 2),
        "cycle": summary(cycles),
        "failures": len(errors),
        "errors": errors[:5],
    }


async def start_idle(stack: Stack, count: int, parallel: int) -> tuple[list[str], list[str]]:
    """Start ``count`` sandboxes that run one echo and then stay idle; returns (ids, errors)."""

    async def one() -> str:
        sandbox = await AsyncSandbox.create(TEMPLATE, timeout=SANDBOX_TIMEOUT_S, **stack.opts)
        stack.live.add(sandbox.sandbox_id)
        await sandbox.commands.run("echo hi")
        return sandbox.sandbox_id

    outcomes = await bounded([one] * count, parallel)
    return (
        [x for x in outcomes if isinstance(x, str)],
        [short_error(x) for x in outcomes if isinstance(x, BaseException)],
    )


async def kill_many(stack: Stack, ids: list[str], parallel: int) -> list[str]:
    async def kill(sandbox_id: str) -> None:
        await AsyncSandbox.kill(sandbox_id, request_timeout=60, **stack.opts)
        stack.live.discard(sandbox_id)

    outcomes = await bounded([functools.partial(kill, i) for i in ids], parallel)
    return [short_error(x) for x in outcomes if isinstance(x, BaseException)]


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def sandbox_memory(stack: Stack, ids: list[str]) -> dict[str, Any]:
    """Per sandbox: envd's smaps_rollup and pages merged by the kernel, all its processes' Pss, its memory
    cgroup."""
    pids = {c["id"]: int(c["pid"]) for c in stack.containers()}
    envd_dirty: list[float] = []
    envd_pss: list[float] = []
    envd_merged: list[float] = []
    all_pss: list[float] = []
    cgroup_usage: list[float] = []
    cgroup_kmem: list[float] = []
    processes: list[float] = []
    for sandbox_id in ids:
        pid = pids.get(sandbox_id)
        if pid is None:
            continue
        cgroup = Path("/sys/fs/cgroup/memory/hutch") / sandbox_id
        try:
            procs = [int(p) for p in (cgroup / "cgroup.procs").read_text().split()]
        except OSError:
            procs = [pid]
        # envd: the init, or the process forked into the container whose init waits for it.
        envd = next((p for p in procs if b"envd.pyz" in _cmdline(p)), pid)
        rollup = smaps_rollup_kib(envd)
        envd_dirty.append(rollup.get("Private_Dirty", 0))
        envd_pss.append(rollup.get("Pss", 0))
        envd_merged.append((read_int(Path(f"/proc/{envd}/ksm_merging_pages")) or 0) * 4)
        processes.append(len(procs))
        all_pss.append(sum(smaps_rollup_kib(p).get("Pss", 0) for p in procs))
        usage = read_int(cgroup / "memory.usage_in_bytes")
        kmem = read_int(cgroup / "memory.kmem.usage_in_bytes")
        if usage is not None:
            cgroup_usage.append(usage / 1024)
        if kmem is not None:
            cgroup_kmem.append(kmem / 1024)

    def mib(values: list[float]) -> float | None:
        return round(median(values) / 1024, 1) if values else None

    return {
        "sandboxes_read": len(envd_dirty),
        "envd_private_dirty_mib": mib(envd_dirty),
        "envd_pss_mib": mib(envd_pss),
        "envd_merged_mib": mib(envd_merged),
        "all_processes_pss_mib": mib(all_pss),
        "processes_per_sandbox": median(processes) if processes else None,
        "cgroup_usage_mib": mib(cgroup_usage),
        "cgroup_kmem_mib": mib(cgroup_kmem),
    }


def idle_memory(stack: Stack, count: int, fit_verify: int, parallel: int) -> dict[str, Any]:
    """MemAvailable before, with ``count`` idle sandboxes, and after killing them; then the fit estimate."""
    out: dict[str, Any] = {"idle_sandboxes": count}
    stack.wait_pool()
    time.sleep(3)
    settle_merging()  # the pool's envds as merged as they will be, like the idle sandboxes' below
    before = mem_available_kib()
    ids, errors = asyncio.run(start_idle(stack, count, parallel))
    n = len(ids)
    if not n:
        raise RuntimeError(f"no idle sandbox started: {errors[:3]}")
    stack.wait_pool()
    time.sleep(5)
    during = mem_available_kib()
    merging = settle_merging()
    if merging:
        out["per_sandbox_mib_before_merging"] = round((before - during) / n / 1024, 1)
        out |= merging
        during = mem_available_kib()
    out |= sandbox_memory(stack, ids)
    k0 = time.perf_counter()
    errors += kill_many_sync(stack, ids, parallel)
    out["kill_all_s"] = round(time.perf_counter() - k0, 1)
    stack.wait_pool()
    time.sleep(5)
    after = mem_available_kib()
    drop, freed = (before - during) / n, (after - during) / n
    out |= {
        "started": n,
        "mem_available_before_mib": round(before / 1024),
        "mem_available_with_idle_mib": round(during / 1024),
        "mem_available_after_kill_mib": round(after / 1024),
        "per_sandbox_mib_mem_available": round(drop / 1024, 1),
        "per_sandbox_mib_freed_on_kill": round(freed / 1024, 1),
    }
    # Both deltas measure the same thing; other processes on the machine move MemAvailable meanwhile.
    per_sandbox_kib = (drop + freed) / 2
    if per_sandbox_kib > 0:
        out["per_sandbox_mib"] = round(per_sandbox_kib / 1024, 1)
        out["fit_estimate"] = int(before / per_sandbox_kib)
        out["fit_basis"] = (
            f"MemAvailable before the sandboxes ({before / 1024 / 1024:.1f} GiB) / "
            f"{per_sandbox_kib / 1024:.1f} MiB per idle sandbox (mean of the MemAvailable drop with {n} idle "
            "and its rise when they were killed)"
        )
    processes = out.get("processes_per_sandbox") or 1
    pid_max = read_int(Path("/proc/sys/kernel/pid_max")) or 32768
    out["other_ceilings"] = {
        "pid_max / processes per idle sandbox": int(pid_max / processes),
        "addresses in the subnet (/31 each)": ipaddress.ip_network(SUBNET).num_addresses // 2 - 1,
    }
    if fit_verify > 0:
        out["verify"] = verify_fit(stack, fit_verify, parallel)
    out["failures"] = len(errors)
    out["errors"] = errors[:5]
    return out


def kill_many_sync(stack: Stack, ids: list[str], parallel: int) -> list[str]:
    return asyncio.run(kill_many(stack, ids, parallel))


async def all_answer(stack: Stack, ids: list[str], parallel: int) -> tuple[int, list[str]]:
    """How many of the sandboxes ``ids`` run a command, once all of them have started; and the errors."""

    async def answers(sandbox_id: str) -> None:
        sandbox = await AsyncSandbox.connect(sandbox_id, **stack.opts)
        if (await sandbox.commands.run("echo still")).stdout != "still\n":
            raise RuntimeError(f"{sandbox_id} gave an unexpected answer")

    outcomes = await bounded([functools.partial(answers, i) for i in ids], parallel)
    errors = [short_error(x) for x in outcomes if isinstance(x, BaseException)]
    return len(ids) - len(errors), errors


def verify_fit(stack: Stack, total: int, parallel: int) -> dict[str, Any]:
    """Start ``total`` idle sandboxes at once (in batches, stopping at the first failure), have each run a
    command once all have started, wait for the kernel to merge their envds' pages (where the host merges
    them), then kill them."""
    stack.wait_pool()
    time.sleep(3)
    before = mem_available_kib()
    started, errors = 0, []
    t0 = time.perf_counter()
    while started < total and not errors:
        ids, errors = asyncio.run(start_idle(stack, min(parallel * 4, total - started), parallel))
        started += len(ids)
        if meminfo_kib()["MemAvailable"] < 2 * 1024 * 1024:  # leave 2 GiB to the rest of the machine
            errors.append("stopped: less than 2 GiB MemAvailable left")
    seconds = time.perf_counter() - t0
    stack.wait_pool()
    time.sleep(5)
    during = mem_available_kib()
    running = len(stack.live)
    answering, silent = asyncio.run(all_answer(stack, list(stack.live), parallel))
    errors += silent
    merging = settle_merging(timeout_s=600)
    merged = mem_available_kib() if merging and running else None
    t1 = time.perf_counter()
    errors += kill_many_sync(stack, list(stack.live), parallel)
    if merged is not None:
        merging["per_sandbox_mib_merged"] = round((before - merged) / 1024 / running, 1)
    return merging | {
        "idle_sandboxes_running": running,
        "answering_once_all_started": answering,
        "start_s": round(seconds, 1),
        "kill_all_s": round(time.perf_counter() - t1, 1),
        "mem_available_before_mib": round(before / 1024),
        "mem_available_with_idle_mib": round(during / 1024),
        "per_sandbox_mib_mem_available": round((before - during) / 1024 / running, 1) if running else None,
        "errors": errors[:5],
    }


# -- podman for comparison ----------------------------------------------------------------------------------


def ensure_podman() -> list[str]:
    """Install podman and runc with apt if missing; returns what was done."""
    missing = [name for name in ("podman", "runc") if shutil.which(name) is None]
    if not missing:
        return []
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "--no-install-recommends", *missing]
    if subprocess.run(install, env=env, capture_output=True, check=False).returncode != 0:
        subprocess.run(["apt-get", "update"], env=env, capture_output=True, check=False)
        done = subprocess.run(install, env=env, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"apt-get install {' '.join(missing)} failed: {done.stderr.strip()[-300:]}")
    return [f"apt-get install {' '.join(missing)}"]


def podman_base(storage: Path) -> list[str]:
    return [
        "podman",
        "--root", str(storage),
        "--runroot", str(PODMAN_RUNROOT),
        "--storage-driver", "overlay",
        "--runtime", "runc",  # podman's crun refuses this host's hybrid cgroup layout
        "--cgroup-manager", "cgroupfs",
        "--events-backend", "none",
    ]  # fmt: skip


def podman_bench(storage: Path, workdir: Path, runs: int) -> dict[str, Any]:
    """``podman run --rm IMAGE true`` with the base template (built first, if the cache has none) imported as
    IMAGE."""
    out: dict[str, Any] = {"installed": ensure_podman()}
    rootfs = base_template.build(CACHE_DIR, log=lambda line: print(line, file=sys.stderr))
    image = f"localhost/hutch-bench-base:{int(rootfs.stat().st_mtime)}"
    base = podman_base(storage)
    exists = subprocess.run([*base, "image", "exists", image], capture_output=True, check=False)
    if exists.returncode != 0:
        tarball = workdir / "base-rootfs.tar"
        t0 = time.perf_counter()
        subprocess.run(["tar", "-C", str(rootfs), "-cf", str(tarball), "."], check=True, capture_output=True)
        subprocess.run([*base, "import", "--quiet", str(tarball), image], check=True, capture_output=True)
        tarball.unlink()
        out["import_s"] = round(time.perf_counter() - t0, 1)
    command = [
        *base,
        "run", "--rm", "--network", "none",
        # the default rlimits podman asks for exceed this host's hard limits (nofile 20000, nproc 32768)
        "--ulimit", "nofile=16384:16384", "--ulimit", "nproc=16384:16384",
        image, "true",
    ]  # fmt: skip
    out["command"] = " ".join(command)
    samples = []
    for i in range(2 + runs):
        t0 = time.perf_counter()
        done = subprocess.run(command, capture_output=True, text=True, timeout=PODMAN_TIMEOUT_S, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"podman run failed ({done.returncode}): {done.stderr.strip()[-300:]}")
        if i >= 2:
            samples.append((time.perf_counter() - t0) * 1000)
    out["run_true"] = summary(samples)
    return out


def podman_cleanup(storage: Path) -> None:
    """Remove containers an interrupted run may have left in the bench's own podman storage."""
    if shutil.which("podman") and storage.exists():
        subprocess.run([*podman_base(storage), "rm", "--all", "--force"], capture_output=True, check=False)


# -- the report ---------------------------------------------------------------------------------------------


def fmt_ms(value: float | None) -> str:
    return "—" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:,.1f}"


def load_note(entry: dict[str, Any]) -> str:
    return f"load {entry['load_before'][0]:.1f}→{entry['load_after'][0]:.1f}"


def render(results: dict[str, Any]) -> str:
    rows: list[tuple[str, str, str, str, str, str]] = []

    def stat_row(label: str, s: dict[str, Any], note: str) -> None:
        cells = [fmt_ms(s.get(key)) for key in ("p50_ms", "p95_ms", "p99_ms")]
        rows.append((label, str(s.get("n", 0)), cells[0], cells[1], cells[2], note))

    p = results["phases"]
    for key, label in (("warm", "warm pool"), ("cold", "cold (no pool)")):
        entry = p.get(key)
        if not entry:
            continue
        if "error" in entry and "create_to_first_echo" not in entry:
            rows.append((f"create → first echo, {label}", "", "", "", "", f"failed: {entry['error']}"))
            continue
        create, first = entry["create"], entry["first_echo"]
        second = entry["second_echo"]
        note = (
            f"create {fmt_ms(create.get('p50_ms'))} + echo {fmt_ms(first.get('p50_ms'))} "
            f"(2nd echo {fmt_ms(second.get('p50_ms'))}; p50)"
        )
        if entry.get("failures"):
            note += f"; {entry['failures']} failed"
        stat_row(
            f"create → first echo, {label}", entry["create_to_first_echo"], f"{note}; {load_note(entry)}"
        )
        split = entry.get("cold_split")
        if split:
            a, b = split["request_to_container_created"], split["container_created_to_create_returned"]
            stat_row("  request → crun created container", a, "API, overlay, netns, config, crun create")
            stat_row("  container created → create returns", b, "envd start + /health, /init, reply")
    entry = p.get("envd_start")
    if entry and "envd_to_health" in entry:
        stat_row("  envd spawn → /health, in a sandbox", entry["envd_to_health"], "a second envd, by hand")
        stat_row("  python3 -I -c pass, in a sandbox", entry["python3_pass"], "interpreter start alone")
    if results.get("kill", {}).get("n"):
        stat_row("Sandbox.kill", results["kill"], "serial, the sandboxes of the two rows above")
    for key in ("burst_warm", "burst_cold"):
        entry = p.get(key)
        if not entry:
            continue
        label = f"{entry.get('concurrency', '?')} concurrent creates, " + (
            f"pool {results['warm_pool']}" if key == "burst_warm" else "no pool"
        )
        if "latency" not in entry:
            rows.append((label, "", "", "", "", f"failed: {entry.get('error')}"))
            continue
        note = f"wall {entry['wall_s']} s, kill all {entry['kill_all_wall_s']} s"
        if entry["failures"]:
            note += f", {entry['failures']} failed"
        stat_row(label, entry["latency"], f"{note}; {load_note(entry)}")
    entry = p.get("sustained")
    if entry and "cycle" in entry:
        note = (
            f"{entry['creates_per_s']} creates/s over {entry['duration_s']} s, {entry['workers']} workers, "
            f"{entry['failures']} failed; {load_note(entry)}"
        )
        stat_row("sustained create+echo+kill cycle", entry["cycle"], note)
    entry = p.get("podman")
    if entry and "run_true" in entry:
        ratio = ""
        warm = p.get("warm", {}).get("create_to_first_echo", {}).get("p50_ms")
        cold = p.get("cold", {}).get("create_to_first_echo", {}).get("p50_ms")
        podman = entry["run_true"]["p50_ms"]
        if warm:
            ratio = f"{podman / warm:.1f}x Hutch warm p50"
        if cold:
            ratio += f", {podman / cold:.1f}x cold p50"
        stat_row("podman run --rm IMAGE true (runc)", entry["run_true"], f"{ratio}; {load_note(entry)}")
    header = ("", "n", "p50 ms", "p95 ms", "p99 ms", "")
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(5)]
    lines = [
        f"Sandbox lifecycle — {results['machine']['cpus']} vCPU, {results['machine']['mem_total_gib']} GiB, "
        f"load {results['load_start'][0]:.2f} at start, {results['load_end'][0]:.2f} at end",
        "",
    ]
    for row in [header, *rows]:
        cells = [row[0].ljust(widths[0]), *(row[i].rjust(widths[i]) for i in range(1, 5))]
        lines.append("  ".join(cells) + "  " + row[5])
    entry = p.get("memory")
    if entry:
        lines.append("")
        if "per_sandbox_mib_mem_available" not in entry:
            lines.append(f"memory per idle sandbox: failed: {entry.get('error')}")
        else:
            lines += [
                f"memory per idle sandbox ({entry['started']} idle, {load_note(entry)}):",
                f"  MemAvailable: drop {entry['per_sandbox_mib_mem_available']} MiB each while they run, "
                f"rise {entry['per_sandbox_mib_freed_on_kill']} MiB each when killed "
                f"(all {entry['started']} killed in {entry['kill_all_s']} s)",
                f"  envd Private_Dirty {entry['envd_private_dirty_mib']} MiB, "
                f"envd Pss {entry['envd_pss_mib']} MiB, merged {entry.get('envd_merged_mib')} MiB, "
                f"processes {entry['processes_per_sandbox']}",
                f"  memory cgroup: usage {entry['cgroup_usage_mib']} MiB "
                f"(kernel part {entry['cgroup_kmem_mib']} MiB)",
                f"  fit estimate: {entry.get('fit_estimate')} idle sandboxes — {entry.get('fit_basis')}",
                "  other ceilings: "
                + ", ".join(f"{k}: {v}" for k, v in entry.get("other_ceilings", {}).items()),
            ]
            if "merge_wait_s" in entry:
                lines.append(
                    f"  before the kernel merged envd's pages: {entry['per_sandbox_mib_before_merging']} MiB "
                    f"each; {entry['merge_passes']} passes of ksmd in {entry['merge_wait_s']} s, scanning "
                    f"{MERGE_SCAN_PAGES} pages every 20 ms ({entry['ksmd_cpu_percent_while_waiting']}% of a "
                    "core)"
                )
            if "verify" in entry:
                v = entry["verify"]
                lines.append(
                    f"  verified: {v['idle_sandboxes_running']} idle sandboxes running at once, "
                    f"{v['answering_once_all_started']} answering a command once all had started "
                    f"(started in {v['start_s']} s, killed in {v['kill_all_s']} s), MemAvailable "
                    f"{v['mem_available_before_mib']} → {v['mem_available_with_idle_mib']} MiB = "
                    f"{v['per_sandbox_mib_mem_available']} MiB each"
                    + (
                        f", {v['per_sandbox_mib_merged']} MiB each once merged "
                        f"({v['merge_passes']} passes of ksmd in {v['merge_wait_s']} s)"
                        if "per_sandbox_mib_merged" in v
                        else ""
                    )
                    + (f"; stopped by: {v['errors'][0]}" if v["errors"] else "")
                )
    errors = [(name, e["error"]) for name, e in p.items() if isinstance(e, dict) and "error" in e]
    if errors:
        lines.append("")
        lines += [f"failed: {name}: {error}" for name, error in errors]
    return "\n".join(lines)


# -- main ---------------------------------------------------------------------------------------------------


def _interrupt(signum: int, frame: object) -> None:
    # The SDK calls cancelled by the interrupt would each be logged while asyncio.run shuts down.
    logging.getLogger("asyncio").setLevel(logging.CRITICAL)
    raise KeyboardInterrupt(f"signal {signum}")


def machine() -> dict[str, Any]:
    debian = Path("/etc/debian_version")
    return {
        "cpus": os.cpu_count(),
        "mem_total_gib": round(meminfo_kib()["MemTotal"] / 1024 / 1024, 1),
        "kernel": platform.release(),
        "debian": debian.read_text().strip() if debian.exists() else None,
        "python": platform.python_version(),
    }


def main() -> None:
    global SUBNET
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer runs and shorter phases (< 3 min)")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    parser.add_argument("--save", type=Path, help="also write the results as JSON to this file")
    parser.add_argument("--warm-runs", type=int, help="serial creates from the warm pool (100; quick 20)")
    parser.add_argument("--cold-runs", type=int, help="serial creates without a pool (50; quick 10)")
    parser.add_argument("--warm-pool", type=int, default=4, help="warm pool size of the first stack")
    parser.add_argument("--burst", type=int, default=50, help="concurrent creates")
    parser.add_argument("--sustained-s", type=float, help="sustained phase duration (60; quick 15)")
    parser.add_argument("--sustained-workers", type=int, default=4, help="concurrent create loops")
    parser.add_argument("--idle", type=int, help="idle sandboxes for the memory phase (50; quick 20)")
    parser.add_argument("--fit-verify", type=int, default=0, help="start this many idle sandboxes at once")
    parser.add_argument("--podman-runs", type=int, help="podman run --rm runs (20; quick 5)")
    parser.add_argument("--podman-root", type=Path, default=Path("/var/cache/hutch-bench/podman"))
    parser.add_argument(
        "--skip",
        default="",
        help="comma-separated phases to skip: warm,cold,envd,burst,sustained,memory,podman",
    )
    parser.add_argument("--keep", action="store_true", help="keep the stacks' data directories and logs")
    parser.add_argument(
        "--subnet", default=SUBNET, help=f"the stacks' sandbox subnet ({SUBNET}; another bench needs another)"
    )
    args = parser.parse_args()
    SUBNET = args.subnet
    quick = args.quick
    warm_runs = args.warm_runs if args.warm_runs is not None else (20 if quick else 100)
    cold_runs = args.cold_runs if args.cold_runs is not None else (10 if quick else 50)
    sustained_s = args.sustained_s if args.sustained_s is not None else (15.0 if quick else 60.0)
    idle = args.idle if args.idle is not None else (20 if quick else 50)
    podman_runs = args.podman_runs if args.podman_runs is not None else (5 if quick else 20)
    skip = {s.strip() for s in args.skip.split(",") if s.strip()}
    if os.geteuid() != 0:
        sys.exit("run as root: the stack mounts overlays, creates network namespaces and runs crun")
    for key in [k for k in os.environ if k.startswith("E2B_")]:
        del os.environ[key]  # e.g. E2B_DEBUG would make the SDK skip real creates

    def say(text: str) -> None:
        print(text, file=sys.stderr if args.json else sys.stdout, flush=True)

    # KeyboardInterrupt wherever the script is, also inside an event loop (asyncio.run would only cancel
    # the main task, which the SDK's calls may absorb); the finally below then kills and stops everything.
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        if signal.getsignal(sig) is not signal.SIG_IGN:
            signal.signal(sig, _interrupt)
    root = Path(tempfile.mkdtemp(prefix="hutch-create-bench-"))
    say(f"working directory {root}")
    results: dict[str, Any] = {
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "machine": machine(),
        "load_start": load_average(),
        "warm_pool": args.warm_pool,
        "phases": {},
    }
    phases: dict[str, Any] = results["phases"]
    stacks: list[Stack] = []
    try:
        if "podman" not in skip:
            with phase(phases, "podman", say) as entry:
                args.podman_root.mkdir(parents=True, exist_ok=True)
                entry |= podman_bench(args.podman_root, root, podman_runs)
        warm = Stack("warm", root, args.warm_pool)
        stacks.append(warm)
        say(f"starting a stack with a warm pool of {args.warm_pool} (log {warm.log_path})")
        warm.start()
        if "warm" not in skip:
            with phase(phases, "warm", say) as entry:
                entry |= serial_creates(warm, warm_runs, 3, warm=True, pause_s=0)
        if "envd" not in skip:
            with phase(phases, "envd_start", say) as entry:
                warm.wait_pool()
                entry |= envd_start(warm, 5 if quick else 20)
        if "burst" not in skip:
            with phase(phases, "burst_warm", say) as entry:
                warm.wait_pool()
                entry |= asyncio.run(burst(warm, args.burst))
        if "sustained" not in skip:
            with phase(phases, "sustained", say) as entry:
                warm.wait_pool()
                entry |= asyncio.run(sustained(warm, sustained_s, args.sustained_workers))
        if "memory" not in skip:
            with phase(phases, "memory", say) as entry:
                entry |= idle_memory(warm, idle, args.fit_verify, parallel=8)
        say("stopping the warm-pool stack")
        warm.stop()
        if not {"cold", "burst"} <= skip:
            cold = Stack("cold", root, 0)
            stacks.append(cold)
            say(f"starting a stack without a warm pool (log {cold.log_path})")
            cold.start()
            if "cold" not in skip:
                with phase(phases, "cold", say) as entry:
                    entry |= serial_creates(cold, cold_runs, 2, warm=False, pause_s=0.3)
            if "burst" not in skip:
                with phase(phases, "burst_cold", say) as entry:
                    time.sleep(2)
                    entry |= asyncio.run(burst(cold, args.burst))
            say("stopping the stack without a pool")
            cold.stop()
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, signal.SIG_IGN)  # let the cleanup finish
        for stack in stacks:
            try:
                stack.stop()
            except Exception as err:
                print(f"warning: stopping the {stack.name} stack: {short_error(err)}", file=sys.stderr)
        podman_cleanup(args.podman_root)
        clean = all(s.stopped_cleanly for s in stacks)
        mounted = str(root) in Path("/proc/self/mountinfo").read_text()
        if args.keep or not clean or mounted:
            print(f"kept {root}", file=sys.stderr)
        else:
            shutil.rmtree(root, ignore_errors=True)
    results["load_end"] = load_average()
    kills = [k for name in ("warm", "cold") for k in phases.get(name, {}).pop("kill_samples_ms", [])]
    results["kill"] = summary(kills)
    if args.save:
        args.save.write_text(json.dumps(results, indent=2) + "\n")
    if args.json:
        print(json.dumps(results, indent=2))
    else:
        print()
        print(render(results))


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        sys.exit("interrupted; the sandboxes and stacks were stopped")
