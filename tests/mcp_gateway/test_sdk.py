"""``Sandbox.create(mcp=...)`` of the official SDK against a real stack with the TLS edge: the gateway of the
``mcp-gateway`` template started by the SDK, reached at ``get_mcp_url()`` with ``get_mcp_token()`` through
the ``mcp`` client library. The custom server is ``echo_server.py`` in a git repository inside a template
built FROM ``mcp-gateway``, which a system git setting puts in place of ``https://github.com/``: nothing
leaves the machine."""

from __future__ import annotations

import json
import re
import secrets
import shutil
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from e2b import NotFoundException, Sandbox, SandboxException, Template
from mcp import ClientSession
from mcp.client.streamable_http import streamable_http_client

from tests.stack import Stack, running_stack

# Apart from the volume tests' 10.254.0.0/16; bench/mcp_bench.py has the next /20.
SUBNET = "172.30.64.0/20"
ECHO_SERVER = Path(__file__).with_name("echo_server.py")
# The template's repositories: ``github/<owner>/<name>`` is cloned from ``REPOS/<owner>/<name>``.
REPOS = "/opt/mcp-repos"
# The template's venv has the ``mcp`` library the echo server is written with.
ECHO_CONFIG = {"github/test/echo": {"runCmd": "/opt/mcp-gateway/venv/bin/python echo_server.py"}}
ECHO_TOOLS = {f"github_test_echo__{tool}" for tool in ("add", "echo", "whoami", "crash", "flood")}


@pytest.fixture(scope="module")
def mcp_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """A stack with the edge and the ``base`` and ``mcp-gateway`` templates only."""
    settings = {"HUTCH_TEMPLATES__CODE_INTERPRETER": "false", "HUTCH_TEMPLATES__DESKTOP": "false"}
    with running_stack(tmp_path_factory, "hutch-mcp", subnet=SUBNET, edge=True, settings=settings) as running:
        yield running


@pytest.fixture(scope="module")
def opts(mcp_stack: Stack) -> dict[str, str]:
    """What a client of E2B's self-hosting path is given: the domain and a key."""
    assert mcp_stack.domain is not None
    return {"domain": mcp_stack.domain, "api_key": mcp_stack.api_key}


@pytest.fixture(scope="module")
def echo_template(opts: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> str:
    """A template FROM ``mcp-gateway`` with ``github/test/echo`` a repository of the sandbox's user."""
    context = tmp_path_factory.mktemp("mcp-echo")
    shutil.copy(ECHO_SERVER, context / "echo_server.py")
    commit = "git init -q && git add . && git -c user.name=t -c user.email=t@t commit -q -m echo"
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
    name = f"mcp-echo-{secrets.token_hex(4)}"
    Template.build(template, name, request_timeout=60, **opts)
    return name


class ObservedSandbox(Sandbox):
    """The official ``Sandbox``, remembering each sandbox the API made before ``create`` starts its gateway
    (with its template, read while it still runs): a failed start kills it before ``create`` returns."""

    made: list[tuple[str, str]] = []

    @classmethod
    def _create(cls, *args, **kwargs):
        sandbox = super()._create(*args, **kwargs)
        cls.made.append((sandbox.sandbox_id, sandbox.get_info().template_id))
        return sandbox


@pytest.fixture()
def observed(mcp_stack: Stack) -> Iterator[list[tuple[str, str]]]:
    ObservedSandbox.made = []
    yield ObservedSandbox.made
    mcp_stack.seen.update(sandbox_id for sandbox_id, _ in ObservedSandbox.made)


def _assert_gone(sandbox_id: str, opts: dict[str, str]) -> None:
    with pytest.raises(NotFoundException):
        Sandbox.get_info(sandbox_id, **opts)


async def test_tools_through_the_edge(mcp_stack: Stack, opts: dict[str, str], echo_template: str):
    sandbox = Sandbox.create(template=echo_template, mcp=ECHO_CONFIG, **opts)
    mcp_stack.seen.add(sandbox.sandbox_id)
    try:
        url, token = sandbox.get_mcp_url(), sandbox.get_mcp_token()
        assert url == f"https://50005-{sandbox.sandbox_id}.{mcp_stack.domain}/mcp"
        # What a later ``connect`` reads from the sandbox is the token the SDK gave the gateway.
        assert Sandbox.connect(sandbox.sandbox_id, **opts).get_mcp_token() == token
        headers = {"Authorization": f"Bearer {token}"}
        async with (
            httpx.AsyncClient(headers=headers, timeout=60) as http,
            streamable_http_client(url, http_client=http) as (read, write, _),
            ClientSession(read, write) as session,
        ):
            await session.initialize()
            assert {tool.name for tool in (await session.list_tools()).tools} == ECHO_TOOLS
            added = await session.call_tool("github_test_echo__add", {"a": 2, "b": 40})
            assert not added.isError and added.content[0].text == "42"
            who = await session.call_tool("github_test_echo__whoami", {"variable": "GATEWAY_ACCESS_TOKEN"})
            assert who.content[0].text == "user -"
        initialize = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {}}
        accept = {"Accept": "application/json, text/event-stream"}
        async with httpx.AsyncClient(timeout=30) as http:
            assert (await http.post(url, json=initialize, headers=accept)).status_code == 401
            wrong = {**accept, "Authorization": f"Bearer {secrets.token_hex(16)}"}
            assert (await http.post(url, json=initialize, headers=wrong)).status_code == 401
        log = sandbox.files.read("/var/log/mcp-gateway/gateway.log", user="root")
        assert "github/test/echo: 5 tools" in log
    finally:
        sandbox.kill()


def test_unknown_server_fails_the_create(opts: dict[str, str], observed: list[tuple[str, str]]):
    with pytest.raises(SandboxException) as raised:
        ObservedSandbox.create(mcp={"no-such-server": {}}, **opts)
    message = str(raised.value)
    assert message.startswith("Failed to start MCP gateway: mcp-gateway: invalid configuration: ")
    assert "no-such-server: not a server this gateway knows" in message
    assert "available: fetch, filesystem, git, github, memory" in message
    [(sandbox_id, _)] = observed
    _assert_gone(sandbox_id, opts)


def test_the_default_template_is_mcp_gateway(opts: dict[str, str], observed: list[tuple[str, str]]):
    # The stack has no way out, so the plain template's gateway cannot fetch any server: the clone fails,
    # as it says, and the create with it.
    with pytest.raises(SandboxException, match=re.escape("git clone https://github.com/test/echo")):
        ObservedSandbox.create(mcp=ECHO_CONFIG, **opts)
    [(sandbox_id, template_id)] = observed
    assert template_id == "mcp-gateway"
    _assert_gone(sandbox_id, opts)


def test_an_oversized_config_is_refused_by_the_api(opts: dict[str, str], observed: list[tuple[str, str]]):
    huge = {"github/test/echo": {"runCmd": "x" * (70 * 1024)}}
    assert len(json.dumps(huge)) > 64 * 1024
    with pytest.raises(SandboxException, match="mcp may be at most"):
        ObservedSandbox.create(mcp=huge, **opts)
    assert observed == []
