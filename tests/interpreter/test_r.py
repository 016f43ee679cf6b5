"""R contexts (IRkernel over Debian's R, in the built image) through the official SDK.

IRkernel shows a cell's visible value as display data, not as an execution result: like E2B's, the value
is ``results[0]`` and ``execution.text`` stays None."""

from __future__ import annotations

import pytest
from e2b import TimeoutException
from e2b_code_interpreter import Execution, Sandbox

from .conftest import needs_image

pytestmark = needs_image


def _value(execution: Execution) -> str | None:
    assert execution.error is None, execution.error
    return execution.results[0].text if execution.results else None


@pytest.fixture()
def sandbox(image_url: str) -> Sandbox:
    return Sandbox.create(debug=True, sandbox_url=image_url)


def test_state_output_and_values(sandbox: Sandbox) -> None:
    sandbox.run_code("total <- 40", language="r")
    execution = sandbox.run_code('cat("adding\\n"); total + 2', language="r")
    assert execution.logs.stdout == ["adding\n"]
    assert _value(execution) == "[1] 42"
    frame = sandbox.run_code("data.frame(a = 1:2, b = c('x', 'y'))", language="r")
    assert "<table" in (frame.results[0].html or "")


def test_errors(sandbox: Sandbox) -> None:
    execution = sandbox.run_code('stop("it broke")', language="r")
    assert execution.error is not None
    assert "it broke" in execution.error.value
    missing = sandbox.run_code("no_such_function()", language="r")
    assert missing.error is not None and "no_such_function" in missing.error.value
    assert _value(sandbox.run_code("1 + 1", language="r")) == "[1] 2"


def test_environment_variables(sandbox: Sandbox) -> None:
    code = 'cat(Sys.getenv("ONLY_NOW", unset = "unset"))'
    value = 'say "now" — ünïcode\n\\'
    shown = sandbox.run_code(code, language="r", envs={"ONLY_NOW": value})
    assert "".join(shown.logs.stdout) == value
    assert sandbox.run_code(code, language="r").logs.stdout == ["unset"]


def test_a_context_with_its_cwd_restarts_and_timeouts(sandbox: Sandbox) -> None:
    context = sandbox.create_code_context(language="r", cwd="/tmp")
    try:
        assert context.language == "r"
        assert _value(sandbox.run_code("getwd()", context=context)) == '[1] "/tmp"'
        sandbox.run_code("kept <- 'still here'", context=context)
        with pytest.raises(TimeoutException):
            sandbox.run_code("repeat {}", context=context, timeout=2)
        assert _value(sandbox.run_code("kept", context=context, timeout=20)) == '[1] "still here"'
        sandbox.restart_code_context(context)
        assert _value(sandbox.run_code("exists('kept')", context=context)) == "[1] FALSE"
    finally:
        sandbox.remove_code_context(context)


def test_common_packages_load(sandbox: Sandbox) -> None:
    code = "suppressMessages({library(ggplot2); library(dplyr); library(data.table); library(MASS)}); 'ok'"
    assert _value(sandbox.run_code(code, language="r")) == '[1] "ok"'
