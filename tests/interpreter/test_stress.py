"""Races between an interrupt, the kernel and the next execution, each placed where it used to go wrong.

The kernel is held at the exact point of each race with ipykernel's own threads: its IOPub thread (which
publishes every output) or its main event loop (which takes the requests up) is made to sleep for a moment;
or it is made to send what a send cut short by a SIGINT leaves behind. ``bench/interpreter_stress.py`` runs
the same races by the thousand, at random.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time

import pytest
from e2b import TimeoutException
from e2b_code_interpreter import Sandbox

from tests.interpreter.conftest import SANDBOX_VAR, Interpreter

# The kernel's IOPub thread sleeps: nothing of the cell reaches the server meanwhile, and the final flush of
# the cell's output (ipykernel's, after the cell's code) waits for it.
HOLD_IOPUB = "_iopub = get_ipython().kernel.iopub_thread\n_iopub.schedule(lambda: time.sleep({seconds}))\n"
# The kernel's main loop sleeps after the cell: the next request waits, unread, until it wakes.
HOLD_REQUESTS = "get_ipython().kernel.io_loop.add_callback(time.sleep, {seconds})\n"


@pytest.fixture()
def context(sandbox: Sandbox):
    context = sandbox.create_code_context()
    sandbox.run_code("import time\nstate = 'kept'", context=context, timeout=30)
    yield context
    sandbox.remove_code_context(context)


def test_an_interrupt_that_lands_after_the_cell_does_not_hold_up_the_next_one(sandbox: Sandbox, context):
    """The client leaves after the cell's code ran but before the kernel replied: the interrupt lands in
    ipykernel's own handling of the request, which then never replies (only its idle status comes)."""
    code = HOLD_IOPUB.format(seconds=3) + "print('done')"
    with pytest.raises(TimeoutException):
        sandbox.run_code(code, context=context, timeout=1)
    started = time.monotonic()
    execution = sandbox.run_code("state", context=context, timeout=30)
    assert execution.error is None and execution.text == "kept"
    assert time.monotonic() - started < 5  # the kernel is done at about 2 s from here; it used to take 10


def test_a_cell_the_client_left_before_the_kernel_took_it_up_is_still_stopped(sandbox: Sandbox, context):
    """A SIGINT that reaches the kernel between requests is ignored: sent before the kernel took the cell
    up, it let the cell run on, and the next executions queued behind it."""
    sandbox.run_code(HOLD_REQUESTS.format(seconds=2), context=context, timeout=30)
    with pytest.raises(TimeoutException):
        sandbox.run_code("while True:\n    time.sleep(0.01)", context=context, timeout=0.5)
    started = time.monotonic()
    execution = sandbox.run_code("state", context=context, timeout=30)
    assert execution.error is None and execution.text == "kept"
    assert time.monotonic() - started < 5


def test_a_client_that_leaves_while_its_variables_are_set_leaves_none_behind(sandbox: Sandbox, context):
    """The client leaves while the call's ``envs`` wait to be set: they are unset all the same."""
    sandbox.run_code(HOLD_REQUESTS.format(seconds=2), context=context, timeout=30)
    with pytest.raises(TimeoutException):
        sandbox.run_code("time.sleep(5)", context=context, envs={"HUTCH_LEFT_BEHIND": "yes"}, timeout=0.5)
    execution = sandbox.run_code(
        "import os\nos.environ.get('HUTCH_LEFT_BEHIND')", context=context, timeout=30
    )
    assert execution.error is None and execution.text is None


def test_no_output_is_lost_while_the_server_lags(sandbox: Sandbox, interpreter: Interpreter, context):
    """The server stops reading for a moment while a cell prints fast: the kernel waits for it instead of
    dropping messages (and with them, at times, the status that ends the execution)."""
    lines = 20_000
    printing = threading.Event()
    outcome: list = []

    def run() -> None:
        code = f"for n in range({lines}):\n    print(n, flush=True)"
        outcome.append(
            sandbox.run_code(code, context=context, on_stdout=lambda _: printing.set(), timeout=60)
        )

    runner = threading.Thread(target=run, daemon=True)
    runner.start()
    assert printing.wait(20)
    os.kill(interpreter.process.pid, signal.SIGSTOP)
    try:
        time.sleep(2)
    finally:
        os.kill(interpreter.process.pid, signal.SIGCONT)
    runner.join(60)
    [execution] = outcome
    assert execution.error is None
    assert "".join(execution.logs.stdout) == "".join(f"{n}\n" for n in range(lines))


def test_clients_that_leave_during_a_restart_do_not_cut_it_short(sandbox: Sandbox, context):
    """The kernel died; the next clients give up while it restarts, each at another step of the restart: it
    goes on regardless, and the new kernel gets the sandbox's variables."""
    crash = sandbox.run_code("import os\nos._exit(1)", context=context, timeout=30)
    assert crash.error is not None and crash.error.name == "ContextRestarting"
    for timeout in (0.05, 0.1, 0.2, 0.4):
        with contextlib.suppress(TimeoutException):
            sandbox.run_code("1 + 1", context=context, timeout=timeout)
    execution = sandbox.run_code(
        f"import os\n'state' in dir(), os.environ.get({SANDBOX_VAR[0]!r})", context=context, timeout=60
    )
    assert execution.error is None and execution.text == f"(False, {SANDBOX_VAR[1]!r})"


def test_a_message_the_server_cannot_read_is_dropped_alone(sandbox: Sandbox, context):
    """A message with a bad signature (what a reply cut short by a SIGINT turns the next message into) used
    to stop the server reading that channel of the kernel for good."""
    junk = [b"", b"<IDS|MSG>", b"0" * 64, b"{}", b"{}", b"{}", b"{}"]
    code = f"get_ipython().kernel.iopub_thread.send_multipart({junk!r})\nprint('after')"
    execution = sandbox.run_code(code, context=context, timeout=10)
    assert execution.error is None and execution.logs.stdout == ["after\n"]
    assert sandbox.run_code("state", context=context, timeout=10).text == "kept"


def test_an_execution_whose_reply_is_lost_still_ends(sandbox: Sandbox, context):
    """The kernel's reply never arrives, only its idle status: the cell's reply is sent after a stray frame,
    as after a send that a SIGINT cut short, and is dropped on its way."""
    code = (
        "import zmq\n"
        "_manager = get_ipython().kernel.shell_channel_thread.manager\n"
        "_manager.get_subshell_to_shell_channel_socket(None).send(b'stray', zmq.SNDMORE)\n"
        "print('done')"
    )
    started = time.monotonic()
    execution = sandbox.run_code(code, context=context, timeout=10)
    assert execution.error is None and execution.logs.stdout == ["done\n"]
    assert time.monotonic() - started < 3
    assert sandbox.run_code("state", context=context, timeout=10).text == "kept"
