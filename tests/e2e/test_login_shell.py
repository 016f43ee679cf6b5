"""The login shell every command of a base sandbox runs in (``bash -l -c``), on each engine: root's and
the user's PATH, HOME and USER and their prompts are Debian's, and the login files start no program for
nothing (each costs tens of milliseconds under gVisor)."""

from __future__ import annotations

import pytest

USER_PATH = "/usr/local/bin:/usr/bin:/bin:/usr/local/games:/usr/games"
ROOT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
LOGINS = [("user", USER_PATH, "/home/user", "$ "), ("root", ROOT_PATH, "/root", "# ")]
BASH_PS1 = r"${debian_chroot:+($debian_chroot)}\u@\h:\w\$ "


@pytest.mark.parametrize(("user", "path", "home", "sh_prompt"), LOGINS)
def test_the_login_shell_shows_what_debian_shows(sandbox, user, path, home, sh_prompt):
    shown = sandbox.commands.run('echo "$PATH|$HOME|$USER"', user=user).stdout
    assert shown == f"{path}|{home}|{user}\n"
    # sh (dash) has no EUID: its login still finds the same PATH and its own prompt.
    shown = sandbox.commands.run("""sh -l -c 'echo "$PATH|$HOME"'""", user=user).stdout
    assert shown == f"{path}|{home}\n"
    shown = sandbox.commands.run("""sh -l -i -c 'echo "[$PS1]"' 2>/dev/null""", user=user).stdout
    assert shown == f"[{sh_prompt}]\n"
    shown = sandbox.commands.run("""bash -l -i -c 'echo "[$PS1]"' 2>/dev/null""", user=user).stdout
    assert shown == f"[{BASH_PS1}]\n"


@pytest.mark.parametrize("user", ["user", "root"])
def test_the_login_files_start_no_program(sandbox, user):
    # bash -x traces every command the login files run: only tests and assignments, no ``id``, ``mesg``
    # or ``clear_console`` (the logout file runs on ``exit``).
    trace = sandbox.commands.run("bash -l -x -c 'exit 0' 2>&1", user=user).stdout
    assert "+ exit 0" in trace
    for program in ("id", "mesg", "clear_console"):
        assert not [line for line in trace.splitlines() if line.lstrip("+ ").startswith(program)], trace


def test_a_command_has_the_users_ids_and_no_capability(sandbox):
    # envd starts it from a thread that alone took the user's ids (root kept as its saved uid to come back)
    status = sandbox.commands.run("grep -E '^(Uid|Gid|CapPrm|CapEff):' /proc/self/status").stdout.split("\n")
    assert [line.split() for line in status if line] == [
        ["Uid:", *["1000"] * 4],
        ["Gid:", *["1000"] * 4],
        ["CapPrm:", "0000000000000000"],
        ["CapEff:", "0000000000000000"],
    ]


def test_a_tenant_euid_does_not_choose_the_path(sandbox):
    # bash would take an EUID from the environment as its own: the profile asks the shell for root instead
    shown = sandbox.commands.run('echo "$PATH"; sh -l -c \'echo "$PATH"\'', envs={"EUID": "0"}).stdout
    assert shown == f"{USER_PATH}\n{USER_PATH}\n"
