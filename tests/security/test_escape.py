"""Escape probes: code in a sandbox, as its ``user`` and as its ``root``, tries to reach what it must not,
on each engine (crun and gVisor).

Each probe is a small program run in the sandbox through the official SDK. It prints ``BLOCKED`` when the
attack fails and ``ESCAPED: …`` when it works; the test asserts ``BLOCKED``.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest
from e2b import Sandbox

from tests.stack import ENGINES

USERS = ["user", "root"]

# Each probe: Python source whose last expression decides. ``attempt()`` runs the attack and returns a
# description of what it got; an exception (or a falsy result) means the attack failed.
PROBE = """
import ctypes, errno, os, socket, sys, time
libc = ctypes.CDLL(None, use_errno=True)
def refused(ret):  # ENOSYS: gVisor does not implement the call at all
    return ret == -1 and ctypes.get_errno() in (errno.EPERM, errno.EACCES, errno.EROFS, errno.ENOSYS)
def rewrite(path):  # write a file's own content back: harmless, but only possible with write access
    value = open(path).read()
    with open(path, "w") as f:
        f.write(value or "\\n")
    return "wrote " + path
def attempt():
{body}
try:
    got = attempt()
except Exception as err:
    got = None
print("ESCAPED: " + str(got) if got else "BLOCKED")
"""


def _probe(sandbox: Sandbox, body: str, user: str) -> str:
    code = PROBE.format(body="\n".join("    " + line for line in body.strip().splitlines()))
    path = f"/tmp/probe-{uuid.uuid4().hex}.py"
    sandbox.files.write(path, code)
    result = sandbox.commands.run(f"python3 {path}", user=user, timeout=30)
    return result.stdout.strip()


@pytest.fixture(scope="module")
def host_secret():
    """A file on the host that no sandbox may read."""
    path = Path(f"/tmp/hutch-host-secret-{uuid.uuid4().hex}")
    path.write_text("host secret")
    yield path
    path.unlink()


@pytest.fixture(scope="module", params=ENGINES)
def engine(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture(scope="module")
def target(stack, engine):
    sandbox = stack.create(engine)
    yield sandbox
    sandbox.kill()


@pytest.fixture(scope="module")
def neighbour(stack, engine):
    sandbox = stack.create(engine)
    sandbox.files.write("/tmp/neighbour-secret", "neighbour secret")
    sandbox.commands.run("sleep 3600", background=True, timeout=0)
    yield sandbox
    sandbox.kill()


@pytest.mark.parametrize("user", USERS)
def test_host_files_are_out_of_reach(target, host_secret, user):
    body = f"""
for path in ["{host_secret}", "/proc/1/root{host_secret}", "/proc/self/root{host_secret}",
             "/proc/1/cwd{host_secret}", "/../../..{host_secret}"]:
    try:
        return path + ": " + open(path).read()
    except OSError:
        pass
"""
    assert _probe(target, body, user) == "BLOCKED"


def test_file_api_paths_stay_in_the_sandbox(target, host_secret):
    # envd serves files from inside the sandbox: '..', /proc/1/root and symlinks lead nowhere on the host.
    target.commands.run("ln -sfn / /home/user/rootlink && ln -sfn /proc/1/root /home/user/proclink")
    for path in [
        f"/../../..{host_secret}",
        f"/proc/1/root{host_secret}",
        f"/home/user/rootlink{host_secret}",
    ]:
        assert not target.files.exists(path)
    marker = f"/etc/hutch-escape-{uuid.uuid4().hex}"
    target.files.write(f"/home/user/rootlink{marker}", "x", user="root")
    target.files.write(f"/home/user/proclink{marker}-2", "x", user="root")
    assert not os.path.exists(marker) and not os.path.exists(f"{marker}-2")


@pytest.mark.parametrize("user", USERS)
def test_host_loopback_services_are_unreachable(stack, target, user):
    body = f"""
hits = []
for host in ["127.0.0.1", "::1"]:
    for port in [{stack.api_port}, {stack.proxy_port}, 22]:
        try:
            socket.create_connection((host, port), 1).close()
            hits.append((host, port))
        except OSError:
            pass
return hits
"""
    assert _probe(target, body, user) == "BLOCKED"


@pytest.mark.parametrize("user", USERS)
def test_host_side_of_the_link_is_closed(stack, target, user):
    gateway = target.commands.run("ip route").stdout.split()[0].split("/")[0]
    body = f"""
hits = []
for port in [{stack.api_port}, {stack.proxy_port}, 22, 53]:
    try:
        socket.create_connection(("{gateway}", port), 1).close()
        hits.append(port)
    except OSError:
        pass
return hits
"""
    assert _probe(target, body, user) == "BLOCKED"


@pytest.mark.parametrize("user", USERS)
def test_neighbour_is_unreachable(target, neighbour, user):
    address = neighbour.commands.run("ip -4 -o addr show eth0").stdout.split()[3].split("/")[0]
    body = f"""
found = []
try:
    socket.create_connection(("{address}", 49983), 2).close()
    found.append("network")
except OSError:
    pass
if os.path.exists("/tmp/neighbour-secret"):
    found.append("files")
for pid in os.listdir("/proc"):
    if pid.isdigit():
        try:
            if b"sleep" in open(f"/proc/{{pid}}/cmdline", "rb").read():
                found.append("process " + pid)
        except OSError:
            pass
return found
"""
    assert _probe(target, body, user) == "BLOCKED"


@pytest.mark.parametrize("user", USERS)
def test_host_processes_and_secrets_are_invisible(stack, target, user):
    body = f"""
seen = []
for pid in os.listdir("/proc"):
    if not pid.isdigit():
        continue
    try:
        cmdline = open(f"/proc/{{pid}}/cmdline", "rb").read()
        environ = open(f"/proc/{{pid}}/environ", "rb").read()
    except OSError:
        continue
    if b"hutch.cli" in cmdline or b"uvicorn" in cmdline:
        seen.append("host process " + pid)
    if b"HUTCH_" in environ or b"E2B_API_KEY" in environ or b"{stack.api_key}".encode() in environ:
        seen.append("secret in the environment of " + pid)
try:
    os.kill({stack.process.pid}, 0)
    seen.append("can signal the host's hutch process")
except OSError:
    pass
return seen
"""
    assert _probe(target, body, user) == "BLOCKED"


PRIVILEGED = {
    "mount": 'return not refused(libc.mount(b"none", b"/mnt", b"tmpfs", 0, None))',
    "unshare a user namespace": "return not refused(libc.unshare(0x10000000))",
    "unshare a mount namespace": "return not refused(libc.unshare(0x00020000))",
    # clone(CLONE_NEWUSER | CLONE_NEWPID | SIGCHLD): if it worked, both processes would report it.
    "clone into new namespaces": "return not refused(libc.syscall(56, 0x30000011, 0, 0, 0, 0))",
    "setns": 'fd = os.open("/proc/self/ns/net", os.O_RDONLY)\nreturn not refused(libc.setns(fd, 0))',
    "load a kernel module": "return not refused(libc.syscall(313, -1, b'', 0))",
    "kexec": "return not refused(libc.syscall(246, 0, 0, 0, 0))",
    "ptrace init": "r = libc.ptrace(16, 1, 0, 0)\nlibc.ptrace(17, 1, 0, 0)\nreturn not refused(r)",
    "make a block device": 'return not refused(libc.mknod(b"/tmp/sda", 0o60600, os.makedev(8, 0)))',
    "raw socket": "socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)\nreturn 'raw socket'",
    "packet socket": "socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)\nreturn 'packet socket'",
    "write /proc/sys": 'return rewrite("/proc/sys/kernel/panic")',
    "write /sys": 'return rewrite("/sys/kernel/uevent_helper")',
    "change the pids limit": 'return rewrite("/sys/fs/cgroup/pids/pids.max")',
    "change the memory limit": 'return rewrite("/sys/fs/cgroup/memory/memory.limit_in_bytes")',
    "set the clock": (
        "now = time.time()\n"
        "return not refused(libc.clock_settime(0, (ctypes.c_long * 2)(int(now), int(now % 1 * 1e9))))"
    ),
    "bpf": "return not refused(libc.syscall(321, 0, 0, 0))",
    "perf_event_open": "return not refused(libc.syscall(298, 0, 0, -1, -1, 0))",
    "keyctl": "return not refused(libc.syscall(250, 0, -3, 0, 0, 0))",
    "kernel log": "return not refused(libc.klogctl(3, ctypes.create_string_buffer(64), 64))",
}


@pytest.mark.parametrize("user", USERS)
@pytest.mark.parametrize("attack", sorted(PRIVILEGED))
def test_privileged_operations_are_refused(target, attack, user):
    assert _probe(target, PRIVILEGED[attack], user) == "BLOCKED", attack


def test_limits_hold(target):
    # The limits that bind are the host's cgroups of the sandbox, out of the sandbox's reach.
    cgroups = Path("/sys/fs/cgroup")
    pids = (cgroups / "pids/hutch" / target.sandbox_id / "pids.max").read_text().strip()
    memory = (cgroups / "memory/hutch" / target.sandbox_id / "memory.limit_in_bytes").read_text()
    assert pids != "max" and int(pids) <= 4096
    assert int(memory) == 512 * 1024 * 1024
