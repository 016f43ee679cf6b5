"""The ``code-interpreter-v1`` template through the official ``e2b-code-interpreter`` client, on the real
stack: a sandbox whose server on port 49999 runs code in warm Jupyter kernels."""

from __future__ import annotations

import threading
import time

import pytest
from e2b_code_interpreter import Sandbox


@pytest.fixture(scope="module")
def interpreter(stack):
    sandbox = Sandbox.create(envs={"SANDBOX_LEVEL": "from-create"}, **stack.opts)
    stack.seen.add(sandbox.sandbox_id)
    yield sandbox
    sandbox.kill()


def test_state_results_and_streams(interpreter):
    interpreter.run_code("x = 41")
    stdout, stderr = [], []
    execution = interpreter.run_code(
        "import sys\nprint('out')\nprint('err', file=sys.stderr)\nx + 1",
        on_stdout=lambda m: stdout.append(m.line),
        on_stderr=lambda m: stderr.append(m.line),
    )
    assert execution.text == "42"
    assert execution.logs.stdout == ["out\n"] and execution.logs.stderr == ["err\n"]
    assert stdout == ["out\n"] and stderr == ["err\n"]
    assert execution.error is None


def test_errors_carry_name_value_and_traceback(interpreter):
    execution = interpreter.run_code("1 / 0")
    assert execution.error.name == "ZeroDivisionError"
    assert "division by zero" in execution.error.value
    assert "ZeroDivisionError" in execution.error.traceback


def test_matplotlib_png_and_dataframe_html(interpreter):
    plot = interpreter.run_code("import matplotlib.pyplot as plt\nplt.plot([1, 2, 3], [1, 4, 9])\nplt.show()")
    assert any(result.png for result in plot.results)
    frame = interpreter.run_code("import pandas as pd\npd.DataFrame({'a': [1, 2], 'b': [3, 4]})")
    assert "<table" in frame.results[0].html and "a" in frame.results[0].text


def test_env_vars_per_sandbox_and_per_call(interpreter):
    code = "import os\nos.environ.get('SANDBOX_LEVEL'), os.environ.get('CALL_LEVEL')"
    assert interpreter.run_code(code).text == "('from-create', None)"
    assert interpreter.run_code(code, envs={"CALL_LEVEL": "once"}).text == "('from-create', 'once')"
    assert interpreter.run_code(code).text == "('from-create', None)"


def test_r_and_java_in_a_sandbox_with_its_variables(interpreter):
    """R and Java run in the sandbox itself (as root, like its other kernels), each seeing the sandbox's
    variables and a call's own, and naming its errors."""
    r_code = 'cat(Sys.getenv("SANDBOX_LEVEL"), Sys.getenv("CALL_LEVEL", unset = "-"))'
    assert interpreter.run_code(r_code, language="r").logs.stdout == ["from-create -"]
    assert interpreter.run_code(r_code, language="r", envs={"CALL_LEVEL": "once"}).logs.stdout == [
        "from-create once"
    ]
    assert "it broke" in interpreter.run_code('stop("it broke")', language="r").error.value
    java_code = 'System.getenv("SANDBOX_LEVEL") + " " + System.getenv().getOrDefault("CALL_LEVEL", "-")'
    assert interpreter.run_code(java_code, language="java").text == "from-create -"
    assert (
        interpreter.run_code(java_code, language="java", envs={"CALL_LEVEL": "once"}).text
        == "from-create once"
    )
    assert interpreter.run_code(java_code, language="java").text == "from-create -"
    failed = interpreter.run_code('Integer.parseInt("x")', language="java")
    assert failed.error.name == "java.lang.NumberFormatException" and "x" in failed.error.value
    context = interpreter.create_code_context(language="java", cwd="/tmp")
    try:
        assert interpreter.run_code('System.getProperty("user.dir")', context=context).text == "/tmp"
    finally:
        interpreter.remove_code_context(context)


def test_contexts_are_separate_and_have_their_cwd(interpreter):
    first = interpreter.create_code_context(cwd="/tmp")
    second = interpreter.create_code_context()
    interpreter.run_code("value = 'first'", context=first)
    assert interpreter.run_code("import os\nos.getcwd()", context=first).text == "/tmp"  # quotes stripped
    assert interpreter.run_code("'value' in globals()", context=second).text == "False"
    assert {first.id, second.id} <= {c.id for c in interpreter.list_code_contexts()}
    interpreter.restart_code_context(first)
    assert interpreter.run_code("'value' in globals()", context=first).text == "False"
    interpreter.remove_code_context(second)
    assert second.id not in {c.id for c in interpreter.list_code_contexts()}
    # As in E2B's template, the kernels run as root (commands still run as ``user``).
    root = interpreter.create_code_context(cwd="/root")
    assert interpreter.run_code("import os\n(os.getuid(), os.getcwd())", context=root).text == "(0, '/root')"


def test_bash_context(interpreter):
    execution = interpreter.run_code("echo $((6 * 7))", language="bash")
    assert execution.logs.stdout == ["42\n"]


def test_timeout_interrupts_and_the_context_lives_on(interpreter):
    context = interpreter.create_code_context()
    interpreter.run_code("kept = 'yes'", context=context)
    start = time.monotonic()
    with pytest.raises(Exception):  # noqa: B017 (the client raises its own timeout error)
        interpreter.run_code("import time\ntime.sleep(60)", context=context, timeout=2)
    assert time.monotonic() - start < 20
    assert interpreter.run_code("kept", context=context).text == "yes"


def test_two_contexts_run_at_once(interpreter):
    contexts = [interpreter.create_code_context() for _ in range(2)]
    results: list[str] = []

    def run(context) -> None:
        results.append(interpreter.run_code("import time\ntime.sleep(1)\n'done'", context=context).text)

    threads = [threading.Thread(target=run, args=(context,)) for context in contexts]
    start = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == ["done", "done"]
    assert time.monotonic() - start < 1.9  # in parallel, not one after the other


def test_commands_and_files_work_in_the_same_sandbox(interpreter):
    interpreter.files.write("/home/user/data.txt", "from files")
    assert interpreter.run_code("open('/home/user/data.txt').read()").text == "from files"
    interpreter.run_code("open('/home/user/out.txt', 'w').write('from code')")
    assert interpreter.commands.run("cat /home/user/out.txt").stdout == "from code"


def test_python_and_javascript_contexts_exist_from_the_start(stack):
    sandbox = Sandbox.create(**stack.opts)
    stack.seen.add(sandbox.sandbox_id)
    try:
        assert {"python", "javascript"} <= {context.language for context in sandbox.list_code_contexts()}
    finally:
        sandbox.kill()
