"""The node's crun launcher: one small process per node that starts each ``crun run`` in the namespace
that run needs (see :mod:`.crun`), by system calls in a forked child, instead of a chain of ``unshare``,
``nsenter``, a shell and three ``mount`` processes.

It is a program of its own (``python3 -I -S crun_launcher.py FD``, standard library only), so a fork of it
copies a few megabytes, not the node. On its control socket (``SOCK_SEQPACKET``, FD) each message is a
request in JSON (``argv``, ``netns``, ``root``, ``sysfs``, ``hybrid``) with three descriptors: a reply
socket, the run's stdin and its output (stdout and stderr). For each, it forks a child that

1. keeps only those descriptors (as 0, 1 and 2),
2. enters a mount namespace of its own (a private copy of the node's) and the sandbox's network namespace,
3. remounts the sandbox's root there without ``nosuid`` (still ``nodev``), mounts a sysfs of the network
   namespace on ``sysfs`` (read-only), opens ports below 1024 to the network namespace's users, and on the
   hybrid cgroup layout detaches ``/sys/fs/cgroup/unified``,
4. executes ``argv``;

and answers ``{"status": <exit code>}`` on the reply socket once it has ended (a child that could not
prepare writes why to its output and ends with 127). The launcher exits when the node closes the control
socket; it never reads a sandbox's files, and its input comes from the node alone.
"""

from __future__ import annotations

import ctypes
import json
import os
import selectors
import socket
import sys

MAX_MESSAGE = 1 << 16
DESCRIPTORS = 3  # reply, stdin, output
UNIFIED = b"/sys/fs/cgroup/unified"
PORTS_SYSCTL = "/proc/sys/net/ipv4/ip_unprivileged_port_start"
CLONE_NEWNS = 0x00020000
CLONE_NEWNET = 0x40000000
MS_RDONLY = 0x1
MS_NOSUID = 0x2
MS_NODEV = 0x4
MS_NOEXEC = 0x8
MS_REMOUNT = 0x20
MS_BIND = 0x1000
MS_REC = 0x4000
MS_PRIVATE = 0x40000
MNT_DETACH = 2
FAILED = 127

_libc = ctypes.CDLL(None, use_errno=True)


def _checked(result: int, what: str) -> None:
    if result == -1:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def _mount(source: bytes | None, target: bytes, kind: bytes | None, flags: int) -> None:
    _checked(_libc.mount(source, target, kind, ctypes.c_ulong(flags), None), f"mount {target!r}")


def serve(control: socket.socket) -> None:
    """Serve the node on ``control`` until it closes it."""
    selector = selectors.DefaultSelector()
    selector.register(control, selectors.EVENT_READ)
    while True:
        for key, _ in selector.select():
            if key.fileobj is control:
                message, fds, _, _ = socket.recv_fds(control, MAX_MESSAGE, DESCRIPTORS)
                if not message and not fds:
                    return
                if len(fds) != DESCRIPTORS:
                    for fd in fds:
                        os.close(fd)
                    continue
                reply, stdin, output = fds
                pid = os.fork()
                if pid == 0:
                    _child(json.loads(message), stdin, output)
                os.close(stdin)
                os.close(output)
                selector.register(os.pidfd_open(pid), selectors.EVENT_READ, (pid, reply))
            else:
                pid, reply = key.data
                selector.unregister(key.fd)
                os.close(key.fd)
                _, status = os.waitpid(pid, 0)
                try:
                    os.write(reply, json.dumps({"status": os.waitstatus_to_exitcode(status)}).encode())
                except OSError:
                    pass  # the node stopped waiting
                os.close(reply)


def _child(request: dict, stdin: int, output: int) -> None:
    """The forked child: into the run's namespaces, then ``argv``. Never returns."""
    try:
        os.dup2(stdin, 0)
        os.dup2(output, 1)
        os.dup2(output, 2)
        os.closerange(3, os.sysconf("SC_OPEN_MAX"))
        _prepare(request)
        argv = [str(arg) for arg in request["argv"]]
        os.execv(argv[0], argv)
    except BaseException as err:
        try:
            os.write(2, f"crun launcher: {type(err).__name__}: {err}\n".encode())
        finally:
            os._exit(FAILED)


def _prepare(request: dict) -> None:
    _checked(_libc.unshare(CLONE_NEWNS), "unshare")
    _mount(None, b"/", None, MS_REC | MS_PRIVATE)
    netns = os.open(request["netns"], os.O_RDONLY | os.O_CLOEXEC)
    _checked(_libc.setns(netns, CLONE_NEWNET), "setns")
    os.close(netns)
    root = os.fsencode(request["root"])
    _mount(root, root, None, MS_REMOUNT | MS_BIND | MS_NODEV)
    _mount(b"sysfs", os.fsencode(request["sysfs"]), b"sysfs", MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC)
    with open(PORTS_SYSCTL, "w") as f:
        f.write("0")
    if request["hybrid"]:
        _checked(_libc.umount2(UNIFIED, MNT_DETACH), "umount of the unified cgroup hierarchy")


if __name__ == "__main__":
    serve(socket.socket(fileno=int(sys.argv[1])))
