"""Root in a crun sandbox is not root on the host: the sandbox runs in a user namespace whose ids are an
unprivileged host range, what it writes is owned by that range on the host, and a setuid program it plants
does nothing for a host user. What root and ``sudo`` could do inside before still works, and what is stored
(snapshots) keeps the sandbox's own ids, for sandboxes of either engine made from it."""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import subprocess
from pathlib import Path

import pytest
from e2b import Sandbox

from hutch.runtime.idmap import FIRST
from tests.stack import ENGINES, WORKER, Stack, start_stack, stop_stack

USER_ID = 1000  # ``user`` in the base template
NOBODY = 65534
RESTART_SUBNET = f"10.{60 + WORKER}.0.0/16"  # the restart test's own stack


@pytest.fixture(scope="module")
def sandbox(stack: Stack):
    sandbox = stack.create("crun")
    yield sandbox
    sandbox.kill()


def _host_path(stack: Stack, sandbox: Sandbox, part: str, path: str) -> Path:
    """Where ``path`` of the sandbox is on the host: in its ``rootfs`` (the overlay) or its ``upper``."""
    directory = stack.data_dir / "sandboxes" / sandbox.sandbox_id
    top = directory / "rootfs" if part == "rootfs" else directory / "layer" / "upper"
    return top / path.lstrip("/")


def test_sandbox_root_is_an_unprivileged_host_user(sandbox: Sandbox) -> None:
    assert sandbox.commands.run("id -u", user="root").stdout.strip() == "0"
    uid_map = sandbox.commands.run("cat /proc/self/uid_map", user="root").stdout.split()
    gid_map = sandbox.commands.run("cat /proc/self/gid_map", user="root").stdout.split()
    assert uid_map == gid_map == ["0", str(FIRST), "65536"]


def test_files_written_inside_are_owned_by_the_mapped_ids_on_the_host(stack: Stack, sandbox: Sandbox) -> None:
    name = secrets.token_hex(4)
    sandbox.commands.run(f"echo x > /opt/root-{name}", user="root")
    sandbox.commands.run(f"echo x > /home/user/user-{name}", user="user")
    by_root = os.stat(_host_path(stack, sandbox, "upper", f"/opt/root-{name}"))
    by_user = os.stat(_host_path(stack, sandbox, "upper", f"/home/user/user-{name}"))
    assert (by_root.st_uid, by_root.st_gid) == (FIRST, FIRST)
    assert (by_user.st_uid, by_user.st_gid) == (FIRST + USER_ID, FIRST + USER_ID)
    # Inside, the same files have the sandbox's own ids.
    owners = sandbox.commands.run(f"stat -c %u:%g /opt/root-{name} /home/user/user-{name}").stdout.split()
    assert owners == ["0:0", f"{USER_ID}:{USER_ID}"]


def test_a_planted_setuid_program_is_inert_for_host_users(stack: Stack, sandbox: Sandbox) -> None:
    """Root in the sandbox makes a setuid-root copy of ``id``; a host user running it through the host's
    mount of the sandbox's root stays who it is."""
    program = f"/opt/suid-{secrets.token_hex(4)}"
    sandbox.files.write(program, Path(shutil.which("id") or "/usr/bin/id").read_bytes())
    sandbox.commands.run(f"chown 0:0 {program} && chmod 4755 {program}", user="root")
    # The host user is given the file itself (its directories are not theirs to pass).
    fd = os.open(_host_path(stack, sandbox, "rootfs", program), os.O_PATH)
    try:
        ran = subprocess.run(
            [
                "setpriv",
                f"--reuid={NOBODY}",
                f"--regid={NOBODY}",
                "--clear-groups",
                f"/proc/self/fd/{fd}",
                "-u",
            ],
            pass_fds=(fd,),
            capture_output=True,
            text=True,
            timeout=30,
        )
    finally:
        os.close(fd)
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout.strip() == str(NOBODY)


def test_sysfs_shows_only_the_sandboxs_own_interfaces(sandbox: Sandbox) -> None:
    assert sandbox.commands.run("ls /sys/class/net").stdout.split() == ["eth0", "lo"]


def test_root_and_sudo_keep_their_powers_inside(sandbox: Sandbox) -> None:
    assert sandbox.commands.run("sudo -n id -u", user="user").stdout.strip() == "0"
    name = f"u{secrets.token_hex(3)}"
    script = (
        f"useradd -m {name} && id -u {name} && touch /tmp/{name} && chown user:user /tmp/{name}"
        f" && stat -c %U /tmp/{name} && stat -c %U /home/{name}"
        ' && python3 -c \'import socket; s = socket.socket(); s.bind(("0.0.0.0", 80)); print("bound")\''
    )
    lines = sandbox.commands.run(script, user="root").stdout.split()
    assert lines[1:] == ["user", name, "bound"]


@pytest.mark.parametrize("engine", ENGINES)
def test_a_snapshot_keeps_the_sandboxs_own_ids(stack: Stack, sandbox: Sandbox, engine: str) -> None:
    """A crun sandbox's layer is stored with its ids shifted back: a sandbox made from its snapshot, on
    either engine, sees the owners the first one saw."""
    name = secrets.token_hex(4)
    sandbox.commands.run(f"echo x > /home/user/mine-{name}", user="user")
    sandbox.commands.run(f"echo x > /opt/root-{name} && chmod 4755 /opt/root-{name}", user="root")
    info = sandbox.create_snapshot()
    try:
        child = stack.create(engine, template=info.snapshot_id)
        try:
            owners = child.commands.run(f"stat -c %u:%g:%a /home/user/mine-{name} /opt/root-{name}")
            assert owners.stdout.split() == [f"{USER_ID}:{USER_ID}:644", "0:0:4755"]
            if engine == "crun":  # (gVisor runs everything with ``no_new_privs``: no sudo there)
                assert child.commands.run("sudo -n id -u", user="user").stdout.strip() == "0"
        finally:
            child.kill()
    finally:
        Sandbox.delete_snapshot(info.snapshot_id, **stack.opts)


def test_a_sandbox_adopted_after_a_crash_is_snapshotted_with_its_own_ids(tmp_path: Path) -> None:
    """A restarted node shifts an adopted crun sandbox's layer back when it copies it, as it did before."""
    first = start_stack(tmp_path, subnet=RESTART_SUBNET)
    ports = (first.api_port, first.proxy_port)
    sandbox = first.create("crun")
    sandbox.commands.run("echo x > /home/user/mine", user="user")
    os.killpg(first.process.pid, signal.SIGKILL)
    first.process.wait()
    second = start_stack(tmp_path, subnet=RESTART_SUBNET, ports=ports)
    second.seen.update(first.seen)
    try:
        info = Sandbox.connect(sandbox.sandbox_id, **second.opts).create_snapshot()
        child = second.create("crun", template=info.snapshot_id)
        try:
            owner = child.commands.run("stat -c %u:%g /home/user/mine").stdout.strip()
            assert owner == f"{USER_ID}:{USER_ID}"
        finally:
            child.kill()
            Sandbox.delete_snapshot(info.snapshot_id, **second.opts)
            Sandbox.kill(sandbox.sandbox_id, **second.opts)
    finally:
        stop_stack(second)
