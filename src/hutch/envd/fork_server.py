"""envd's fork server: one process per node that has imported envd once and makes the envd of each crun
sandbox by forking itself into it, so that a sandbox's start costs a fork rather than a Python start, and
its envd shares the server's pages until it writes them.

The node starts it in a mount namespace of its own that holds only a small tmpfs root with envd, the Python
it runs on (at the sandbox's paths: ``/usr/local/lib/hutch``), ``/proc`` and the cgroup hierarchies, so
that nothing it holds pins a sandbox's mounts, and an envd made here looks from inside exactly as one that
crun started. Its environment is empty but for ``FORK_SERVER_ENV``, the number of its control socket.

On that socket (``SOCK_SEQPACKET``) the node first sends the settings every envd gets (capabilities,
seccomp filter, open-file limit, OOM score, environment) and the server answers once it has imported
everything and rehearsed envd's first requests (:mod:`.rehearsal`). Then each message carries four
descriptors and no data: a reply socket, a pidfd of the sandbox's init (crun started it; it waits on a
pipe and ends when envd does), the sandbox's log, and the write end of that pipe. For each, the server
forks a child that

1. joins the init's cgroups (read from its ``/proc`` entry, accepted only under ``/hutch/``), sets the
   open-file limit and the OOM score while it is still the host's root,
2. enters all the init's namespaces at once (``setns`` on the pidfd) and becomes root of its user
   namespace, then forks envd, which is in the sandbox's pid namespace, reports envd's pid and exits.

envd, before it serves, becomes a session leader and the reaper of its orphans, keeps only its log (as
stdout and stderr), ``/dev/null`` and the pipe's end of its descriptors, drops the capabilities the
sandbox's root does not have, applies the sandbox's seccomp filter, is made undumpable (the sandbox's root
cannot read its memory or descriptors), and answers ``ready`` once it listens (or the error that stopped
it).

Where the node merges pages (KSM), the server marks its writable private memory mergeable before it forks
any envd: a page an envd copies when it writes it (a reference count that went up and back down, most of
them) is merged again by the kernel with the identical pages of the other envds. Marks are inherited by
fork and not by exec, so the programs envd starts have none (and the sandbox's seccomp filter refuses
them the calls that would set them).

The server itself never reads anything about a sandbox: its memory, which every envd inherits, holds
nothing of any other sandbox. It exits when the node closes the control socket.
"""

from __future__ import annotations

import base64
import contextlib
import ctypes
import fcntl
import gc
import json
import os
import re
import resource
import signal
import socket
import sys
from typing import Callable

from .rehearsal import rehearse

HOST_ROOT = "/.host"  # where the node's root is left after the pivot, detached at once
CGROUPS = "/sys/fs/cgroup"
MAX_MESSAGE = 1 << 16
DESCRIPTORS = 4  # reply, init's pidfd, log, the init's pipe
FIRST_FREE_FD = 64  # where the kept descriptors are moved while the others close
# In the kernel's order: a capability's number is its index.
CAPABILITIES = [
    "CHOWN", "DAC_OVERRIDE", "DAC_READ_SEARCH", "FOWNER", "FSETID", "KILL", "SETGID", "SETUID", "SETPCAP",
    "LINUX_IMMUTABLE", "NET_BIND_SERVICE", "NET_BROADCAST", "NET_ADMIN", "NET_RAW", "IPC_LOCK", "IPC_OWNER",
    "SYS_MODULE", "SYS_RAWIO", "SYS_CHROOT", "SYS_PTRACE", "SYS_PACCT", "SYS_ADMIN", "SYS_BOOT", "SYS_NICE",
    "SYS_RESOURCE", "SYS_TIME", "SYS_TTY_CONFIG", "MKNOD", "LEASE", "AUDIT_WRITE", "AUDIT_CONTROL", "SETFCAP",
    "MAC_OVERRIDE", "MAC_ADMIN", "SYSLOG", "WAKE_ALARM", "BLOCK_SUSPEND", "AUDIT_READ", "PERFMON", "BPF",
    "CHECKPOINT_RESTORE",
]  # fmt: skip
NAMESPACES = {
    "user": 0x10000000, "mnt": 0x00020000, "pid": 0x20000000, "net": 0x40000000, "uts": 0x04000000,
    "ipc": 0x08000000, "cgroup": 0x02000000,
}  # fmt: skip
CGROUP_PATH = re.compile(r"/hutch/[A-Za-z0-9_.-]{1,128}")
PR_SET_DUMPABLE = 4
PR_SET_SECCOMP = 22
PR_CAPBSET_DROP = 24
PR_SET_CHILD_SUBREAPER = 36
PR_CAP_AMBIENT = 47
PR_CAP_AMBIENT_CLEAR_ALL = 4
SECCOMP_MODE_FILTER = 2
MNT_DETACH = 2
MADV_MERGEABLE = 12
CAPABILITY_VERSION_3 = 0x20080522

_libc = ctypes.CDLL(None, use_errno=True)
_libc.prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]
_libc.madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [
        ("effective", ctypes.c_uint32),
        ("permitted", ctypes.c_uint32),
        ("inheritable", ctypes.c_uint32),
    ]


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


def _checked(result: int, what: str) -> None:
    if result == -1:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def _prctl(option: int, arg: int = 0, arg3: int = 0) -> None:
    _checked(_libc.prctl(option, arg, arg3, 0, 0), f"prctl {option}")


class Settings:
    """What every envd of the node gets, as the node sends it once."""

    def __init__(self, raw: dict) -> None:
        names = raw["capabilities"]
        unknown = [name for name in names if name.removeprefix("CAP_") not in CAPABILITIES]
        if unknown:
            raise ValueError(f"unknown capabilities: {unknown}")
        self.capabilities = {CAPABILITIES.index(name.removeprefix("CAP_")) for name in names}
        self.seccomp = base64.b64decode(raw["seccomp"])
        if not self.seccomp or len(self.seccomp) % 8:
            raise ValueError("the seccomp filter is not a BPF program")
        self.nofile = int(raw["nofile"])
        self.oom_score_adj = int(raw["oom_score_adj"])
        self.env: dict[str, str] = dict(raw["env"])
        self.merge_pages = bool(raw["merge_pages"])
        with open("/proc/sys/kernel/cap_last_cap") as f:
            self.last_capability = int(f.read())


def serve(control_fd: int, run_envd: Callable[[Callable[[], None]], None]) -> None:
    """Serve the node on ``control_fd`` until it closes it; each envd made runs ``run_envd``, which calls
    the function it is given once envd listens (that answers ``ready``)."""
    _checked(_libc.umount2(HOST_ROOT.encode(), MNT_DETACH), "umount of the host's root")
    os.rmdir(HOST_ROOT)
    control = socket.socket(fileno=control_fd)
    settings = Settings(json.loads(control.recv(MAX_MESSAGE)))
    _import_everything()
    rehearse()
    if settings.merge_pages:
        _mark_mergeable()
    sys.stderr.flush()  # nothing written here may reach an envd's log
    _prctl(PR_SET_CHILD_SUBREAPER, 1)  # every envd's first parent exits at once: the server reaps it
    signal.signal(signal.SIGCHLD, _reap)
    gc.freeze()  # the objects made so far stay untouched by every envd's collector: their pages stay shared
    control.send(b'{"ready": true}')
    while True:
        message, fds, _, _ = socket.recv_fds(control, 16, DESCRIPTORS)
        if not message and not fds:
            return
        if len(fds) != DESCRIPTORS:
            for fd in fds:
                os.close(fd)
            continue
        if os.fork() == 0:
            _child(settings, *fds, control.fileno(), run_envd)
        for fd in fds:
            os.close(fd)


def _import_everything() -> None:
    """Import every module of envd (and with them what they import), so that no envd imports anything."""
    import pkgutil

    import hutch.envd

    for module in pkgutil.walk_packages(hutch.envd.__path__, "hutch.envd."):
        if module.name != "hutch.envd.__main__":
            __import__(module.name)


def _mark_mergeable() -> None:
    """Mark every writable private mapping but the stack mergeable: the heap, the allocator's arenas, the
    interpreter's data. A mapping the kernel refuses stays as it is: merging only saves memory."""
    with open("/proc/self/maps") as f:
        mappings = f.read().splitlines()
    for line in mappings:
        fields = line.split()
        permissions, name = fields[1], fields[5] if len(fields) > 5 else ""
        if permissions[1] != "w" or permissions[3] != "p" or (name.startswith("[") and name != "[heap]"):
            continue
        start, end = (int(address, 16) for address in fields[0].split("-"))
        if _libc.madvise(start, end - start, MADV_MERGEABLE) == -1:  # the node's log says so; envd works
            reason = os.strerror(ctypes.get_errno())
            print(f"envd's fork server: {line} stays unmerged: {reason}", file=sys.stderr)


def _reap(*_: object) -> None:
    while True:
        try:
            pid, _status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def _child(
    settings: Settings,
    reply: int,
    pidfd: int,
    log: int,
    keepalive: int,
    control: int,
    run_envd: Callable[[Callable[[], None]], None],
) -> None:
    """The forked child: into the sandbox, then envd. Never returns."""
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    os.close(control)
    try:
        _enter(settings, pidfd)
        pid = os.fork()
        if pid:
            _send(reply, {"pid": pid})
            os._exit(0)
        reply = _keep_descriptors(reply, log, keepalive)
        _confine(settings)
    except BaseException as err:  # whatever stopped it is the node's answer, and in the log
        _send(reply, {"error": f"{type(err).__name__}: {err}"})
        with contextlib.suppress(OSError):
            os.write(2, f"envd's fork server: {type(err).__name__}: {err}\n".encode())
        os._exit(1)

    def listening() -> None:
        _send(reply, {"ready": True})
        os.close(reply)

    try:
        run_envd(listening)
    finally:
        os._exit(0)


def _send(reply: int, message: dict) -> None:
    with contextlib.suppress(OSError):
        os.write(reply, json.dumps(message).encode())


def _enter(settings: Settings, pidfd: int) -> None:
    """Join the cgroups and the namespaces of the init ``pidfd`` names, as its root."""
    pid = _pid_of(pidfd)
    with open(f"/proc/{pid}/cgroup") as f:
        memberships = f.read().splitlines()
    signal.pidfd_send_signal(pidfd, 0)  # still alive after the read: the pid was not reused
    for line in memberships:
        _, controllers, path = line.split(":", 2)
        if not controllers or path == "/":
            continue
        if not CGROUP_PATH.fullmatch(path):
            raise ValueError(f"the sandbox's init is in an unexpected cgroup: {path!r}")
        hierarchy = controllers.removeprefix("name=")
        with open(f"{CGROUPS}/{hierarchy}{path}/cgroup.procs", "w") as f:
            f.write(str(os.getpid()))
    resource.setrlimit(resource.RLIMIT_NOFILE, (settings.nofile, settings.nofile))
    with open("/proc/self/oom_score_adj", "w") as f:
        f.write(str(settings.oom_score_adj))
    flags = 0
    for name, flag in NAMESPACES.items():
        if os.stat(f"/proc/{pid}/ns/{name}").st_ino != os.stat(f"/proc/self/ns/{name}").st_ino:
            flags |= flag
    _checked(_libc.setns(pidfd, flags), "setns")
    os.close(pidfd)
    os.setgroups([])
    os.setresgid(0, 0, 0)
    os.setresuid(0, 0, 0)
    os.chdir("/")


def _pid_of(pidfd: int) -> int:
    with open(f"/proc/self/fdinfo/{pidfd}") as f:
        for line in f:
            if line.startswith("Pid:"):
                pid = int(line.split()[1])
                if pid > 0:
                    return pid
    raise ProcessLookupError("the sandbox's init has ended")


def _keep_descriptors(reply: int, log: int, keepalive: int) -> int:
    """``/dev/null`` as stdin, the log as stdout and stderr, the pipe's end at 4 and the reply at 3 (both
    closed on exec), nothing else; returns the reply's descriptor."""
    kept = [fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, FIRST_FREE_FD) for fd in (reply, log, keepalive)]
    null = os.open("/dev/null", os.O_RDWR)
    os.dup2(null, 0)
    os.dup2(kept[1], 1)
    os.dup2(kept[1], 2)
    os.dup2(kept[0], 3, inheritable=False)
    os.dup2(kept[2], 4, inheritable=False)
    os.closerange(5, resource.getrlimit(resource.RLIMIT_NOFILE)[1])
    return 3


def _confine(settings: Settings) -> None:
    """In the sandbox's pid namespace: envd's session, environment, capabilities and seccomp filter."""
    os.setsid()
    _prctl(PR_SET_CHILD_SUBREAPER, 1)
    os.umask(0o022)
    os.environ.clear()
    os.environ.update(settings.env)
    os.environ["HOSTNAME"] = os.uname().nodename
    os.environ["HOME"] = "/root"
    for capability in range(settings.last_capability + 1):
        if capability not in settings.capabilities:
            _prctl(PR_CAPBSET_DROP, capability)
    program = ctypes.create_string_buffer(settings.seccomp, len(settings.seccomp))
    fprog = _SockFprog(len(settings.seccomp) // 8, ctypes.addressof(program))
    _prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ctypes.addressof(fprog))
    mask = sum(1 << capability for capability in settings.capabilities)
    low, high = mask & 0xFFFFFFFF, mask >> 32
    data = (_CapData * 2)(_CapData(low, low, 0), _CapData(high, high, 0))
    _checked(_libc.capset(ctypes.byref(_CapHeader(CAPABILITY_VERSION_3, 0)), data), "capset")
    _prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL)
    _prctl(PR_SET_DUMPABLE, 0)
