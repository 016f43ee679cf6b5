"""Language names, kernel commands, and the environment code sent to kernels."""

from __future__ import annotations

import json
import os
import subprocess

from hutch.interpreter import languages


def test_normalize():
    assert languages.normalize(None) == "python"
    assert languages.normalize(" Bash ") == "bash"
    assert languages.normalize("JS") == "javascript"
    assert languages.normalize("ts") == "typescript"


def test_kernels():
    assert languages.kernel_command("python").interrupt_mode == "signal"
    assert languages.kernel_command("javascript") == languages.kernel_command("typescript")
    assert languages.kernel_command("cobol") is None


def test_python_env_code_round_trips_any_value():
    namespace: dict = {}
    values = {"A": 'it\'s "both"\n\\', "B": ""}
    exec(languages.set_env_code("python", values), namespace)
    try:
        assert {k: os.environ[k] for k in values} == values
    finally:
        exec(languages.unset_env_code("python", list(values)), namespace)
    assert not set(values) & set(os.environ)
    assert "_k" not in namespace


def test_bash_env_code_quotes_values_and_skips_impossible_names():
    code = languages.set_env_code("bash", {"A": "a 'b' $c", "not-a-name": "x"})
    output = subprocess.run(["bash", "-c", f'{code}\necho "$A"'], capture_output=True, text=True)
    assert output.stdout == "a 'b' $c\n" and not output.stderr
    assert languages.unset_env_code("bash", ["A", "bad name"]) == "unset A"


def test_javascript_env_code():
    values = {"A": 'it\'s "both"\n\\', "B": ""}
    script = (
        languages.set_env_code("javascript", values)
        + "\nconst seen = {A: Deno.env.get('A'), B: Deno.env.get('B')};\n"
        + languages.unset_env_code("javascript", ["A"])
        + "\nconsole.log(JSON.stringify([seen, Deno.env.get('A') ?? null]));"
    )
    deno = languages.kernel_command("javascript").argv[0]
    output = subprocess.run(
        [deno, "eval", script], capture_output=True, text=True, env={**os.environ, "NO_COLOR": "1"}
    )
    assert json.loads(output.stdout) == [values, None]
