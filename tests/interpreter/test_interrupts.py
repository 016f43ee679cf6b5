"""Timeouts interrupt the kernel, crashed kernels restart, contexts run side by side."""

from __future__ import annotations

import threading
import time

import pytest
from e2b import TimeoutException
from e2b_code_interpreter import Sandbox


@pytest.fixture()
def context(sandbox: Sandbox):
    context = sandbox.create_code_context()
    yield context
    sandbox.remove_code_context(context)


def test_a_timeout_interrupts_the_cell_and_the_context_stays_usable(sandbox: Sandbox, context):
    sandbox.run_code("progress = 0", context=context)
    started = time.monotonic()
    with pytest.raises(TimeoutException):
        sandbox.run_code(
            "import time\nfor progress in range(1, 600):\n    time.sleep(0.05)", context=context, timeout=1
        )
    assert time.monotonic() - started < 5
    execution = sandbox.run_code("progress", context=context, timeout=10)
    assert execution.error is None
    stopped_at = int(execution.text)
    assert 1 <= stopped_at < 200  # the loop was interrupted, not left running
    time.sleep(0.3)
    assert sandbox.run_code("progress", context=context).text == str(stopped_at)


def test_a_crashed_kernel_is_reported_and_restarted(sandbox: Sandbox, context):
    sandbox.run_code("lost = True", context=context)
    execution = sandbox.run_code("import os\nos._exit(1)", context=context, timeout=30)
    assert execution.error is not None
    assert execution.error.name == "ContextRestarting"
    after = sandbox.run_code("'lost' in dir(), 1 + 1", context=context, timeout=60)
    assert after.error is None
    assert after.text == "(False, 2)"


def test_two_contexts_execute_at_the_same_time(sandbox: Sandbox, context):
    other = sandbox.create_code_context()
    texts: list[str | None] = []

    def run(ctx) -> None:
        texts.append(sandbox.run_code("import time\ntime.sleep(1.5)\n'done'", context=ctx, timeout=30).text)

    try:
        started = time.monotonic()
        threads = [threading.Thread(target=run, args=(ctx,), daemon=True) for ctx in (context, other)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        assert texts == ["done", "done"]
        assert time.monotonic() - started < 2.8
    finally:
        sandbox.remove_code_context(other)


def test_executions_in_one_context_run_in_turn(sandbox: Sandbox, context):
    sandbox.run_code("order = []", context=context)
    threads = [
        threading.Thread(
            target=sandbox.run_code,
            args=(f"order.append({n})",),
            kwargs={"context": context, "timeout": 30},
            daemon=True,
        )
        for n in range(5)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert sorted(eval(sandbox.run_code("order", context=context).text)) == [0, 1, 2, 3, 4]


def test_a_timeout_interrupts_bash_too(sandbox: Sandbox):
    context = sandbox.create_code_context(language="bash")
    try:
        with pytest.raises(TimeoutException):
            sandbox.run_code("sleep 30", context=context, timeout=1)
        started = time.monotonic()
        assert sandbox.run_code("echo after", context=context, timeout=10).logs.stdout == ["after\n"]
        assert time.monotonic() - started < 5
    finally:
        sandbox.remove_code_context(context)


def test_multi_line_bash_cells_are_quick(sandbox: Sandbox):
    sandbox.run_code("true", language="bash")
    started = time.monotonic()
    execution = sandbox.run_code("\n".join(f"echo {n}" for n in range(20)), language="bash")
    assert "".join(execution.logs.stdout).split() == [str(n) for n in range(20)]
    assert time.monotonic() - started < 0.8


@pytest.mark.parametrize(
    ("action", "name"), [("restart", "ContextRestarting"), ("remove", "UnexpectedEndOfExecution")]
)
def test_restarting_or_removing_a_busy_context_ends_its_execution(sandbox: Sandbox, action: str, name: str):
    context = sandbox.create_code_context()
    outcome: list = []
    running = threading.Event()

    def run() -> None:
        code = "import time\nprint('running', flush=True)\ntime.sleep(20)"
        outcome.append(sandbox.run_code(code, context=context, on_stdout=lambda _: running.set(), timeout=30))

    runner = threading.Thread(target=run, daemon=True)
    runner.start()
    assert running.wait(10)
    started = time.monotonic()
    if action == "restart":
        sandbox.restart_code_context(context)
    else:
        sandbox.remove_code_context(context)
    runner.join(10)
    assert time.monotonic() - started < 5
    [execution] = outcome
    assert execution.error is not None and execution.error.name == name
    if action == "restart":
        assert sandbox.run_code("1 + 1", context=context, timeout=15).text == "2"
        sandbox.remove_code_context(context)
