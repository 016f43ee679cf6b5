"""Benchmark the code interpreter through the official ``e2b_code_interpreter`` SDK.

Measures what a user feels on a warm server:

* ``run_code("1+1")`` in the default context (median/p95), and the same request with plain httpx; the
  same in the bash, JavaScript, R and Java default contexts (each idle for ``IDLE_S`` after its first cell);
* a matplotlib figure round trip (plot, PNG back, decoded);
* 1,000 sequential small executions (total time and executions per second);
* ``create_code_context()`` (a new kernel until it answers), and removing it.

Point it at a running server with ``--url`` (a sandbox's 49999 port, or Hutch's proxy with
``--sandbox-id``/``--token``); without ``--url`` it starts ``python -m hutch.interpreter`` on loopback and
also reports the time from exec to the first answer of ``/health`` (the default kernel is up by then).
With ``--stack`` it starts a Hutch stack of its own (``hutch up --detach``, temporary data, free ports,
subnet 10.17.0.0/16, two warm ``code-interpreter-v1`` sandboxes), measures ``Sandbox.create()`` → first
``run_code("1+1")`` result in each language ``--creates`` times (the pool refilled between creates; Python
and JavaScript kernels start with the server, R and Java ones on their first cell), then all of the above
inside one sandbox through the proxy; then, in a stack without a pool, the same creates cold
(``--cold-creates`` times per language).

``python bench/interpreter_bench.py [--url URL | --stack] [--runs N] [--sequential N] [--json]``
"""

from __future__ import annotations

import argparse
import base64
import subprocess
import sys
import tempfile
import time

import httpx
from e2b import ConnectionConfig, SandboxException
from e2b_code_interpreter import Sandbox
from measure import free_port, own_stack, report, summary, timed
from packaging.version import Version

SUBNET = "10.17.0.0/16"
# How long a language's default context is left idle after its first cell, before its cells are timed: as
# between an agent's calls (the Java kernel compiles warm-up snippets meanwhile).
IDLE_S = 5.0
# What ``1+1`` shows in each language.
TWO = {"python": "2", "javascript": "2", "r": "[1] 2", "java": "2"}
PLOT = "import matplotlib.pyplot as plt\nplt.plot([1, 2, 3], [3, 1, 2])\nplt.show()"


def start_server() -> tuple[str, subprocess.Popen, float]:
    port = free_port()
    began = time.perf_counter()
    process = subprocess.Popen(
        [sys.executable, "-m", "hutch.interpreter", "--port", str(port), "--cwd", tempfile.mkdtemp()],
        stdin=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    while True:
        try:
            if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                break
        except httpx.TransportError:
            time.sleep(0.005)
        if process.poll() is not None:
            raise RuntimeError("the interpreter exited during start")
    return url, process, (time.perf_counter() - began) * 1000


def sandbox_for(
    url: str, sandbox_id: str, token: str | None, request_timeout: float | None = None
) -> Sandbox:
    """The official SDK's sandbox object, its calls going to the interpreter at ``url``."""
    headers = {"E2b-Sandbox-Id": sandbox_id}
    if token:
        headers["X-Access-Token"] = token
    config = {} if request_timeout is None else {"request_timeout": request_timeout}
    return Sandbox(
        sandbox_id=sandbox_id,
        sandbox_domain=None,
        envd_version=Version("0.9.1"),
        envd_access_token=token,
        connection_config=ConnectionConfig(
            sandbox_url=url, extra_sandbox_headers=headers, debug=True, **config
        ),
    )


def value(sandbox: Sandbox, code: str, language: str | None = None) -> str | None:
    """The value a cell shows: its result, or (R's kernel shows values as display data) its first result."""
    execution = sandbox.run_code(code, language=language)
    assert execution.error is None, execution.error
    return execution.text or (execution.results[0].text if execution.results else None)


def creates(opts: dict, count: int, language: str, *, pause_s: float) -> dict:
    """``Sandbox.create()`` → the first ``run_code("1+1", language=…)`` result, ``pause_s`` apart (a warm
    pool refills meanwhile)."""
    samples = []
    for _ in range(count):
        time.sleep(pause_s)
        started = time.perf_counter()
        sandbox = Sandbox.create(**opts)
        assert value(sandbox, "1+1", language) == TWO[language]
        samples.append((time.perf_counter() - started) * 1000)
        sandbox.kill()
    return summary(samples)


def measure(sandbox: Sandbox, url: str, runs: int, sequential: int) -> dict:
    results: dict = {}

    def one_plus_one() -> None:
        assert sandbox.run_code("1+1").text == "2"

    results["run_code(1+1)"] = timed(one_plus_one, runs)
    sandbox.run_code("true", language="bash")  # the language's default context, started lazily
    results["run_code(echo 2, language=bash)"] = timed(
        lambda: sandbox.run_code("echo 2", language="bash"), max(20, runs // 4)
    )
    for language in ("javascript", "r", "java"):
        try:
            value(sandbox, "1+1", language)
        except SandboxException as error:  # a server on a host without that language's kernel
            if "no kernel" not in str(error):
                raise
            continue
        time.sleep(IDLE_S)

        def add(language: str = language) -> None:
            assert value(sandbox, "1+1", language) == TWO[language]

        results[f"run_code(1+1, language={language})"] = timed(add, max(20, runs // 4))

    body = {"code": "1+1", "context_id": None, "language": None, "env_vars": None}
    headers = {**sandbox.connection_config.sandbox_headers, "E2b-Sandbox-Port": "49999"}
    with httpx.Client(headers=headers) as client:
        results["POST /execute 1+1 (httpx, keep-alive)"] = timed(
            lambda: client.post(f"{url}/execute", json=body).raise_for_status(), runs
        )

    def plot() -> None:
        [figure] = sandbox.run_code(PLOT).results
        assert base64.b64decode(figure.png).startswith(b"\x89PNG")

    results["matplotlib PNG round trip"] = timed(plot, max(10, runs // 5), warmup=2)

    started = time.perf_counter()
    for n in range(sequential):
        sandbox.run_code(f"n = {n}")
    total = time.perf_counter() - started
    results[f"{sequential} sequential executions"] = {
        "total_s": round(total, 2),
        "per_execution_ms": round(total * 1000 / sequential, 2),
        "executions_per_s": round(sequential / total),
    }

    created: list = []
    results["create_code_context()"] = timed(
        lambda: created.append(sandbox.create_code_context()), 5, warmup=0
    )
    results["remove_code_context()"] = timed(lambda: sandbox.remove_code_context(created.pop()), 5, warmup=0)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", help="the interpreter (port 49999), or Hutch's proxy with --sandbox-id")
    parser.add_argument("--sandbox-id", default="benchsandbox")
    parser.add_argument("--token", help="the sandbox's envd access token, if it has one")
    parser.add_argument("--stack", action="store_true", help="measure sandboxes of a stack of its own")
    parser.add_argument("--creates", type=int, default=20)
    parser.add_argument("--cold-creates", type=int, default=5)
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--sequential", type=int, default=1000)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    process = None
    results: dict = {}
    url = args.url
    if args.stack:
        pool = {"HUTCH_RUNTIME__WARM_POOL": {"base": 0, "code-interpreter-v1": 2}}
        with own_stack(SUBNET, pool, set()) as opts:
            Sandbox.create(**opts).kill()  # the first claim may wait for the pool's first fill
            for language in TWO:
                results[f"warm create -> first run_code(1+1, language={language})"] = creates(
                    opts, args.creates, language, pause_s=3
                )
            sandbox = Sandbox.create(**opts)
            try:
                url = sandbox._jupyter_url
                results.update(measure(sandbox, url, args.runs, args.sequential))
            finally:
                sandbox.kill()
        without_pool = {"HUTCH_RUNTIME__WARM_POOL": {"base": 0, "code-interpreter-v1": 0}}
        with own_stack(SUBNET, without_pool, set()) as opts:
            for language in TWO:
                results[f"cold create -> first run_code(1+1, language={language})"] = creates(
                    opts, args.cold_creates, language, pause_s=0.5
                )
    elif url is None:
        url, process, ready_ms = start_server()
        results["exec -> /health (default kernel up)"] = {"ms": round(ready_ms, 1)}
    if not args.stack:
        try:
            results.update(
                measure(sandbox_for(url, args.sandbox_id, args.token), url, args.runs, args.sequential)
            )
        finally:
            if process is not None:
                process.terminate()
                process.wait()

    title = f"code interpreter benchmark ({url}; python3 {sys.version.split()[0]} client)"
    report(title, results, as_json=args.json)


if __name__ == "__main__":
    main()
