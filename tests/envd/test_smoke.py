"""envd answers the SDK's most basic calls."""

from __future__ import annotations


def test_run_echo(sandbox, workdir):
    result = sandbox.commands.run("echo hi; whoami", cwd=workdir)
    assert result.stdout.splitlines()[0] == "hi"
    assert result.exit_code == 0
