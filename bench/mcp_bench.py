"""Benchmark ``Sandbox.create(mcp=...)`` of the official SDK and the MCP gateway through the TLS edge.

Starts its own stack (``hutch up --detach``, temporary data, free ports, subnet 172.30.80.0/20, the edge on
a free port with a certificate authority of its own, which this process trusts through ``SSL_CERT_FILE``;
no code interpreter or desktop template) and builds a template FROM ``mcp-gateway`` holding
``tests/mcp_gateway/echo_server.py`` as the git repository of ``github/test/echo`` (a system git setting
puts a local directory in place of ``https://github.com/``: nothing leaves the machine). Measures:

* the gateway's start as the SDK runs it (``mcp-gateway --config '<json>'`` as root with
  ``GATEWAY_ACCESS_TOKEN``, until it exits: clone, server start, listing, serving), in ``--creates`` fresh
  sandboxes of the template; and ``Sandbox.create(template, mcp=...)`` whole;
* through ``get_mcp_url()`` with ``get_mcp_token()`` and the ``mcp`` library's streamable HTTP client: a
  new session's ``initialize`` + ``list_tools`` (``--sessions`` times), and ``call_tool`` round trips of
  the echo server's ``add`` in one session (``--calls`` times).

``python bench/mcp_bench.py [--calls 200] [--sessions 20] [--creates 5] [--json]``
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shlex
import shutil
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

import httpx
from e2b import Sandbox, Template
from mcp import ClientSession
from mcp.client.streamable_http import streamable_http_client
from measure import HUTCH, free_port, report, summary

SUBNET = "172.30.80.0/20"
SYSTEM_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
ECHO_SERVER = Path(__file__).resolve().parent.parent / "tests" / "mcp_gateway" / "echo_server.py"
REPOS = "/opt/mcp-repos"
CONFIG = {"github/test/echo": {"runCmd": "/opt/mcp-gateway/venv/bin/python echo_server.py"}}


def build_echo_template(opts: dict[str, str], context: Path) -> str:
    """A template FROM ``mcp-gateway`` where ``github/test/echo`` is a local repository; its name."""
    shutil.copy(ECHO_SERVER, context / "echo_server.py")
    commit = "git init -q && git add . && git -c user.name=b -c user.email=b@b commit -q -m echo"
    template = (
        Template(file_context_path=context)
        .from_template("mcp-gateway")
        .run_cmd(
            f"mkdir -p {REPOS}/test/echo && chown -R user:user {REPOS}"
            f" && git config --system url.file://{REPOS}/.insteadOf https://github.com/",
            user="root",
        )
        .copy("echo_server.py", f"{REPOS}/test/echo/")
        .run_cmd(f"cd {REPOS}/test/echo && {commit}", user="user")
    )
    name = f"mcp-bench-{uuid.uuid4().hex[:8]}"
    Template.build(template, name, request_timeout=60, **opts)
    return name


def gateway_starts(opts: dict[str, str], template: str, creates: int) -> tuple[list[float], list[float]]:
    """Milliseconds of the gateway's start (the SDK's command) and of a whole ``create(mcp=...)``."""
    command = f"mcp-gateway --config {shlex.quote(json.dumps(CONFIG))}"
    starts, whole = [], []
    for _ in range(creates):
        sandbox = Sandbox.create(template=template, **opts)
        try:
            began = time.perf_counter()
            sandbox.commands.run(command, user="root", envs={"GATEWAY_ACCESS_TOKEN": str(uuid.uuid4())})
            starts.append((time.perf_counter() - began) * 1000)
        finally:
            sandbox.kill()
        began = time.perf_counter()
        sandbox = Sandbox.create(template=template, mcp=CONFIG, **opts)
        whole.append((time.perf_counter() - began) * 1000)
        sandbox.kill()
    return starts, whole


async def through_the_edge(url: str, token: str, sessions: int, calls: int) -> dict[str, dict]:
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(headers=headers, timeout=60) as http:
        opened = []
        for _ in range(sessions):
            began = time.perf_counter()
            async with (
                streamable_http_client(url, http_client=http) as (read, write, _),
                ClientSession(read, write) as session,
            ):
                await session.initialize()
                tools = (await session.list_tools()).tools
                opened.append((time.perf_counter() - began) * 1000)
        assert any(tool.name == "github_test_echo__add" for tool in tools)
        round_trips = []
        async with (
            streamable_http_client(url, http_client=http) as (read, write, _),
            ClientSession(read, write) as session,
        ):
            await session.initialize()
            for number in range(calls + 5):
                began = time.perf_counter()
                result = await session.call_tool("github_test_echo__add", {"a": number, "b": 1})
                elapsed = (time.perf_counter() - began) * 1000
                assert result.content[0].text == str(number + 1)
                if number >= 5:  # the first calls warm the connection up
                    round_trips.append(elapsed)
    return {
        "new session: initialize + list_tools": summary(opened),
        "call_tool round trip (one session)": summary(round_trips),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--sessions", type=int, default=20)
    parser.add_argument("--creates", type=int, default=5)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    base = Path(tempfile.mkdtemp(prefix="hutch-mcp-bench-"))
    env = {
        **os.environ,
        "HUTCH_DATA_DIR": str(base / "data"),
        "HUTCH_API__PORT": str(free_port()),
        "HUTCH_PROXY__PORT": str(free_port()),
        "HUTCH_PROXY__TLS_PORT": str(free_port()),
        "HUTCH_PROXY__TRUST_LOCAL_CA": "false",
        "HUTCH_RUNTIME__SUBNET": SUBNET,
        "HUTCH_RUNTIME__EGRESS_INTERFACE": "off",
        "HUTCH_RUNTIME__WARM_POOL": json.dumps({"base": 1}),
        "HUTCH_TEMPLATES__CODE_INTERPRETER": "false",
        "HUTCH_TEMPLATES__DESKTOP": "false",
    }
    env_file = base / "env.local"
    subprocess.run([HUTCH, "up", "--detach", "--env-file", str(env_file)], env=env, check=True)
    results: dict[str, object] = {}
    try:
        values = dict(line.split("=", 1) for line in env_file.read_text().splitlines() if "=" in line)
        bundle = base / "bundle.pem"
        bundle.write_text(SYSTEM_BUNDLE.read_text() + Path(values["NODE_EXTRA_CA_CERTS"]).read_text())
        os.environ["SSL_CERT_FILE"] = str(bundle)  # before the SDK makes its first connection
        opts = {"api_key": values["E2B_API_KEY"], "domain": values["E2B_DOMAIN"]}
        context = base / "context"
        context.mkdir()
        template = build_echo_template(opts, context)
        starts, whole = gateway_starts(opts, template, args.creates)
        results["gateway start (mcp-gateway --config → exit)"] = summary(starts)
        results["Sandbox.create(template, mcp=...)"] = summary(whole)
        sandbox = Sandbox.create(template=template, mcp=CONFIG, **opts)
        try:
            token = sandbox.get_mcp_token() or ""
            edge = through_the_edge(sandbox.get_mcp_url(), token, args.sessions, args.calls)
            results.update(asyncio.run(edge))
        finally:
            sandbox.kill()
    finally:
        subprocess.run([HUTCH, "down"], env=env, check=False)
        shutil.rmtree(base, ignore_errors=True)
    report("MCP gateway through the TLS edge (ms)", results, as_json=args.json, width=46)


if __name__ == "__main__":
    main()
