"""Languages a context can run: their kernels, and the code that sets or unsets environment variables."""

from __future__ import annotations

import functools
import json
import re
import shlex
import shutil
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

PYTHON = "python"
BASH = "bash"
JAVASCRIPT = "javascript"
TYPESCRIPT = "typescript"
R = "r"
JAVA = "java"
_ALIASES = {"js": JAVASCRIPT, "ts": TYPESCRIPT}
# bash cannot hold other names in its environment
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_SETUP = Path(__file__).with_name("kernel_setup.py")
_BASH_LAUNCHER = Path(__file__).with_name("bash_launcher.py")
_JAVA_KERNEL = Path(__file__).with_name("java") / "kernel.py"
# Compiled from java/*.java when the template is built.
_JAVA_DRIVER = _JAVA_KERNEL.with_name("classes") / "Driver.class"
# The Java kernel runs a cell whose lines start with this itself (``java/kernel.py``), never as Java.
_JAVA_ENV = "//hutch:env "
_IPYKERNEL = [
    sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}",
    # the extra display formats (e2b/data, e2b/chart, json), set up in a namespace of their own
    f"--IPKernelApp.exec_lines=__import__('runpy').run_path({str(_SETUP)!r});",
    "--InteractiveShell.colors=nocolor",
    "--PlainTextFormatter.max_seq_length=0",
    "--HistoryManager.enabled=False",
]  # fmt: skip


@dataclass(frozen=True)
class KernelCommand:
    """How to start a language's kernel and talk to it."""

    argv: list[str]
    interrupt_mode: str = "signal"
    transport: str = "ipc"
    env: dict[str, str] = field(default_factory=dict)
    # How long to keep listening after the kernel said it is done: Deno's kernel can publish a cell's
    # last output (its result, console output) just after its idle status.
    linger_s: float = 0.0


def normalize(language: str | None) -> str:
    """The language a request names: case-insensitive, ``js``/``ts`` short forms; ``python`` when unset."""
    if not language or not language.strip():
        return PYTHON
    name = language.strip().lower()
    return _ALIASES.get(name, name)


def kernel_command(language: str) -> KernelCommand | None:
    """The kernel for ``language``, or None when there is none."""
    if language == PYTHON:
        return KernelCommand(list(_IPYKERNEL))
    if language == BASH:
        run = f"__import__('runpy').run_path({str(_BASH_LAUNCHER)!r}, run_name='__main__')"
        return KernelCommand([sys.executable, "-c", run, "-f", "{connection_file}"])
    if language in (JAVASCRIPT, TYPESCRIPT) and (deno := _deno()) is not None:
        # Deno's kernel runs both; it binds TCP only and is interrupted by a message, not a signal
        return KernelCommand(
            [deno, "jupyter", "--kernel", "--conn", "{connection_file}"],
            interrupt_mode="message",
            transport="tcp",
            env={"NO_COLOR": "1"},
            linger_s=0.01,
        )
    if language == R and (r := shutil.which("R")) is not None:
        # IRkernel, from Debian (``r-cran-irkernel``); it serves Unix sockets as ipykernel does
        return KernelCommand([r, "--slave", "--no-save", "--no-restore", "-e", "IRkernel::main()",
                              "--args", "{connection_file}"])  # fmt: skip
    if language == JAVA and shutil.which("java") is not None and _JAVA_DRIVER.is_file():
        # JShell in a JVM driven by a Python kernel; interrupted by a message, which it passes on
        run = f"__import__('runpy').run_path({str(_JAVA_KERNEL)!r}, run_name='__main__')"
        return KernelCommand([sys.executable, "-c", run, "-f", "{connection_file}"], interrupt_mode="message")
    return None


@functools.cache
def _deno() -> str | None:
    """Deno from its PyPI package (which ships the binary), else from PATH."""
    try:
        from deno import find_deno_bin  # optional: only the javascript/typescript kernels need it

        return find_deno_bin()
    except (ImportError, FileNotFoundError):
        return shutil.which("deno")


def set_env_code(language: str, values: dict[str, str]) -> str:
    """Code that sets ``values`` in the kernel's environment (and so in its child processes)."""
    if not values:
        return ""
    if language == PYTHON:
        return f"__import__('os').environ.update({values!r})"
    if language in (JAVASCRIPT, TYPESCRIPT):
        return f"for (const [k, v] of Object.entries({json.dumps(values)})) Deno.env.set(k, v);"
    if language == R:
        names, texts = _r_strings(values), _r_strings(values.values())
        return f"invisible(do.call(Sys.setenv, setNames(as.list({texts}), {names})))"
    if language == JAVA:
        return f"{_JAVA_ENV}set {json.dumps(values)}"
    return "\n".join(
        f"export {name}={shlex.quote(value)}" for name, value in values.items() if _IDENTIFIER.fullmatch(name)
    )


def unset_env_code(language: str, names: list[str]) -> str:
    """Code that removes ``names`` from the kernel's environment."""
    if not names:
        return ""
    if language == PYTHON:
        return f"for _k in {names!r}: __import__('os').environ.pop(_k, None)\ndel _k"
    if language in (JAVASCRIPT, TYPESCRIPT):
        return f"for (const k of {json.dumps(names)}) Deno.env.delete(k);"
    if language == R:
        return f"invisible(Sys.unsetenv({_r_strings(names)}))"
    if language == JAVA:
        return f"{_JAVA_ENV}unset {json.dumps(names)}"
    return "unset " + " ".join(name for name in names if _IDENTIFIER.fullmatch(name))


def _r_strings(texts: Iterable[str]) -> str:
    """An R character vector of ``texts``: printable ASCII as it is, every other character as a ``\\U{…}``
    escape (R reads it the same whatever the kernel's locale)."""

    def literal(text: str) -> str:
        return (
            '"'
            + "".join(c if " " <= c <= "~" and c not in '"\\' else f"\\U{{{ord(c):x}}}" for c in text)
            + '"'
        )

    return f"c({', '.join(literal(text) for text in texts)})"
