"""How fast the dashboard's pages load with many sandboxes: ``.venv/bin/python bench/dashboard_bench.py
[--sandboxes 500] [--runs 10] [--json]``.

A stack of its own (subnet 10.13.0.0/16 or ``--subnet``) starts ``--sandboxes`` idle sandboxes; then headless
Chromium (Playwright, Debian's Chromium) logs in and loads each page ``--runs`` times, from navigation until
the page shows its data: the sandbox list until every sandbox's row is drawn, the other pages until their
table is. It also times the list's own call (``GET /dashboard/api/sandboxes``) and the REST list it
replaces for a page of 100. Every sandbox is killed and the stack stopped at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import create_bench as bench
import httpx
from playwright.sync_api import Page, sync_playwright

# Each page, and what shows that it has its data.
PAGES = {
    "templates": "tr[data-template]",
    "keys": "tr[data-key]",
    "usage": "tr[data-day]",
}
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update"]


def _load_ms(page: Page, url: str, ready: str, data: list[float] | None = None) -> float:
    """From navigation until ``ready`` (a JavaScript condition) holds, as the page measures it; appends
    to ``data`` when the answer of the page's data call (``/dashboard/api/``) had arrived."""
    page.goto("about:blank")
    page.goto(url, wait_until="commit")
    page.wait_for_function(ready, timeout=60_000, polling="raf")
    shown = page.evaluate("performance.now()")
    if data is not None:
        arrived = page.evaluate(
            "Math.max(...performance.getEntriesByType('resource')"
            ".filter((entry) => entry.name.includes('/dashboard/api/')).map((entry) => entry.responseEnd))"
        )
        data.append(arrived)
    return shown


def pages(stack: bench.Stack, sandboxes: int, runs: int) -> dict[str, Any]:
    base = f"http://localhost:{stack.api_port}/dashboard"
    out: dict[str, Any] = {}
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=shutil.which("chromium"), args=FLAGS)
        # The page's policy forbids evaluating strings, which is how the bench asks whether the data shows.
        page = browser.new_page(viewport={"width": 1400, "height": 900}, bypass_csp=True)
        page.goto(base)
        page.fill("#api-key", stack.api_key)
        page.click("button[type=submit]")
        page.wait_for_selector("[data-testid=team]")
        listed = f"document.querySelectorAll('[data-sandbox]').length >= {sandboxes}"
        arrived: list[float] = []
        out["sandboxes"] = bench.summary(
            [_load_ms(page, f"{base}#/sandboxes", listed, arrived) for _ in range(runs)]
        )
        out["sandboxes_data_arrived"] = bench.summary(arrived)
        for name, selector in PAGES.items():
            shown = f"document.querySelector({json.dumps(selector)}) !== null"
            out[name] = bench.summary([_load_ms(page, f"{base}#/{name}", shown) for _ in range(runs)])
        browser.close()
    return out


def calls(stack: bench.Stack, runs: int) -> dict[str, Any]:
    headers = {"X-API-Key": stack.api_key}
    timed: dict[str, list[float]] = {"dashboard_list": [], "rest_v2_page_of_100": []}
    with httpx.Client(base_url=f"http://localhost:{stack.api_port}", headers=headers, timeout=60) as client:
        for _ in range(runs):
            for name, path in (
                ("dashboard_list", "/dashboard/api/sandboxes"),
                ("rest_v2_page_of_100", "/v2/sandboxes?limit=100"),
            ):
                started = time.perf_counter()
                client.get(path).raise_for_status()
                timed[name].append((time.perf_counter() - started) * 1000)
    return {name: bench.summary(samples) for name, samples in timed.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sandboxes", type=int, default=500, help="idle sandboxes listed (500)")
    parser.add_argument("--runs", type=int, default=10, help="loads of each page (10)")
    parser.add_argument("--parallel", type=int, default=16, help="creates at once while starting them")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    parser.add_argument("--subnet", default=bench.SUBNET, help=f"the stack's sandbox subnet ({bench.SUBNET})")
    args = parser.parse_args()
    bench.SUBNET = args.subnet
    if os.geteuid() != 0:
        sys.exit("run as root: the stack mounts overlays, creates network namespaces and runs crun")
    for key in [k for k in os.environ if k.startswith("E2B_")]:
        del os.environ[key]

    def say(text: str) -> None:
        print(text, file=sys.stderr if args.json else sys.stdout, flush=True)

    root = Path(tempfile.mkdtemp(prefix="hutch-dashboard-bench-"))
    stack = bench.Stack("dashboard", root, warm_pool=4)
    results: dict[str, Any] = {
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "machine": bench.machine(),
    }
    try:
        stack.start()
        started = time.perf_counter()
        ids, errors = asyncio.run(bench.start_idle(stack, args.sandboxes, args.parallel))
        if errors:
            raise RuntimeError(f"{len(errors)} sandboxes did not start: {errors[:3]}")
        results["start_s"] = round(time.perf_counter() - started, 1)
        say(f"{len(ids)} idle sandboxes in {results['start_s']} s")
        stack.wait_pool()
        results["load_during"] = bench.load_average()
        results["pages_ms"] = pages(stack, len(ids), args.runs)
        results["calls_ms"] = calls(stack, args.runs)
    finally:
        bench.kill_many_sync(stack, sorted(stack.live), args.parallel)
        stack.stop()
        shutil.rmtree(root, ignore_errors=True)
    if args.json:
        print(json.dumps(results, indent=2))
        return
    say(f"\n{args.sandboxes} sandboxes listed; p50 / p95 / max ms over {args.runs} loads")
    for name, summary in {**results["pages_ms"], **results["calls_ms"]}.items():
        say(f"  {name:24} {summary['p50_ms']:8.1f} {summary['p95_ms']:8.1f} {summary['max_ms']:8.1f}")


if __name__ == "__main__":
    main()
