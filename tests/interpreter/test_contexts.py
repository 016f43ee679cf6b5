"""Contexts through the official SDK: separate state and working directory, restart, remove, languages."""

from __future__ import annotations

import os

import httpx
import pytest
from e2b import NotFoundException, SandboxException
from e2b_code_interpreter import Sandbox

from .conftest import TOKEN, Interpreter


def test_contexts_keep_separate_state_and_cwd(sandbox: Sandbox, interpreter: Interpreter, tmp_path):
    os.chmod(tmp_path, 0o755)
    first = sandbox.create_code_context(cwd=str(tmp_path))
    second = sandbox.create_code_context()
    try:
        assert first.language == "python" and first.cwd == str(tmp_path)
        assert second.cwd == interpreter.cwd
        sandbox.run_code("value = 'first'", context=first)
        sandbox.run_code("value = 'second'", context=second)
        assert sandbox.run_code("value", context=first).text == "first"
        assert sandbox.run_code("value", context=second).text == "second"
        assert sandbox.run_code("import os; os.getcwd()", context=first).text == str(tmp_path)
        assert sandbox.run_code("'value' in dir()").text == "False"  # the default context has none
        listed = {c.id: c for c in sandbox.list_code_contexts()}
        assert {first.id, second.id} <= set(listed)
        assert listed[first.id].cwd == str(tmp_path)
    finally:
        sandbox.remove_code_context(first)
        sandbox.remove_code_context(second.id)
    assert not {first.id, second.id} & {c.id for c in sandbox.list_code_contexts()}


def test_restart_clears_state_and_keeps_the_id(sandbox: Sandbox):
    context = sandbox.create_code_context()
    try:
        sandbox.run_code("kept = 1", context=context)
        sandbox.restart_code_context(context)
        execution = sandbox.run_code("kept", context=context)
        assert execution.error is not None and execution.error.name == "NameError"
        assert context.id in {c.id for c in sandbox.list_code_contexts()}
    finally:
        sandbox.remove_code_context(context)


def test_a_removed_or_unknown_context_is_not_found(sandbox: Sandbox):
    context = sandbox.create_code_context()
    sandbox.remove_code_context(context)
    with pytest.raises(NotFoundException):
        sandbox.run_code("1", context=context)
    with pytest.raises(NotFoundException):
        sandbox.restart_code_context("no-such-context")
    with pytest.raises(NotFoundException):
        sandbox.remove_code_context("no-such-context")


def test_bash_keeps_state_like_a_shell(sandbox: Sandbox, tmp_path):
    os.chmod(tmp_path, 0o755)
    sandbox.run_code(f"cd {tmp_path} && GREETING=hello", language="bash")
    execution = sandbox.run_code('echo "$GREETING from $(pwd)"', language="bash")
    assert execution.logs.stdout == [f"hello from {tmp_path}\n"]
    assert execution.error is None
    failed = sandbox.run_code("false", language="bash")
    assert failed.error is not None and failed.error.value == "1"


def test_a_bash_context(sandbox: Sandbox, tmp_path):
    os.chmod(tmp_path, 0o755)
    context = sandbox.create_code_context(language="bash", cwd=str(tmp_path))
    try:
        assert context.language == "bash"
        assert sandbox.run_code("pwd", context=context).logs.stdout == [f"{tmp_path}\n"]
    finally:
        sandbox.remove_code_context(context)


def test_language_names_are_normalised(sandbox: Sandbox):
    assert sandbox.run_code("6 * 7", language="Python").text == "42"


def test_an_unknown_language_is_refused(sandbox: Sandbox):
    with pytest.raises(SandboxException, match="no kernel for language 'cobol'"):
        sandbox.run_code("DISPLAY 'HI'", language="cobol")
    with pytest.raises(SandboxException, match="no kernel for language 'r'"):
        sandbox.create_code_context(language="R")


def test_a_missing_working_directory_is_refused(sandbox: Sandbox):
    with pytest.raises(SandboxException, match="working directory"):
        sandbox.create_code_context(cwd="/no/such/directory")


def test_context_and_language_together_are_a_bad_request(interpreter: Interpreter):
    response = httpx.post(
        f"{interpreter.url}/execute",
        json={"code": "1", "context_id": "x", "language": "python", "env_vars": None},
        headers={"X-Access-Token": TOKEN},
    )
    assert response.status_code == 400
    assert "Only one of context_id or language" in response.text


def test_kernel_sockets_stay_out_of_the_working_directories(sandbox: Sandbox, interpreter: Interpreter):
    context = sandbox.create_code_context(language="python")
    assert sandbox.run_code("1 + 1", context=context).text == "2"
    server_cwd = os.readlink(f"/proc/{interpreter.process.pid}/cwd")
    for directory in (server_cwd, interpreter.cwd):
        assert not [name for name in os.listdir(directory) if name.startswith("kernel-ipc")], directory
