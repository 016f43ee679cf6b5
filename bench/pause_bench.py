"""Benchmark pause and resume through the official SDK on a Hutch stack of its own.

For each engine (crun's ``container``, ``gvisor``) and each mode (``full``: with the memory; ``filesystem``),
in a sandbox running a small Python server that holds state in memory and 10 MiB of files:

* ``sandbox.pause()`` (median, p95), and what the paused sandbox keeps on disk (its checkpoint, for gVisor);
* resume (``Sandbox.connect``, which returns once the sandbox answers), and until a first command has
  answered, after ``--paused-for`` seconds paused (a resume sooner than ~1.2 s after a gVisor pause also
  waits for runsc to finish removing the stopped container);

then, per engine, a snapshot, a sandbox created from it (until its first command) and a fork into 5 (until
all 5 answer a command; on gVisor, copies keep the memory, and each is then asked for the server's token);
and ``--cycles`` pause/resume cycles in one sandbox (full pauses), each checked against the sandbox's files
(SHA-256) and its server's memory (a token made at its start, and a counter): the number of differences
must be 0.

``python bench/pause_bench.py [--runs 20] [--cycles 100] [--paused-for 2] [--only PART] [--json]``, where
``--only`` (repeatable) picks ``modes``, ``copies`` or ``cycles``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from e2b import Sandbox
from measure import own_stack, report, summary
from memory_server import ASK, start_server

SUBNET = "10.19.0.0/16"
PARTS = ["modes", "copies", "cycles"]
FILES = "head -c 10485760 /dev/urandom > /home/user/data.bin && sha256sum /home/user/data.bin"


def prepare(opts: dict, engine: str, seen: set[str]) -> tuple[Sandbox, str]:
    sandbox = Sandbox.create(metadata={"hutch.runtime": engine}, timeout=3600, **opts)
    seen.add(sandbox.sandbox_id)
    start_server(sandbox)
    digest = sandbox.commands.run(FILES).stdout.split()[0]
    sandbox.commands.run(ASK)
    return sandbox, digest


def size_on_disk(path: Path) -> int:
    return sum(entry.stat().st_blocks * 512 for entry in path.rglob("*") if entry.is_file())


def measure_mode(
    opts: dict, engine: str, mode: str, runs: int, paused_for: float, data_dir: Path, seen: set[str]
) -> dict:
    sandbox, _ = prepare(opts, engine, seen)
    pauses, connects, resumes, images = [], [], [], []
    for _ in range(runs):
        began = time.perf_counter()
        sandbox.pause(mode=mode)
        pauses.append((time.perf_counter() - began) * 1000)
        checkpoint = data_dir / "sandboxes" / sandbox.sandbox_id / "checkpoint"
        images.append(size_on_disk(checkpoint) if checkpoint.exists() else 0)
        time.sleep(paused_for)
        began = time.perf_counter()
        resumed = Sandbox.connect(sandbox.sandbox_id, **opts)
        connects.append((time.perf_counter() - began) * 1000)
        resumed.commands.run("true")
        resumes.append((time.perf_counter() - began) * 1000)
    sandbox.kill()
    return {
        "pause_ms": summary(pauses, 1),
        "resume_ms": summary(connects, 1),
        "resume_to_first_command_ms": summary(resumes, 1),
        "checkpoint_on_disk_mib": round(sorted(images)[len(images) // 2] / 2**20, 1),
    }


def copies(opts: dict, engine: str, runs: int, seen: set[str]) -> dict:
    """``create_snapshot()`` and a create from it until its first command; ``fork(count=5)`` until every
    fork has answered a command (sent to all 5 at once). A gVisor copy keeps the memory: once timed, each is
    asked for the token of the server that ran in the source."""
    sandbox, _ = prepare(opts, engine, seen)
    token = sandbox.commands.run(ASK).stdout.split()[0]
    snapshots, from_snapshot, forks, lost = [], [], [], 0
    for _ in range(runs):
        began = time.perf_counter()
        info = sandbox.create_snapshot()
        snapshots.append((time.perf_counter() - began) * 1000)
        began = time.perf_counter()
        child = Sandbox.create(info.snapshot_id, timeout=600, **opts)
        seen.add(child.sandbox_id)
        child.commands.run("true")
        from_snapshot.append((time.perf_counter() - began) * 1000)
        lost += engine == "gvisor" and not kept_memory(child, token)
        child.kill()
        Sandbox.delete_snapshot(info.snapshot_id, **opts)
        began = time.perf_counter()
        children = sandbox.fork(count=5, **opts)
        assert all(isinstance(child, Sandbox) for child in children), children
        seen.update(child.sandbox_id for child in children)
        with ThreadPoolExecutor(len(children)) as pool:  # each fork's first command, at once
            list(pool.map(lambda child: child.commands.run("true"), children))
        forks.append((time.perf_counter() - began) * 1000)
        lost += sum(engine == "gvisor" and not kept_memory(child, token) for child in children)
        for child in children:
            child.kill()
    sandbox.kill()
    return {
        "snapshot_ms": summary(snapshots, 1),
        "create_from_snapshot_to_first_command_ms": summary(from_snapshot, 1),
        "fork_into_5_ms": summary(forks, 1),
        "copies_without_the_memory": lost,
    }


def kept_memory(copy: Sandbox, token: str) -> bool:
    """Whether the source's server runs on in ``copy``, with the source's token (checked after timing)."""
    return copy.commands.run(ASK).stdout.split()[0] == token


def cycles(opts: dict, engine: str, count: int, seen: set[str]) -> dict:
    sandbox, digest = prepare(opts, engine, seen)
    token, counter = sandbox.commands.run(ASK).stdout.split()
    expected, differences = int(counter), 0
    began = time.perf_counter()
    for _ in range(count):
        sandbox.pause()
        resumed = Sandbox.connect(sandbox.sandbox_id, **opts)
        files = resumed.commands.run("sha256sum /home/user/data.bin").stdout.split()[0]
        now_token, now_counter = resumed.commands.run(ASK).stdout.split()
        expected += 1
        differences += (files != digest) + (now_token != token) + (int(now_counter) != expected)
    elapsed = time.perf_counter() - began
    sandbox.kill()
    return {"cycles": count, "differences": differences, "seconds": round(elapsed, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--cycles", type=int, default=100)
    parser.add_argument("--paused-for", type=float, default=2.0)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--only", choices=PARTS, action="append", help="measure only these parts")
    args = parser.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("run as root")
    base = Path(tempfile.mkdtemp(prefix="hutch-pause-bench-"))
    settings: dict[str, object] = {
        "HUTCH_RUNTIME__WARM_POOL": {"base": 2},
        "HUTCH_RUNTIME__GVISOR_WARM_POOL": {"base": 1},
        "HUTCH_TEMPLATES__CODE_INTERPRETER": "false",
    }
    seen: set[str] = set()
    results: dict[str, object] = {}
    try:
        with own_stack(SUBNET, settings, seen, base) as opts:
            parts = args.only or PARTS
            for engine in ("crun", "gvisor"):
                for mode in ("full", "filesystem") if "modes" in parts else ():
                    results[f"{engine} {mode}"] = measure_mode(
                        opts, engine, mode, args.runs, args.paused_for, base / "data", seen
                    )
                if "copies" in parts:
                    runs = max(3, args.runs // 4)
                    results[f"{engine} snapshot and fork"] = copies(opts, engine, runs, seen)
                if "cycles" in parts:
                    results[f"{engine} {args.cycles} full cycles"] = cycles(opts, engine, args.cycles, seen)
    finally:
        shutil.rmtree(base, ignore_errors=True)
    report("pause and resume", results, as_json=args.json)


if __name__ == "__main__":
    main()
