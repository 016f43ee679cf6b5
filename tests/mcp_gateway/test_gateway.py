"""The gateway on this machine through the ``mcp`` client library: two servers as one, their tools named
by server, the token required, a crashing or flooding server contained, start failures reported."""

from __future__ import annotations

import os
import stat
import time

import httpx
import pytest
from mcp.shared.exceptions import McpError

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the servers run as nobody: root starts them")


async def test_two_servers_as_one(start, place):
    config = {
        "github/test/echo": {"runCmd": place.run_cmd()},
        "github/test/other": {"runCmd": place.run_cmd()},
    }
    done, gateway = start(config)
    assert done.returncode == 0, done.stderr
    assert "serving 10 tools of 2 servers" in done.stdout
    async with gateway.session() as session:
        names = {tool.name for tool in (await session.list_tools()).tools}
        assert names == {
            f"github_test_{repo}__{tool}"
            for repo in ("echo", "other")
            for tool in ("add", "echo", "whoami", "crash", "flood")
        }
        added = await session.call_tool("github_test_echo__add", {"a": 2, "b": 3})
        assert not added.isError and added.content[0].text == "5"
        echoed = await session.call_tool("github_test_other__echo", {"text": "héllo"})
        assert echoed.content[0].text == "héllo"
        # Servers run as the sandbox's user, without the gateway's token in their environment.
        who = await session.call_tool("github_test_echo__whoami", {"variable": "GATEWAY_ACCESS_TOKEN"})
        assert who.content[0].text == "nobody -"
        prompts = {prompt.name for prompt in (await session.list_prompts()).prompts}
        assert prompts == {"github_test_echo__greet", "github_test_other__greet"}
        greeting = await session.get_prompt("github_test_echo__greet", {"name": "Ada"})
        assert greeting.messages[0].content.text == "Hello, Ada"
        resource = await session.read_resource("echo://readme")
        assert resource.contents[0].text == "the echo server"
        with pytest.raises(McpError, match="no tool named 'github_test_echo__missing'"):
            await session.call_tool("github_test_echo__missing", {})


async def test_token_required_and_private(start, place):
    done, gateway = start({"github/test/echo": {"runCmd": place.run_cmd()}})
    assert done.returncode == 0, done.stderr
    token_file = gateway.state_dir / ".token"
    assert token_file.read_text() == gateway.token
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
    assert stat.S_IMODE(gateway.state_dir.stat().st_mode) == 0o700
    client = {
        "protocolVersion": "2025-06-18",
        "capabilities": {},
        "clientInfo": {"name": "t", "version": "1"},
    }
    initialize = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": client}
    accept = {"Accept": "application/json, text/event-stream"}
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": gateway.token}):
        answer = httpx.post(gateway.url, json=initialize, headers={**accept, **headers})
        assert answer.status_code == 401
    good = httpx.post(
        gateway.url, json=initialize, headers={**accept, "Authorization": f"Bearer {gateway.token}"}
    )
    assert good.status_code == 200
    elsewhere = httpx.get(
        gateway.url.replace("/mcp", "/other"), headers={"Authorization": f"Bearer {gateway.token}"}
    )
    assert elsewhere.status_code == 404


async def test_a_crashing_server_leaves_the_others(start, place):
    config = {
        "github/test/echo": {"runCmd": place.run_cmd()},
        "github/test/other": {"runCmd": place.run_cmd()},
    }
    done, gateway = start(config)
    assert done.returncode == 0, done.stderr
    async with gateway.session() as session:
        crashed = await session.call_tool("github_test_echo__crash", {})
        assert crashed.isError
        after = await session.call_tool("github_test_echo__add", {"a": 1, "b": 1})
        assert after.isError
        other = await session.call_tool("github_test_other__add", {"a": 1, "b": 1})
        assert other.content[0].text == "2"
    assert "the server github/test/echo exited with 3" in gateway.log_file.read_text()


async def test_a_flooding_server_is_bounded(start, place):
    config = {
        "github/test/echo": {"runCmd": place.run_cmd()},
        "github/test/other": {"runCmd": place.run_cmd("stderr")},
    }
    done, gateway = start(config)
    assert done.returncode == 0, done.stderr
    async with gateway.session() as session:
        big = await session.call_tool("github_test_echo__flood", {"size": 1024 * 1024})
        assert len(big.content[0].text) == 1024 * 1024
        # A message over 8 MiB ends its server; the other (whose stderr flooded the log) still answers.
        over = await session.call_tool("github_test_echo__flood", {"size": 9 * 1024 * 1024})
        assert over.isError
        other = await session.call_tool("github_test_other__echo", {"text": "still here"})
        assert other.content[0].text == "still here"
    log = gateway.log_file.read_text()
    assert "a message over 8388608 bytes" in log
    assert gateway.log_file.stat().st_size < 4 * 1024 * 1024 + 64 * 1024


async def test_a_server_that_fails_fails_the_start(start, place):
    config = {
        "github/test/echo": {"runCmd": place.run_cmd()},
        "github/test/other": {"runCmd": place.run_cmd("exit")},
    }
    done, gateway = start(config)
    assert done.returncode == 1
    assert "github/test/other: it exited with 5 before it answered" in done.stderr
    assert "going down before MCP starts" in done.stderr
    with pytest.raises(httpx.ConnectError):
        httpx.get(gateway.url)  # nothing is left listening


async def test_install_and_clone_failures_are_named(start, place):
    done, _ = start(
        {"github/test/echo": {"installCmd": "echo broken >&2; exit 7", "runCmd": place.run_cmd()}}
    )
    assert done.returncode == 1 and "installCmd exited with 7: broken" in done.stderr
    done, _ = start({"github/test/missing": {"runCmd": place.run_cmd()}})
    assert done.returncode == 1 and "git clone https://github.com/test/missing exited with 128" in done.stderr


@pytest.mark.parametrize(
    ("config", "token", "message"),
    [
        ("{not json", None, "the configuration is not JSON"),
        ('{"nosuch": {}}', None, "nosuch: not a server this gateway knows; available: fetch, filesystem"),
        ('{"github/../x": {"runCmd": "true"}}', None, "a custom server is named github/<owner>/<repository>"),
        ('{"github/a/b": {}}', None, "runCmd (the command that starts a stdio MCP server) is required"),
        ('{"github/a/b": {"runCmd": "x", "env": {}}}', None, "unknown settings env"),
        ('{"github/a/b": {"runCmd": "x"}}', "short", "GATEWAY_ACCESS_TOKEN must be 16 to 512"),
    ],
)
def test_configuration_errors(start, config, token, message):
    import subprocess
    import sys

    from tests.mcp_gateway.conftest import Place  # noqa: F401

    done = subprocess.run(
        [sys.executable, "-m", "hutch.mcp_gateway", "--config", config, "--state-dir", "/nonexistent/state"],
        env={**os.environ, "GATEWAY_ACCESS_TOKEN": token or "0123456789abcdef0123"},
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 1
    assert message in done.stderr


def test_an_idle_connection_is_kept_longer_than_clients_keep_it(start, place):
    """A client's pooled connection, idle for longer than uvicorn's default 5 s, still carries the next
    request (the SDKs keep idle connections for 300 s and do not retry one the server closed)."""
    done, gateway = start({"github/test/echo": {"runCmd": place.run_cmd()}})
    assert done.returncode == 0, done.stderr
    headers = {"Authorization": f"Bearer {gateway.token}"}
    with httpx.Client(headers=headers, limits=httpx.Limits(keepalive_expiry=300)) as client:
        assert client.get(gateway.url.replace("/mcp", "/other")).status_code == 404
        time.sleep(6)  # uvicorn's default keep-alive is 5 s
        again = client.get(gateway.url.replace("/mcp", "/other"), extensions={"trace": _no_new_connection})
        assert again.status_code == 404


def _no_new_connection(event: str, _info: dict) -> None:
    assert not event.startswith("connection.connect_tcp"), "the idle connection was closed by the gateway"
