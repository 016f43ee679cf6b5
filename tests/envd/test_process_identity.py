"""A command started as a user by envd's thread switch (``services/process/identity.py``): the process has
the user's ids, groups and no capability, exactly as a full switch gives; envd's threads all stay root,
and only the switching thread ever leaves root, for the moment of the start."""

from __future__ import annotations

import os
import pwd
import threading
from pathlib import Path

import pytest

from hutch.envd.services.process import identity
from hutch.envd.users import lookup

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="switching users needs root")

ZERO = "0000000000000000"


def _status(text: str) -> dict[str, str]:
    return {key: value.strip() for key, _, value in (line.partition(":") for line in text.splitlines())}


def test_the_user_command_has_the_users_ids_and_no_capability(sandbox, envd):
    assert identity.available()  # root with no ambient or inheritable capability: the thread switch is used
    entry = pwd.getpwnam(envd.user)
    status = _status(sandbox.commands.run("cat /proc/self/status").stdout)
    assert status["Uid"].split() == [str(entry.pw_uid)] * 4
    assert status["Gid"].split() == [str(entry.pw_gid)] * 4
    groups = sorted(os.getgrouplist(envd.user, entry.pw_gid))
    assert sorted(int(group) for group in status["Groups"].split()) == groups
    for capabilities in ("CapInh", "CapPrm", "CapEff", "CapAmb"):
        assert status[capabilities] == ZERO, capabilities
    assert sandbox.commands.run("id -u", user="root").stdout == "0\n"


def test_envd_stays_root_in_every_thread(sandbox, envd):
    for _ in range(5):
        sandbox.commands.run("true")
    for task in Path(f"/proc/{envd.process.pid}/task").iterdir():
        status = _status((task / "status").read_text())
        assert status["Uid"].split() == ["0"] * 4 and status["Gid"].split() == ["0"] * 4, task.name


def test_only_the_switching_thread_leaves_root(test_user):
    user = lookup(test_user[0])
    assert user is not None
    before = (os.getresuid(), os.getresgid(), os.getgroups())
    inside: dict[str, object] = {}
    switched, seen = threading.Event(), threading.Event()

    def other() -> None:
        switched.wait(5)
        inside["other"] = os.getresuid()
        seen.set()

    watcher = threading.Thread(target=other)
    watcher.start()
    with identity.thread_as(user):
        inside["self"] = (os.getresuid(), os.getresgid(), sorted(os.getgroups()))
        switched.set()
        seen.wait(5)
    watcher.join()
    assert inside["self"] == ((user.uid, user.uid, 0), (user.gid,) * 3, sorted(user.group_ids()))
    assert inside["other"] == (0, 0, 0)
    assert (os.getresuid(), os.getresgid(), os.getgroups()) == before
