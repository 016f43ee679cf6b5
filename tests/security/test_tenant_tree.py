"""A tenant's links never lead the host out of the tenant's tree: through the official SDK, against the real
stack (with an uplink, so that every sandbox gets a ``/etc/resolv.conf`` from the host), on both engines.

The tenant points ``/etc/hosts``, ``/etc/hostname``, ``/etc/resolv.conf`` and ``/tmp`` at a directory of
the host that this test made (canary files, and a name that must never appear there): in a template it
builds, and in a running sandbox before each thing the host does to the sandbox's files (start, a
filesystem pause and the boot after it, a snapshot and the sandboxes created from it, a fork, a node
restart). Another sandbox keeps swapping its ``/etc`` for such a link while the host pauses, snapshots and
copies it. After each step the host's directory is as it was.

"Outside" for the uplink is a network namespace made here: nothing leaves the machine.
"""

from __future__ import annotations

import os
import secrets
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import pytest
from e2b import Sandbox, Template

from tests.netns import joined_namespace
from tests.stack import ENGINES, WORKER, Stack, start_stack, stop_stack

SUBNET = f"10.{120 + WORKER}.0.0/16"
RESTART_SUBNET = f"10.{140 + WORKER}.0.0/16"
HOST_IP, OUTSIDE_IP = f"10.246.{WORKER}.1", f"10.246.{WORKER}.2"
CANARIES = {"hosts": "host's hosts\n", "resolv.conf": "host's resolv.conf\n", "keep": "host's file\n"}
ABSENT = "absent"  # a name the host's directory must never gain
SWAP_SECONDS = 120  # how long the swapping sandbox swaps at most
RESTART_TIMEOUT_S = 120  # how long the node may take to stop
ATTEMPTS = 20  # tries of an SDK call that may meet the swapping sandbox without its /etc
T = TypeVar("T")

# Run as root in a sandbox: every path the host writes becomes a link to the host's directory (``/tmp`` too
# where the engine lets it go: gVisor's is a mount point that root in the sandbox cannot replace).
PLANT = """
ln -sfn {host}/hosts /etc/hosts
ln -sfn {host}/{absent} /etc/hostname
ln -sfn {host}/resolv.conf /etc/resolv.conf
rm -rf /tmp 2>/dev/null && ln -s {host} /tmp
true
"""

# Swaps ``/etc`` with a link to the host's directory (atomically where the kernel can, else by renames),
# leaving it a link a fifth of the time, until a deadline; counts its rounds in /root/swaps. ``/etc`` is
# first copied into the writable layer alone (overlayfs renames no directory of a lower layer).
SWAP = """
import ctypes, os, subprocess, time
subprocess.run("cp -a /etc /etc.new && rm -rf /etc && mv /etc.new /etc", shell=True, check=True)
libc = ctypes.CDLL(None, use_errno=True)
os.symlink({host!r}, "/etc-link")
deadline = time.monotonic() + {seconds}
def exchange():
    if libc.renameat2(-100, b"/etc", -100, b"/etc-link", 2) != 0:
        os.rename("/etc", "/etc-real"); os.rename("/etc-link", "/etc")
        os.rename("/etc", "/etc-link"); os.rename("/etc-real", "/etc")
rounds = 0
while time.monotonic() < deadline:
    exchange(); time.sleep(0.001); exchange(); time.sleep(0.004)
    rounds += 1
    if rounds % 100 == 0:
        with open("/root/swaps", "w") as out:
            out.write(str(rounds))
"""


@pytest.fixture(scope="module")
def uplink() -> Iterator[str]:
    """A veth to a network namespace of its own, for the stack to use as its uplink."""
    with joined_namespace("tt", HOST_IP, OUTSIDE_IP, 24) as joined:
        yield joined.host_if


@pytest.fixture(scope="module")
def tenant_stack(tmp_path_factory, uplink) -> Iterator[Stack]:
    if os.geteuid() != 0:
        pytest.fail("the tenant tree tests need root")
    stack = start_stack(
        tmp_path_factory.mktemp("tenant-tree"),
        subnet=SUBNET,
        settings={"HUTCH_RUNTIME__EGRESS_INTERFACE": uplink},
    )
    yield stack
    stop_stack(stack)


def _canaries(directory: Path) -> Path:
    directory.mkdir()
    for name, content in CANARIES.items():
        (directory / name).write_text(content)
    return directory


def _untouched(host: Path) -> None:
    assert {path.name: path.read_text() for path in host.iterdir()} == CANARIES


@pytest.fixture()
def host(tmp_path) -> Path:
    """The host's directory that a sandbox's links point to."""
    return _canaries(tmp_path / "host")


@pytest.fixture(scope="module")
def module_host(tmp_path_factory) -> Path:
    return _canaries(tmp_path_factory.mktemp("tenant-tree-host") / "host")


@pytest.fixture(scope="module")
def hostile_template(tenant_stack: Stack, module_host: Path) -> str:
    """A template built through the SDK whose identity files, resolv.conf and /tmp link to the host."""
    name = f"hostile-{secrets.token_hex(4)}"
    plant = PLANT.format(host=module_host, absent=ABSENT).replace("\n", " ; ").strip(" ;")
    template = Template().from_template("base").run_cmd(plant, user="root")
    Template.build(template, name, request_timeout=60, **tenant_stack.opts)
    _untouched(module_host)  # building started it once
    return name


def _plant(sandbox: Sandbox, host: Path) -> None:
    sandbox.commands.run(PLANT.format(host=host, absent=ABSENT), user="root")


def _retried(action: Callable[[], T]) -> T:
    """``action``, tried again while the sandbox it talks to has no ``/etc`` a moment (bounded)."""
    for attempt in range(ATTEMPTS):
        try:
            return action()
        except Exception:
            if attempt == ATTEMPTS - 1:
                raise
            time.sleep(0.2)
    raise AssertionError("unreachable")


def _check_tmp(sandbox: Sandbox, host: Path) -> None:
    """gVisor's ``/tmp`` is the sandbox's own directory: what is written there stays off the host."""
    result = sandbox.commands.run("test ! -L /tmp && touch /tmp/from-sandbox && ls /tmp", user="root")
    assert "from-sandbox" in result.stdout and "keep" not in result.stdout
    _untouched(host)


@pytest.mark.parametrize("engine", ENGINES)
def test_a_template_with_links_to_the_host(
    tenant_stack: Stack, hostile_template: str, module_host: Path, engine: str
) -> None:
    sandbox = tenant_stack.create(engine, template=hostile_template)
    try:
        _untouched(module_host)
        assert sandbox.commands.run("cat /etc/hostname", user="root").stdout == f"{sandbox.sandbox_id}\n"
        if engine == "gvisor":
            _check_tmp(sandbox, module_host)
        sandbox.pause(mode="filesystem")
        _untouched(module_host)
        resumed = Sandbox.connect(sandbox.sandbox_id, **tenant_stack.opts)
        assert resumed.commands.run("echo back", user="root").stdout == "back\n"
        if engine == "gvisor":
            _check_tmp(resumed, module_host)
        _untouched(module_host)
    finally:
        sandbox.kill()


def _discard(stack: Stack, sandboxes: list[Sandbox], snapshots: list[str]) -> None:
    """Kill the sandboxes, then delete the snapshots (a gVisor snapshot's checkpoint would outlive the
    stack in the shared cache)."""
    for sandbox in sandboxes:
        sandbox.kill()
    for snapshot_id in snapshots:
        Sandbox.delete_snapshot(snapshot_id, **stack.opts)


@pytest.mark.parametrize("engine", ENGINES)
def test_links_planted_in_a_running_sandbox(tenant_stack: Stack, host: Path, engine: str) -> None:
    """Links planted before a filesystem pause, a snapshot (and sandboxes of it on both engines) and a fork
    (gVisor): the host writes inside the sandboxes' roots only."""
    sandbox = tenant_stack.create(engine)
    children: list[Sandbox] = []
    snapshots: list[str] = []
    try:
        _plant(sandbox, host)
        sandbox.pause(mode="filesystem")
        resumed = Sandbox.connect(sandbox.sandbox_id, **tenant_stack.opts)
        assert resumed.commands.run("echo back", user="root").stdout == "back\n"
        _untouched(host)
        _plant(resumed, host)  # again: the boot may have put files back
        snapshot = resumed.create_snapshot()
        snapshots.append(snapshot.snapshot_id)
        for child_engine in ENGINES:
            child = tenant_stack.create(child_engine, template=snapshot.snapshot_id)
            children.append(child)
            _untouched(host)
            if child_engine == "gvisor":
                _check_tmp(child, host)
        if engine == "gvisor":
            forks = resumed.fork(count=2, **tenant_stack.opts)
            assert all(isinstance(fork, Sandbox) for fork in forks), forks
            children += forks
            tenant_stack.seen.update(fork.sandbox_id for fork in forks)
            _untouched(host)
            _check_tmp(forks[0], host)
    finally:
        _discard(tenant_stack, [*children, sandbox], snapshots)
    _untouched(host)


@pytest.mark.parametrize("engine", ENGINES)
def test_a_sandbox_swapping_etc_while_the_host_works(tenant_stack: Stack, host: Path, engine: str) -> None:
    """The host snapshots, copies and pauses a sandbox that keeps swapping its ``/etc`` for a link to the
    host's directory. Sandboxes of its snapshot may lack a usable ``/etc`` (the tenant's doing); the host's
    directory never changes."""
    sandbox = tenant_stack.create(engine)
    children: list[Sandbox] = []
    snapshots: list[str] = []
    try:
        sandbox.files.write("/root/swap.py", SWAP.format(host=str(host), seconds=SWAP_SECONDS))
        sandbox.commands.run("python3 /root/swap.py", user="root", background=True, timeout=0)
        assert int(_retried(lambda: sandbox.files.read("/root/swaps", user="root"))) > 0
        for _ in range(3):
            snapshot = _retried(sandbox.create_snapshot)
            snapshots.append(snapshot.snapshot_id)
            for child_engine in ENGINES:
                try:
                    children.append(tenant_stack.create(child_engine, template=snapshot.snapshot_id))
                except Exception:
                    pass  # its /etc may have been the link: the tenant broke its own copy
                _untouched(host)
        if engine == "gvisor":
            forks = _retried(lambda: sandbox.fork(count=1, **tenant_stack.opts))
            children += [fork for fork in forks if isinstance(fork, Sandbox)]
            tenant_stack.seen.update(fork.sandbox_id for fork in children)
            _untouched(host)
        _retried(sandbox.pause)
        _untouched(host)
        Sandbox.connect(sandbox.sandbox_id, **tenant_stack.opts)
        _retried(lambda: sandbox.pause(mode="filesystem"))
        _untouched(host)
        try:
            Sandbox.connect(sandbox.sandbox_id, **tenant_stack.opts)
        except Exception:
            pass  # it may have stopped with /etc the link, and cannot boot: the tenant's doing
        _untouched(host)
    finally:
        _discard(tenant_stack, [*children, sandbox], snapshots)
    _untouched(host)


def test_links_survive_a_node_restart(tmp_path: Path, host: Path) -> None:
    """A gVisor sandbox made from a crun sandbox's snapshot (``/tmp`` a link there), with links planted and
    paused to its files, through a restart of the node, then resumed."""
    first = start_stack(tmp_path, subnet=RESTART_SUBNET)
    try:
        parent = first.create("crun")
        _plant(parent, host)
        snapshot = parent.create_snapshot()
        parent.kill()
        paused = first.create("gvisor", template=snapshot.snapshot_id)
        _plant(paused, host)
        paused.pause(mode="filesystem")
        _untouched(host)
    finally:
        first.process.send_signal(signal.SIGTERM)  # the node stops; a paused sandbox stays for the next start
        first.process.wait(RESTART_TIMEOUT_S)
    second = start_stack(tmp_path, subnet=RESTART_SUBNET, ports=(first.api_port, first.proxy_port))
    second.seen.update(first.seen)
    try:
        resumed = Sandbox.connect(paused.sandbox_id, **second.opts)
        _check_tmp(resumed, host)
        resumed.kill()
        _untouched(host)
    finally:
        stop_stack(second)
    _untouched(host)
