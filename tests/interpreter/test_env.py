"""Environment variables: per call (then restored), and the sandbox's own from envd ``GET /envs``."""

from __future__ import annotations

from e2b_code_interpreter import Sandbox

from .conftest import SANDBOX_VAR


def test_sandbox_variables_come_from_envd(sandbox: Sandbox):
    name, value = SANDBOX_VAR
    assert sandbox.run_code(f"import os; os.environ.get({name!r})").text == value
    assert sandbox.run_code(f"echo ${name}", language="bash").logs.stdout == [f"{value}\n"]


def test_call_variables_apply_to_that_call_only(sandbox: Sandbox):
    name = SANDBOX_VAR[0]
    code = f"import os; print(os.environ.get('ONLY_NOW'), os.environ.get({name!r}))"
    call = sandbox.run_code(code, envs={"ONLY_NOW": 'it\'s "quoted"', name: "overridden"})
    assert call.logs.stdout == ['it\'s "quoted" overridden\n']
    assert sandbox.run_code(code).logs.stdout == ["None sandbox-level\n"]
    # child processes see them too
    child = sandbox.run_code(
        "import subprocess\n"
        "subprocess.run(['sh', '-c', 'echo $ONLY_NOW'], capture_output=True, text=True).stdout",
        envs={"ONLY_NOW": "child"},
    )
    assert child.text == "child\\n"


def test_call_variables_in_bash(sandbox: Sandbox):
    execution = sandbox.run_code('echo "[$ONLY_NOW]"', language="bash", envs={"ONLY_NOW": "a b 'c'"})
    assert execution.logs.stdout == ["[a b 'c']\n"]
    assert sandbox.run_code('echo "[$ONLY_NOW]"', language="bash").logs.stdout == ["[]\n"]
