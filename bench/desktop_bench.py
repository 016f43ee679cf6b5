"""Benchmark desktop sandboxes through the official ``e2b_desktop`` SDK, unmodified.

Starts Hutch stacks of its own (``hutch up --detach``, temporary data, free ports, subnet 10.21.0.0/16, no
code interpreter), one with ``--pool`` warm ``desktop`` sandboxes (warm) and one without (cold), and
measures:

* ``Sandbox.create()`` (the sandbox, then the SDK's own start of Xvfb and Xfce), ``--creates`` times each,
  with the pool refilled between creates; create → first ``screenshot()`` returned; create → the desktop
  drawn (Xfce's panel and desktop windows mapped, which a screenshot then shows);
* in one desktop: a ``screenshot()`` round trip, and the input calls' round trips (``move_mouse``,
  ``left_click``, ``press``, ``write`` of one character);
* memory per idle desktop sandbox (cold stack, so no pool refills): the drop of the host's
  ``MemAvailable`` with ``--idle`` desktops drawn and settled, divided by their number.

``python bench/desktop_bench.py [--creates N] [--pool N] [--idle N] [--json]``
"""

from __future__ import annotations

import argparse
import time

from e2b_desktop import Sandbox
from measure import own_stack, report, summary, timed

SUBNET = "10.21.0.0/16"
# Until Xfce's desktop and panel are mapped (``xdotool search`` fails when a window goes away as it looks,
# which happens while Xfce starts: it looks again).
DRAWN = " && ".join(
    f"until xdotool search --onlyvisible --class {name} >/dev/null 2>&1; do sleep 0.01; done"
    for name in ("xfdesktop", "xfce4-panel")
)


def mem_available_kib() -> int:
    with open("/proc/meminfo") as meminfo:
        for line in meminfo:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1])
    raise RuntimeError("no MemAvailable in /proc/meminfo")


def creates(opts: dict, count: int, seen: set[str], kind: str) -> dict:
    created_ms, screenshot_ms, drawn_ms = [], [], []
    for _ in range(count):
        time.sleep(2)  # the pool refills
        began = time.perf_counter()
        desktop = Sandbox.create(**opts)
        created_ms.append((time.perf_counter() - began) * 1000)
        seen.add(desktop.sandbox_id)
        desktop.screenshot()
        screenshot_ms.append((time.perf_counter() - began) * 1000)
        desktop.commands.run(DRAWN, timeout=30)
        drawn_ms.append((time.perf_counter() - began) * 1000)
        desktop.kill()
    return {
        f"{kind}: create() returns, ms": summary(created_ms, 0),
        f"{kind}: create -> first screenshot returned, ms": summary(screenshot_ms, 0),
        f"{kind}: create -> desktop drawn, ms": summary(drawn_ms, 0),
    }


def round_trips(opts: dict, seen: set[str]) -> dict:
    desktop = Sandbox.create(**opts)
    seen.add(desktop.sandbox_id)
    try:
        desktop.commands.run(DRAWN, timeout=30)
        positions = iter(range(10_000))
        return {
            "screenshot(), ms": timed(desktop.screenshot, 30),
            "move_mouse(), ms": timed(lambda: desktop.move_mouse(100 + next(positions) % 500, 300), 50),
            "left_click(), ms": timed(desktop.left_click, 50),
            "press('shift'), ms": timed(lambda: desktop.press("shift"), 50),
            "write('a'), ms": timed(lambda: desktop.write("a", delay_in_ms=0), 30),
        }
    finally:
        desktop.kill()


def idle_memory(opts: dict, count: int, seen: set[str]) -> dict:
    time.sleep(5)  # the stack is quiet
    before = mem_available_kib()
    desktops = [Sandbox.create(**opts) for _ in range(count)]
    try:
        for desktop in desktops:
            seen.add(desktop.sandbox_id)
            desktop.commands.run(DRAWN, timeout=30)
        time.sleep(10)
        after = mem_available_kib()
    finally:
        for desktop in desktops:
            desktop.kill()
    return {"MemAvailable drop per idle desktop, MiB": round((before - after) / count / 1024, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--creates", type=int, default=10)
    parser.add_argument("--pool", type=int, default=2)
    parser.add_argument("--idle", type=int, default=4)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    seen: set[str] = set()
    results: dict = {"pool": args.pool}
    for pool, kind in ((args.pool, "warm"), (0, "cold")):
        settings = {
            "HUTCH_RUNTIME__WARM_POOL": {"base": 0, "desktop": pool},
            "HUTCH_TEMPLATES__CODE_INTERPRETER": "false",
        }
        with own_stack(SUBNET, settings, seen) as opts:
            results.update(creates(opts, args.creates, seen, kind))
            if pool:
                results.update(round_trips(opts, seen))
            else:
                results.update(idle_memory(opts, args.idle, seen))
    report("desktop sandboxes (e2b_desktop)", results, as_json=args.json, width=44)


if __name__ == "__main__":
    main()
