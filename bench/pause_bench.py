"""Benchmark pause and resume through the official SDK on a Hutch stack of its own.

For each engine (crun's ``container``, ``gvisor``) and each mode (``full``: with the memory; ``filesystem``),
in a sandbox running a small Python server that holds state in memory and 10 MiB of files:

* ``sandbox.pause()`` (median, p95), and what the paused sandbox keeps on disk (its checkpoint, for gVisor);
* resume (``Sandbox.connect``) until a first command has answered, after ``--paused-for`` seconds paused
  (a resume sooner than ~1.2 s after a gVisor pause also waits for runsc to finish removing the stopped
  container);

then, per engine, a snapshot, a sandbox created from it (until its first command) and a fork into 5 (until
all 5 answer a command; on gVisor, copies keep the memory, and each is asked for the server's token); and
``--cycles`` pause/resume cycles in one sandbox (full pauses), each checked against the sandbox's files
(SHA-256) and its server's memory (a token made at its start, and a counter): the number of differences
must be 0.

``python bench/pause_bench.py [--runs 20] [--cycles 100] [--paused-for 2] [--json]``
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path

from e2b import Sandbox
from measure import own_stack, report, summary

SUBNET = "10.19.0.0/16"
SERVER = """\
import http.server, secrets
token, count = secrets.token_hex(8), [0]
class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        count[0] += 1
        self.send_response(200)
        self.end_headers()
        self.wfile.write(f"{token} {count[0]}".encode())
    def log_message(self, *args):
        pass
http.server.HTTPServer(("127.0.0.1", 8000), Handler).serve_forever()
"""
ASK = "curl -s --retry 20 --retry-connrefused --retry-delay 0 --max-time 5 http://127.0.0.1:8000/"
FILES = "head -c 10485760 /dev/urandom > /home/user/data.bin && sha256sum /home/user/data.bin"


def prepare(opts: dict, engine: str, seen: set[str]) -> tuple[Sandbox, str]:
    sandbox = Sandbox.create(metadata={"hutch.runtime": engine}, timeout=3600, **opts)
    seen.add(sandbox.sandbox_id)
    sandbox.files.write("/home/user/server.py", SERVER)
    sandbox.commands.run("python3 /home/user/server.py", background=True, timeout=0)  # no time limit
    digest = sandbox.commands.run(FILES).stdout.split()[0]
    sandbox.commands.run(ASK)
    return sandbox, digest


def size_on_disk(path: Path) -> int:
    return sum(entry.stat().st_blocks * 512 for entry in path.rglob("*") if entry.is_file())


def measure_mode(
    opts: dict, engine: str, mode: str, runs: int, paused_for: float, data_dir: Path, seen: set[str]
) -> dict:
    sandbox, _ = prepare(opts, engine, seen)
    pauses, resumes, images = [], [], []
    for _ in range(runs):
        began = time.perf_counter()
        sandbox.pause(mode=mode)
        pauses.append((time.perf_counter() - began) * 1000)
        checkpoint = data_dir / "sandboxes" / sandbox.sandbox_id / "checkpoint"
        images.append(size_on_disk(checkpoint) if checkpoint.exists() else 0)
        time.sleep(paused_for)
        began = time.perf_counter()
        resumed = Sandbox.connect(sandbox.sandbox_id, **opts)
        resumed.commands.run("true")
        resumes.append((time.perf_counter() - began) * 1000)
    sandbox.kill()
    return {
        "pause_ms": summary(pauses, 1),
        "resume_to_first_command_ms": summary(resumes, 1),
        "checkpoint_on_disk_mib": round(sorted(images)[len(images) // 2] / 2**20, 1),
    }


def copies(opts: dict, engine: str, runs: int, seen: set[str]) -> dict:
    """``create_snapshot()`` and a create from it until its first command; ``fork(count=5)`` until every
    fork has answered a command. A gVisor copy keeps the memory: its first command is a question to the
    server that ran in the source, whose token must be the source's."""
    sandbox, _ = prepare(opts, engine, seen)
    token = sandbox.commands.run(ASK).stdout.split()[0]
    first = ASK if engine == "gvisor" else "true"
    snapshots, from_snapshot, forks, lost = [], [], [], 0
    for _ in range(runs):
        began = time.perf_counter()
        info = sandbox.create_snapshot()
        snapshots.append((time.perf_counter() - began) * 1000)
        began = time.perf_counter()
        child = Sandbox.create(info.snapshot_id, timeout=600, **opts)
        seen.add(child.sandbox_id)
        lost += engine == "gvisor" and child.commands.run(first).stdout.split()[0] != token
        from_snapshot.append((time.perf_counter() - began) * 1000)
        child.kill()
        Sandbox.delete_snapshot(info.snapshot_id, **opts)
        began = time.perf_counter()
        children = sandbox.fork(count=5, **opts)
        for child in children:
            assert isinstance(child, Sandbox), child
            seen.add(child.sandbox_id)
            lost += engine == "gvisor" and child.commands.run(first).stdout.split()[0] != token
        forks.append((time.perf_counter() - began) * 1000)
        for child in children:
            child.kill()
    sandbox.kill()
    return {
        "snapshot_ms": summary(snapshots, 1),
        "create_from_snapshot_to_first_command_ms": summary(from_snapshot, 1),
        "fork_into_5_ms": summary(forks, 1),
        "copies_without_the_memory": lost,
    }


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
            for engine in ("container", "gvisor"):
                for mode in ("full", "filesystem"):
                    results[f"{engine} {mode}"] = measure_mode(
                        opts, engine, mode, args.runs, args.paused_for, base / "data", seen
                    )
                results[f"{engine} snapshot and fork"] = copies(opts, engine, max(3, args.runs // 4), seen)
                results[f"{engine} {args.cycles} full cycles"] = cycles(opts, engine, args.cycles, seen)
    finally:
        shutil.rmtree(base, ignore_errors=True)
    report("pause and resume", results, as_json=args.json)


if __name__ == "__main__":
    main()
