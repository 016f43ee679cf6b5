"""The official E2B CLI (npm ``@e2b/cli``, the ``e2b`` command) against the real stack: ``sandbox list``,
``sandbox kill`` (by id, and ``--all`` by metadata), ``sandbox logs``, ``template list``, and ``template
create`` from a Dockerfile then ``template delete``.

The CLI runs under node with a temporary HOME, the stack's ``E2B_*`` variables only, the update check off,
and ``loopback_only.cjs`` preloaded, which refuses (and reports) every connection outside loopback.
"""

from __future__ import annotations

import json
import subprocess
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from e2b import NotFoundException, Sandbox, Template

from tests.cli.conftest import clean_env
from tests.npm_install import install
from tests.stack import Stack

LOOPBACK_ONLY = Path(__file__).with_name("loopback_only.cjs")
REFUSED = "refused by loopback_only:"

E2b = Callable[..., subprocess.CompletedProcess[str]]


@dataclass(frozen=True)
class Cli:
    """The pinned ``@e2b/cli``: the node that runs it and its entry point."""

    node: str
    entry: str


@pytest.fixture(scope="session")
def e2b_cli() -> Cli:
    """The pinned ``@e2b/cli``, installed into the cache on first use (with a Node.js of its own if the
    machine's is missing or too old)."""
    return Cli(*install("install-e2b-cli.sh"))


def run_e2b(cli: Cli, *args: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [cli.node, "--require", str(LOOPBACK_ONLY), cli.entry, *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.fixture()
def cli_env(stack: Stack, tmp_path: Path) -> dict[str, str]:
    """What a user sets to point the CLI at Hutch, with an empty HOME (no ``~/.e2b/config.json``)."""
    home = tmp_path / "home"
    home.mkdir()
    return clean_env(
        HOME=str(home), NO_UPDATE_NOTIFIER="1", E2B_API_KEY=stack.api_key, E2B_API_URL=stack.api_url
    )


@pytest.fixture()
def e2b(e2b_cli: Cli, cli_env: dict[str, str], tmp_path: Path) -> E2b:
    """``e2b(*args)``: the finished CLI process, which must not have tried to leave loopback."""

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        result = run_e2b(e2b_cli, *args, env=cli_env, cwd=tmp_path)
        assert REFUSED not in result.stderr, result.stderr
        return result

    return run


def succeeded(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, (result.stdout, result.stderr)
    return result.stdout


def listed(e2b: E2b, *args: str) -> dict[str, dict]:
    """``e2b sandbox list --format json``, by sandbox id."""
    items = json.loads(succeeded(e2b("sandbox", "list", "-f", "json", *args)))
    return {item["sandboxId"]: item for item in items}


def is_gone(stack: Stack, sandbox_id: str) -> bool:
    try:
        Sandbox.get_info(sandbox_id, **stack.opts)
    except NotFoundException:
        return True
    return False


@pytest.fixture()
def tag() -> str:
    """A metadata value no other test's sandboxes carry."""
    return uuid.uuid4().hex[:12]


def test_sandbox_list(e2b: E2b, stack: Stack, tag: str) -> None:
    sandboxes = [stack.create(metadata={"cli": tag}) for _ in range(2)]
    try:
        ids = {sandbox.sandbox_id for sandbox in sandboxes}
        everything = listed(e2b)
        assert ids <= everything.keys()
        for sandbox_id in ids:
            item = everything[sandbox_id]
            assert item["state"] == "running"
            assert item["metadata"]["cli"] == tag
            assert item["cpuCount"] >= 1 and item["memoryMB"] > 0 and item["envdVersion"]
        assert listed(e2b, "--metadata", f"cli={tag}").keys() == ids

        table = succeeded(e2b("sandbox", "list"))
        assert all(sandbox_id in table for sandbox_id in ids)
    finally:
        for sandbox in sandboxes:
            sandbox.kill()


def test_sandbox_kill(e2b: E2b, stack: Stack, tag: str) -> None:
    sandbox = stack.create(metadata={"cli": tag})
    try:
        assert "has been killed" in succeeded(e2b("sandbox", "kill", sandbox.sandbox_id))
        assert is_gone(stack, sandbox.sandbox_id)

        again = e2b("sandbox", "kill", sandbox.sandbox_id)
        assert again.returncode == 0 and "wasn't found" in again.stderr
    finally:
        sandbox.kill()


def test_sandbox_kill_all_by_metadata(e2b: E2b, stack: Stack, tag: str) -> None:
    doomed = [stack.create(metadata={"cli": tag}) for _ in range(2)]
    bystander = stack.create(metadata={"cli": f"not-{tag}"})
    try:
        assert "Killed 2 running sandboxes" in succeeded(e2b("sandbox", "kill", "--all", "-m", f"cli={tag}"))
        assert all(is_gone(stack, sandbox.sandbox_id) for sandbox in doomed)
        assert bystander.is_running()
    finally:
        for sandbox in [*doomed, bystander]:
            sandbox.kill()


def test_template_list(e2b: E2b) -> None:
    templates = json.loads(succeeded(e2b("template", "list", "-f", "json")))
    names = {name for template in templates for name in [template["templateID"], *template["aliases"]]}
    assert {"base", "code-interpreter-v1"} <= names

    table = succeeded(e2b("template", "list"))
    assert "base" in table and "code-interpreter-v1" in table


def test_sandbox_logs(e2b: E2b, stack: Stack, tag: str) -> None:
    sandbox = stack.create(metadata={"cli": tag})
    try:
        pid = sandbox.commands.run("echo hi", background=True).pid
        sandbox.commands.connect(pid).wait()
        printed = succeeded(e2b("sandbox", "logs", sandbox.sandbox_id, "--format", "json")).splitlines()
        messages = [json.loads(line)["message"] for line in printed if line.strip()]
        assert f"process {pid} started: /bin/bash as user" in messages, printed
        assert f"process {pid} ended: exit status 0" in messages
    finally:
        sandbox.kill()


def test_template_create_from_a_dockerfile(e2b: E2b, stack: Stack, tmp_path: Path) -> None:
    name = f"npm-{uuid.uuid4().hex[:8]}"
    (tmp_path / "hello.txt").write_text(name)
    (tmp_path / "e2b.Dockerfile").write_text(
        "FROM e2bdev/base\nCOPY hello.txt /opt/hello.txt\nRUN cat /opt/hello.txt\n"
    )
    succeeded(e2b("template", "create", name, "--path", str(tmp_path), "--ready-cmd", "true"))
    sandbox = Sandbox.create(name, **stack.opts)
    stack.seen.add(sandbox.sandbox_id)
    try:
        assert sandbox.files.read("/opt/hello.txt") == name
    finally:
        sandbox.kill()
    assert f"Deleting sandbox template {name}" in succeeded(e2b("template", "delete", name, "--yes"))
    assert not Template.exists(name, **stack.opts)


def test_wrong_api_key_is_refused(e2b_cli: Cli, cli_env: dict[str, str], tmp_path: Path) -> None:
    env = {**cli_env, "E2B_API_KEY": "e2b_" + "0" * 40}
    for command in (["sandbox", "list"], ["template", "list"]):
        result = run_e2b(e2b_cli, *command, env=env, cwd=tmp_path)
        assert result.returncode == 1 and "invalid API key" in result.stderr, result.stderr


def test_without_api_key_asks_to_log_in(e2b_cli: Cli, cli_env: dict[str, str], tmp_path: Path) -> None:
    env = {name: value for name, value in cli_env.items() if name != "E2B_API_KEY"}
    result = run_e2b(e2b_cli, "sandbox", "list", env=env, cwd=tmp_path)
    assert result.returncode == 1 and "E2B_API_KEY" in result.stderr, result.stderr


def test_without_api_url_it_goes_to_e2b(e2b_cli: Cli, cli_env: dict[str, str], tmp_path: Path) -> None:
    """The guard works, and ``E2B_API_URL`` is what keeps the CLI at home."""
    env = {name: value for name, value in cli_env.items() if name != "E2B_API_URL"}
    result = run_e2b(e2b_cli, "sandbox", "list", env=env, cwd=tmp_path)
    assert result.returncode == 1
    assert f"{REFUSED} api.e2b.app:443" in result.stderr
