"""An AI agent in miniature: a model writes numpy code, a Hutch sandbox runs it, the agent prints the result.

``canned_model_answer`` stands in for the language model: it returns the same program whatever the prompt, so
the example runs without a model. numpy is installed in Hutch's base template.

Start Hutch first (``make up`` or ``hutch up``); it writes ``.env.local`` with the client settings.
Run this from that directory or one below it::

    python examples/agent_numpy.py
"""

from __future__ import annotations

import sys

import hutch

PROMPT = "Solve the linear system 3x + y = 9, x + 2y = 8 with numpy and print x and y."
CODE_PATH = "/home/user/agent/solution.py"


def canned_model_answer(prompt: str) -> str:
    """Stand-in for a language model: the numpy program a model would write for ``prompt``."""
    return (
        "import numpy as np\n"
        "\n"
        "a = np.array([[3.0, 1.0], [1.0, 2.0]])\n"
        "b = np.array([9.0, 8.0])\n"
        "x, y = np.linalg.solve(a, b)\n"
        'print(f"numpy {np.__version__}")\n'
        'print(f"x = {x:.1f}, y = {y:.1f}")\n'
    )


def main() -> int:
    code = canned_model_answer(PROMPT)
    print(f"prompt: {PROMPT}")
    with hutch.Sandbox.create() as sandbox:
        print(f"sandbox: {sandbox.sandbox_id}")
        sandbox.filesystem.write(CODE_PATH, code)
        output = sandbox.process.start_and_wait(f"python3 {CODE_PATH}")
    if output.exit_code != 0:
        print(f"the generated code failed (exit code {output.exit_code}):\n{output.stderr}")
        return 1
    print(f"result:\n{output.stdout}", end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
