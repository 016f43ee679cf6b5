"""JavaScript and TypeScript contexts (Deno's Jupyter kernel) through the official SDK."""

from __future__ import annotations

import os
import time

import pytest
from e2b import TimeoutException
from e2b_code_interpreter import Sandbox

from .conftest import SANDBOX_VAR


def test_state_results_and_output(sandbox: Sandbox):
    sandbox.run_code("let total = 40", language="js")
    execution = sandbox.run_code("console.log('adding'); total + 2", language="javascript")
    assert execution.logs.stdout == ["adding\n"]
    assert execution.text == "42"
    assert sandbox.run_code("'text'", language="js").text == "text"
    assert sandbox.run_code("({a: 1, b: [1, 2]})", language="js").text == "{ a: 1, b: [ 1, 2 ] }"


def test_errors(sandbox: Sandbox):
    execution = sandbox.run_code("undefinedFunction()", language="js")
    assert execution.error is not None
    assert execution.error.name == "ReferenceError"
    assert "undefinedFunction" in execution.error.value
    assert sandbox.run_code("1", language="js").text == "1"


def test_typescript(sandbox: Sandbox):
    execution = sandbox.run_code(
        "interface Point { x: number }\nconst p: Point = { x: 3 };\np.x * 2", language="ts"
    )
    assert execution.text == "6"


def test_environment_variables(sandbox: Sandbox):
    name, value = SANDBOX_VAR
    assert sandbox.run_code(f"Deno.env.get({name!r})", language="js").text == value
    code = "process.env.ONLY_NOW ?? 'unset'"
    assert sandbox.run_code(code, language="js", envs={"ONLY_NOW": 'say "now"'}).text == 'say "now"'
    assert sandbox.run_code(code, language="js").text == "unset"


def test_a_context_with_its_cwd(sandbox: Sandbox, tmp_path):
    os.chmod(tmp_path, 0o755)
    context = sandbox.create_code_context(language="javascript", cwd=str(tmp_path))
    try:
        assert context.language == "javascript"
        assert sandbox.run_code("Deno.cwd()", context=context).text == str(tmp_path)
    finally:
        sandbox.remove_code_context(context)


def test_a_timeout_interrupts_the_cell(sandbox: Sandbox):
    context = sandbox.create_code_context(language="js")
    try:
        sandbox.run_code("let kept = 'still here'", context=context)
        with pytest.raises(TimeoutException):
            sandbox.run_code("while (true) {}", context=context, timeout=1)
        started = time.monotonic()
        assert sandbox.run_code("kept", context=context, timeout=10).text == "still here"
        assert time.monotonic() - started < 5
    finally:
        sandbox.remove_code_context(context)
