"""Chaos benchmark: create/kill cycles through the official SDK while parts of the stack are killed with
SIGKILL at random moments; then 100 running sandboxes through one more kill of each kind.

Each kill picks one of three kinds at random:

* ``stack``: the whole stack at once (the main process and the proxy), then ``hutch up`` again;
* ``proxy``: only the proxy process; ``hutch up`` starts it again by itself, and the API must not notice;
* ``main``: only the main process (API and runtime); the proxy must die with it, then ``hutch up`` again.

It counts what must stay zero: sandboxes lost (a running sandbox that is not listed or does not answer after
a kill), proxies that outlived their main process, and what is left behind at the end (mounts, network
namespaces, veths, cgroups, processes, directories). It starts its own stack (``hutch up --detach``, data
under a temp directory, free ports, subnet 10.14.0.0/16 unless ``--subnet``) and stops it at the end. Run as
root: ``python bench/chaos_bench.py [--cycles 1000]``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
from e2b import Sandbox
from leftovers import leftovers
from measure import free_port

SUBNET = "10.14.0.0/16"
HUTCH = str(Path(sys.executable).with_name("hutch"))
KINDS = ("stack", "proxy", "main")
# How long a proxy may take to come back (killed alone) or to go (its main process killed).
PROXY_DEADLINE_S = 5


class Stack:
    """A detached ``hutch up`` whose parts can be killed, and which can be restarted on the same data and
    ports."""

    def __init__(self, base: Path, subnet: str) -> None:
        self.base = base
        self.env_file = base / "env.local"
        self.env = {
            **os.environ,
            "HUTCH_DATA_DIR": str(base / "data"),
            "HUTCH_API__PORT": str(free_port()),
            "HUTCH_PROXY__PORT": str(free_port()),
            "HUTCH_RUNTIME__SUBNET": subnet,
            "HUTCH_RUNTIME__WARM_POOL": json.dumps({"base": 4}),
            "HUTCH_RUNTIME__EGRESS_INTERFACE": "off",
            # The plain-HTTP paths only: no TLS edge on 443, nothing added to the host's trust store.
            "HUTCH_PROXY__TLS_PORT": "0",
            "HUTCH_PROXY__TRUST_LOCAL_CA": "false",
        }
        self.opts: dict[str, str] = {}
        self.killed = (0, 0, 0.0)

    @property
    def pid(self) -> int:
        return int((self.base / "data" / "hutch.pid").read_text())

    @property
    def proxy_pid(self) -> int:
        return int((self.base / "data" / "proxy.pid").read_text())

    def up(self) -> float:
        start = time.perf_counter()
        subprocess.run(
            [HUTCH, "up", "--detach", "--env-file", str(self.env_file)], env=self.env, check=True,
            stdout=subprocess.DEVNULL,
        )  # fmt: skip
        values = dict(line.split("=", 1) for line in self.env_file.read_text().splitlines() if "=" in line)
        self.opts = {
            "api_key": values["E2B_API_KEY"],
            "api_url": values["E2B_API_URL"],
            "sandbox_url": values["E2B_SANDBOX_URL"],
        }
        return time.perf_counter() - start

    def kill(self, kind: str) -> None:
        """SIGKILL to the part ``kind`` names; :attr:`killed` remembers the pids and the moment."""
        pid, proxy = self.pid, self.proxy_pid
        self.killed = (pid, proxy, time.perf_counter())
        if kind in ("stack", "main"):
            os.killpg(pid, signal.SIGKILL)  # the proxy runs in a process group of its own
        if kind in ("stack", "proxy"):
            with contextlib.suppress(ProcessLookupError):
                os.kill(proxy, signal.SIGKILL)
        while kind != "proxy" and _running(pid):
            time.sleep(0.01)

    def proxy_serves(self) -> bool:
        """Whether the proxy answers (a request it answers itself: 400, no sandbox named)."""
        try:
            response = httpx.get(self.opts["sandbox_url"], headers={"host": "probe"}, timeout=1)
        except httpx.TransportError:
            return False
        return response.status_code == 400

    def down(self) -> None:
        subprocess.run([HUTCH, "down"], env=self.env, check=False, stdout=subprocess.DEVNULL)


def _running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except FileNotFoundError:
        return False
    return state not in ("Z", "X")


def _alive(stack: Stack, sandbox_id: str) -> bool:
    try:
        sandbox = Sandbox.connect(sandbox_id, **stack.opts)
        return sandbox.commands.run("echo ok", timeout=10).stdout.strip() == "ok"
    except Exception:
        return False


def _listed(stack: Stack) -> set[str]:
    paginator = Sandbox.list(**stack.opts)
    ids: set[str] = set()
    while paginator.has_next:
        ids.update(s.sandbox_id for s in paginator.next_items())
    return ids


def _recover(stack: Stack, kind: str, results: dict) -> None:
    """After a kill of ``kind``: wait for the proxy to come back (killed alone), or to go and then start
    ``hutch up`` again."""
    main, proxy, killed = stack.killed
    results["kills"][kind] += 1
    if kind == "proxy":
        # hutch up starts the proxy again by itself; its own process lives on.
        while not stack.proxy_serves():
            if time.perf_counter() - killed > PROXY_DEADLINE_S:
                results["problems"].append(f"the proxy was not back {PROXY_DEADLINE_S} s after a kill")
                break
            time.sleep(0.01)
        results["back_s"]["proxy"].append(round(time.perf_counter() - killed, 2))
        if not _running(main):
            results["problems"].append("the main process died with the proxy")
        return
    while _running(proxy) and time.perf_counter() - killed < PROXY_DEADLINE_S:
        time.sleep(0.01)
    if _running(proxy):
        results["problems"].append(f"the proxy (pid {proxy}) outlived its main process")
        os.kill(proxy, signal.SIGKILL)
    results["back_s"][kind].append(round(stack.up(), 2))


def _check(stack: Stack, kept: set[str], results: dict, when: str) -> None:
    listed = _listed(stack)
    for sandbox_id in list(kept):
        if sandbox_id not in listed or not _alive(stack, sandbox_id):
            reason = "not listed" if sandbox_id not in listed else "does not answer"
            results["lost"].append(f"{sandbox_id} ({reason}, after {when})")
            kept.discard(sandbox_id)


def run(args: argparse.Namespace) -> dict:
    rng = random.Random(args.seed)
    base = Path(tempfile.mkdtemp(prefix="hutch-chaos-"))
    stack = Stack(base, args.subnet)
    seen: set[str] = set()
    kept: set[str] = set()
    results: dict = {
        "cycles": 0,
        "kills": dict.fromkeys(KINDS, 0),
        "errors_in_kill_windows": 0,
        "lost": [],
        "problems": [],
        # Until the stack serves again: hutch up's start (stack, main), the proxy's restart (proxy).
        "back_s": {kind: [] for kind in KINDS},
    }
    started = time.perf_counter()
    try:
        stack.up()
        for cycle in range(args.cycles):
            kind = rng.choice(KINDS) if rng.random() < 1 / args.crash_every else None
            timer = threading.Timer(rng.uniform(0, 0.05), stack.kill, (kind,)) if kind else None
            if timer:
                timer.start()
            try:
                sandbox = Sandbox.create(**stack.opts)
                seen.add(sandbox.sandbox_id)
                sandbox.commands.run("echo hi", timeout=10)
                if len(kept) < args.keep and cycle % 10 == 0:
                    kept.add(sandbox.sandbox_id)
                else:
                    sandbox.kill()
            except Exception:
                if not timer:
                    raise
                results["errors_in_kill_windows"] += 1
            if timer and kind:
                timer.join()
                _recover(stack, kind, results)
                _check(stack, kept, results, f"{kind} kill {sum(results['kills'].values())}")
            results["cycles"] += 1
        # 100 running sandboxes through one more kill of each kind.
        survivors = [Sandbox.create(**stack.opts) for _ in range(args.survivors)]
        seen.update(s.sandbox_id for s in survivors)
        kept.update(s.sandbox_id for s in survivors)
        for kind in KINDS:
            stack.kill(kind)
            _recover(stack, kind, results)
            _check(stack, kept, results, f"the {kind} kill of the survivors")
        results["survivors_working"] = sum(1 for s in survivors if s.sandbox_id in kept)
        for sandbox_id in kept:
            Sandbox.kill(sandbox_id, **stack.opts)
    finally:
        stack.down()
        results["seconds"] = round(time.perf_counter() - started, 1)
        results["leftovers"] = leftovers(base / "data", args.subnet, seen)
        if not args.keep_data:
            shutil.rmtree(base, ignore_errors=True)
    results["sandboxes"] = len(seen)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cycles", type=int, default=1000)
    parser.add_argument("--crash-every", type=float, default=50, help="mean cycles between kills")
    parser.add_argument("--keep", type=int, default=20, help="sandboxes kept running through the kills")
    parser.add_argument("--survivors", type=int, default=100)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--subnet", default=SUBNET, help="the stack's sandbox addresses")
    parser.add_argument("--keep-data", action="store_true")
    results = run(parser.parse_args())
    print(json.dumps(results, indent=2))
    if results["lost"] or results["problems"] or results["leftovers"]:
        sys.exit(1)


if __name__ == "__main__":
    main()
