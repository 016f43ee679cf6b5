"""Java contexts (JShell driven by ``hutch/interpreter/java``) in the built image, through the official SDK;
and the code that sets environment variables in them."""

from __future__ import annotations

import runpy
import time
from pathlib import Path

import pytest
from e2b import TimeoutException
from e2b_code_interpreter import Sandbox

from hutch.interpreter import languages

from .conftest import needs_image

KERNEL = Path(languages.__file__).with_name("java") / "kernel.py"


@pytest.fixture(scope="module")
def java_kernel() -> dict:
    """``java/kernel.py``'s names, without starting a kernel."""
    return runpy.run_path(str(KERNEL))


def test_env_code_round_trips_any_value(java_kernel: dict):
    """What the driver receives (NUL-separated UTF-8) holds the values exactly; other cells are Java."""
    values = {"A": 'it\'s "both"\n\\ é ✓ \U0001f600', "B": "", "C": "x=y\r\n"}
    code = "\n".join([languages.set_env_code("java", values), languages.unset_env_code("java", ["A", "D"])])
    requests = java_kernel["env_requests"](code)
    assert [kind for kind, _ in requests] == [b"v", b"u"]
    texts = requests[0][1].decode().split("\0")
    assert dict(zip(texts[::2], texts[1::2], strict=True)) == values
    assert requests[1][1].decode().split("\0") == ["A", "D"]
    assert java_kernel["env_requests"]("int x = 1;\n// " + code) is None


def test_string_values_are_shown_as_they_are(java_kernel: dict):
    shown = java_kernel["shown"]
    assert shown("String", '"a\\n\\"b\\"\\\\"') == 'a\n"b"\\'
    assert shown("String", '"tab\\there \\001"') == "tab\there \x01"
    assert shown("char", "'\\''") == "'"
    assert shown("int[]", "int[2] { 1, 2 }") == "int[2] { 1, 2 }"


@needs_image
class TestImage:
    def test_state_output_and_values(self, image_url: str):
        sandbox = Sandbox.create(debug=True, sandbox_url=image_url)
        assert sandbox.run_code("int total = 40;", language="java").error is None
        execution = sandbox.run_code('System.out.println("adding é ✓"); total + 2', language="java")
        assert execution.logs.stdout == ["adding é ✓\n"]
        assert execution.text == "42"
        assert sandbox.run_code('"two\\nlines"', language="java").text == "two\nlines"
        assert sandbox.run_code("List.of(1, 2, 3)", language="java").text == "[1, 2, 3]"
        err = sandbox.run_code('System.err.println("to stderr"); int quiet = 1;', language="java")
        assert err.logs.stderr == ["to stderr\n"] and err.text is None

    def test_output_streams_while_the_cell_runs(self, image_url: str):
        sandbox = Sandbox.create(debug=True, sandbox_url=image_url)
        seen: list[tuple[str, float]] = []
        code = 'System.out.println("first"); Thread.sleep(1500); System.out.println("second");'
        sandbox.run_code(
            code, language="java", on_stdout=lambda out: seen.append((out.line, time.monotonic()))
        )
        finished = time.monotonic()
        assert [line for line, _ in seen] == ["first\n", "second\n"]
        assert finished - seen[0][1] > 1
        many = sandbox.run_code("for (int i = 0; i < 200000; i++) System.out.println(i);", language="java")
        assert "".join(many.logs.stdout).split() == [str(i) for i in range(200000)]

    def test_compile_error(self, image_url: str):
        sandbox = Sandbox.create(debug=True, sandbox_url=image_url)
        execution = sandbox.run_code("int y = undefinedVariable + 1;", language="java")
        assert execution.error.name == "CompilationException"
        assert "cannot find symbol" in execution.error.value
        assert "undefinedVariable" in execution.error.value
        assert "int y = undefinedVariable + 1;" in execution.error.traceback
        assert sandbox.run_code("1 + 1", language="java").text == "2"

    def test_runtime_exception(self, image_url: str):
        sandbox = Sandbox.create(debug=True, sandbox_url=image_url)
        thrown = sandbox.run_code('throw new IllegalStateException("boom")', language="java")
        assert (thrown.error.name, thrown.error.value) == ("java.lang.IllegalStateException", "boom")
        sandbox.run_code(
            "class Parser { static int parse(String s) { return Integer.parseInt(s); } }", language="java"
        )
        execution = sandbox.run_code('int before = 1;\nParser.parse("x");\nint after = 2;', language="java")
        assert execution.error.name == "java.lang.NumberFormatException"
        assert execution.error.value == 'For input string: "x"'
        lines = execution.error.traceback.split("\n")
        assert lines[0] == 'java.lang.NumberFormatException: For input string: "x"'
        assert any(line.startswith("\tat java.lang.Integer.parseInt(") for line in lines)
        assert any(line.startswith("\tat Parser.parse(") for line in lines)
        # the snippets before the failing one ran, those after it did not
        assert sandbox.run_code("before", language="java").text == "1"
        assert sandbox.run_code("after", language="java").error.name == "CompilationException"

    def test_a_class_and_a_method_used_in_the_next_cell(self, image_url: str):
        sandbox = Sandbox.create(debug=True, sandbox_url=image_url)
        context = sandbox.create_code_context(language="java")
        try:
            defined = sandbox.run_code(
                "record Point(int x, int y) {}\n"
                "class Shape { final Point corner; Shape(Point corner) { this.corner = corner; } }\n"
                "int area(Shape shape) { return shape.corner.x() * shape.corner.y(); }",
                context=context,
            )
            assert defined.error is None and defined.text is None
            assert sandbox.run_code("area(new Shape(new Point(6, 7)))", context=context).text == "42"
        finally:
            sandbox.remove_code_context(context)

    def test_a_context_with_its_cwd(self, image_url: str):
        sandbox = Sandbox.create(debug=True, sandbox_url=image_url)
        directory = "/home/user/java-cwd"
        sandbox.run_code(f"import os; os.makedirs({directory!r}, exist_ok=True)")
        context = sandbox.create_code_context(language="java", cwd=directory)
        try:
            assert context.language == "java" and context.cwd == directory
            code = 'Files.writeString(Path.of("here.txt"), "x"); Path.of("here.txt").toAbsolutePath()'
            assert sandbox.run_code(code, context=context).text == f"{directory}/here.txt"
        finally:
            sandbox.remove_code_context(context)

    def test_environment_variables_per_call(self, image_url: str):
        sandbox = Sandbox.create(debug=True, sandbox_url=image_url)
        value = 'say "now"\nand é ✓'
        read = 'String.valueOf(System.getenv("ONLY_NOW"))'
        assert sandbox.run_code(read, language="java", envs={"ONLY_NOW": value}).text == value
        child = (
            'new String(new ProcessBuilder("sh", "-c", "printf %s \\"$ONLY_NOW\\"").start()'
            ".getInputStream().readAllBytes(), java.nio.charset.StandardCharsets.UTF_8)"
        )
        assert sandbox.run_code(child, language="java", envs={"ONLY_NOW": value}).text == value
        assert sandbox.run_code(read, language="java").text == "null"
        assert sandbox.run_code(child, language="java").text == ""

    def test_a_timeout_interrupts_the_cell(self, image_url: str):
        sandbox = Sandbox.create(debug=True, sandbox_url=image_url)
        context = sandbox.create_code_context(language="java")
        try:
            sandbox.run_code('String kept = "still here";', context=context)
            with pytest.raises(TimeoutException):
                sandbox.run_code("while (true) {}", context=context, timeout=2)
            started = time.monotonic()
            assert sandbox.run_code("kept", context=context, timeout=10).text == "still here"
            assert time.monotonic() - started < 5
        finally:
            sandbox.remove_code_context(context)

    def test_restart_and_exit_lose_the_state(self, image_url: str):
        sandbox = Sandbox.create(debug=True, sandbox_url=image_url)
        context = sandbox.create_code_context(language="java")
        try:
            sandbox.run_code("int before = 1;", context=context)
            sandbox.restart_code_context(context)
            assert sandbox.run_code("before", context=context).error.name == "CompilationException"
            sandbox.run_code("int again = 2;", context=context)
            exited = sandbox.run_code('System.out.println("bye"); System.exit(3);', context=context)
            assert exited.error.name == "ContextRestarting"
            assert exited.logs.stdout == ["bye\n"]  # written before the JVM ended
            assert sandbox.run_code("again", context=context).error.name == "CompilationException"
            assert sandbox.run_code("1 + 1", context=context).text == "2"
        finally:
            sandbox.remove_code_context(context)
