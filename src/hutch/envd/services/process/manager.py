"""Live processes: spawning (pipes or a PTY, as a Unix user), output fan-out, stdin, signals and exit.

Each process runs in its own session, so a signal reaches the whole group it started. Output is read from
non-blocking fds on the event loop and broadcast to every subscriber (the Start stream and any Connect
streams); output nobody listens to is dropped. A subscriber that falls behind pauses the reading, so the
process blocks on its full pipe instead of envd buffering without bound. Exit is noticed through a pidfd.
When the process exits, what it wrote is drained before the ``end`` event, which is kept for a while to
answer late Connect calls. Pipes that something the process started still holds (``gtk-launch`` leaves the
application it launched) are read and their output dropped until that closes them too, so that a write there
does not kill it with SIGPIPE.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import grp
import logging
import os
import signal
import struct
import subprocess
import termios
import threading

from ...connect import field, text, uint
from ...errors import RpcError
from ...users import User
from . import identity

log = logging.getLogger("hutch.envd")
CHUNK = 32 * 1024
PTY_CHUNK = 16 * 1024
ENDED_TTL_S = 30.0
DRAIN_LIMIT = 8 * 1024 * 1024
# Pipes of ended processes still held open by what they started, read and dropped; past this many, the
# oldest is closed.
MAX_ORPHANED = 512
# Output chunks a subscriber may have queued before reading pauses, and the level at which it resumes.
HIGH_WATER = 64
LOW_WATER = 16


def _take_terminal() -> None:  # runs in the child between fork and exec
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)


def give_terminal(fd: int, user: User) -> None:
    """Make a PTY's terminal the user's, as a login does (owner, ``tty`` group, 0620), so the user can
    open it again by name (``tty``, ``script``, ``tmux``)."""
    if os.getuid() != 0 or user.is_current:
        return
    try:
        gid = grp.getgrnam("tty").gr_gid
    except KeyError:
        gid = -1
    with contextlib.suppress(OSError):
        os.fchown(fd, user.uid, gid)
        os.fchmod(fd, 0o620)


def set_winsize(fd: int, cols: int, rows: int) -> None:
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))


def exit_event(status: int) -> dict:
    """The ``end`` event for a wait status, worded like Go's ``ProcessState.String()``."""
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        text = "signal: " + (signal.strsignal(sig) or f"signal {sig}").lower()
        if os.WCOREDUMP(status):
            text += " (core dumped)"
        return {"exitCode": -1, "status": text, "error": text}
    code = os.WEXITSTATUS(status)
    event: dict = {"exitCode": code, "exited": True, "status": f"exit status {code}"}
    if code != 0:
        event["error"] = f"exit status {code}"
    return event


class Process:
    """One process started by envd and the streams that follow it."""

    def __init__(self, manager: ProcessManager, config: dict, tag: str | None) -> None:
        self.manager = manager
        self.config = config
        self.tag = tag
        self.pid = 0
        self.popen: subprocess.Popen | None = None
        self.pty_fd: int | None = None
        self.stdin_fd: int | None = None
        self.output_fds: dict[int, str] = {}
        self.subscribers: list[asyncio.Queue] = []
        self.end: dict | None = None
        self.timed_out = False
        self._paused = False
        self._input_lock = asyncio.Lock()
        self._deadline: asyncio.TimerHandle | None = None
        self._pidfd: int | None = None

    # -- subscriptions -----------------------------------------------------------------------------------

    def subscribe(self) -> asyncio.Queue:
        queue: asyncio.Queue = asyncio.Queue()
        if self.end is not None:
            queue.put_nowait({"end": self.end})
        else:
            self.subscribers.append(queue)
        return queue

    def unsubscribe(self, queue: asyncio.Queue) -> None:
        if queue in self.subscribers:
            self.subscribers.remove(queue)
            self.consumed()

    def consumed(self) -> None:
        """A subscriber took an event: resume reading output once every subscriber has caught up."""
        if self._paused and all(queue.qsize() <= LOW_WATER for queue in self.subscribers):
            self._paused = False
            for fd in self.output_fds:
                self.manager.loop.add_reader(fd, self._on_readable, fd)

    def _broadcast(self, event: dict) -> None:
        for queue in self.subscribers:
            queue.put_nowait(event)

    def _pause_if_behind(self) -> None:
        if not self._paused and any(queue.qsize() >= HIGH_WATER for queue in self.subscribers):
            self._paused = True
            for fd in self.output_fds:
                self.manager.loop.remove_reader(fd)

    # -- output and exit ---------------------------------------------------------------------------------

    def _watch(self, loop: asyncio.AbstractEventLoop) -> None:
        for fd in self.output_fds:
            os.set_blocking(fd, False)
            loop.add_reader(fd, self._on_readable, fd)
        try:
            self._pidfd = os.pidfd_open(self.pid)
        except (AttributeError, OSError):
            threading.Thread(target=self._wait_in_thread, args=(loop,), daemon=True).start()
        else:
            loop.add_reader(self._pidfd, self._on_exit)

    def _read(self, fd: int) -> bool:
        """Read once from an output fd; True if data came (more may wait), False if none or finished."""
        stream = self.output_fds[fd]
        try:
            data = os.read(fd, PTY_CHUNK if stream == "pty" else CHUNK)
        except BlockingIOError:
            return False
        except OSError:  # EIO: the PTY's other side is closed
            data = b""
        if not data:
            self._close_output(fd)
            return False
        if self.subscribers:
            self._broadcast({"data": {stream: data}})
            self._pause_if_behind()
        return True

    def _on_readable(self, fd: int) -> None:
        if fd in self.output_fds:
            self._read(fd)

    def _close_output(self, fd: int) -> None:
        self.manager.loop.remove_reader(fd)
        self.manager.loop.remove_writer(fd)
        del self.output_fds[fd]
        if fd == self.pty_fd:
            self.pty_fd = None
        os.close(fd)

    def _wait_in_thread(self, loop: asyncio.AbstractEventLoop) -> None:
        _, status = os.waitpid(self.pid, 0)
        loop.call_soon_threadsafe(self._finish, status)

    def _on_exit(self) -> None:
        try:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
        except ChildProcessError:
            pid, status = self.pid, 0
        if pid == 0:
            return
        self._finish(status)

    def _finish(self, status: int) -> None:
        loop = self.manager.loop
        if self._pidfd is not None:
            loop.remove_reader(self._pidfd)
            os.close(self._pidfd)
            self._pidfd = None
        if self.popen is not None:
            self.popen.returncode = status
        if self._deadline is not None:
            self._deadline.cancel()
        # Everything the process wrote is in the pipes now; take it before reporting the end.
        for fd in list(self.output_fds):
            drained = 0
            while fd in self.output_fds and drained < DRAIN_LIMIT and self._read(fd):
                drained += CHUNK
            if fd == self.pty_fd:
                self._close_output(fd)
            elif fd in self.output_fds:
                loop.remove_reader(fd)
                del self.output_fds[fd]
                self.manager.orphaned(fd)
        self._close_stdin()
        self.end = exit_event(status)
        self._broadcast({"end": self.end})
        self.subscribers = []
        self.manager._ended(self)

    # -- input, signals, terminal ------------------------------------------------------------------------

    async def write_stdin(self, data: bytes) -> None:
        if self.pty_fd is not None:
            raise RpcError("internal", "tty assigned to process: write input to the pty, not the stdin")
        async with self._input_lock:
            if self.stdin_fd is None:
                raise RpcError("internal", "stdin not enabled or closed")
            await self._write_all("stdin_fd", data)

    async def write_pty(self, data: bytes) -> None:
        if self.pty_fd is None:
            raise RpcError("internal", "tty not assigned to process: input should be written to the stdin")
        async with self._input_lock:
            await self._write_all("pty_fd", data)

    async def _write_all(self, which: str, data: bytes) -> None:
        """Write all of ``data`` to the fd held in attribute ``which``, waiting while the pipe is full.

        The attribute is read again before every write: the fd may be closed (CloseStdin, exit) meanwhile,
        and its number reused by something else.
        """
        view = memoryview(data)
        while view:
            fd = getattr(self, which)
            if fd is None:
                raise RpcError("internal", f"input of process {self.pid} was closed while writing")
            try:
                written = os.write(fd, view)
            except BlockingIOError:
                await self._writable(which, fd)
                continue
            except OSError as err:
                message = f"error writing input of process {self.pid}: {err.strerror}"
                raise RpcError("internal", message) from None
            view = view[written:]

    async def _writable(self, which: str, fd: int, timeout: float = 0.1) -> None:
        """Wait until ``fd`` takes more input, or ``timeout`` passes (so a closed fd is noticed)."""
        loop = self.manager.loop
        ready = loop.create_future()
        loop.add_writer(fd, lambda: ready.done() or ready.set_result(None))
        try:
            await asyncio.wait_for(ready, timeout)
        except asyncio.TimeoutError:
            pass
        finally:
            if getattr(self, which) == fd:  # once closed, the number may already be someone else's
                loop.remove_writer(fd)

    def close_stdin(self) -> None:
        if self.pty_fd is not None:
            raise RpcError("internal", "cannot close stdin of a PTY process: send Ctrl+D (0x04) instead")
        self._close_stdin()

    def _close_stdin(self) -> None:
        if self.stdin_fd is not None:
            fd, self.stdin_fd = self.stdin_fd, None
            self.manager.loop.remove_writer(fd)  # a write waiting on it gives up at its next check
            with contextlib.suppress(OSError):
                os.close(fd)

    def resize(self, cols: int, rows: int) -> None:
        if self.pty_fd is None:
            raise RpcError("internal", "tty not assigned to process")
        set_winsize(self.pty_fd, cols, rows)

    def kill(self, sig: int) -> None:
        """Signal the process's whole group (it leads its own session)."""
        if self.end is not None:
            raise RpcError("not_found", f"process with pid {self.pid} not found")
        try:
            os.killpg(self.pid, sig)
        except ProcessLookupError:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, sig)

    def _on_deadline(self) -> None:
        if self.end is None:
            self.timed_out = True
            self.kill(signal.SIGKILL)

    def info(self) -> dict:
        info: dict = {"pid": self.pid, "config": self.config}
        if self.tag is not None:
            info["tag"] = self.tag
        return info


class ProcessManager:
    """The registry of envd's processes, by pid and by tag."""

    def __init__(self) -> None:
        self.loop = asyncio.get_event_loop()
        self.live: dict[int, Process] = {}
        self.ended: dict[int, Process] = {}
        self._orphaned: dict[int, None] = {}  # fds, oldest first

    def start(
        self,
        *,
        config: dict,
        argv: list[str],
        user: User,
        cwd: str,
        env: dict[str, str],
        tag: str | None,
        stdin: bool,
        pty_size: tuple | None,
        timeout_s: float | None,
    ) -> tuple:
        """Spawn a process; returns it with a subscription opened before it could write anything."""
        process = Process(self, config, tag)
        queue = process.subscribe()
        kwargs: dict = {
            "cwd": cwd,
            "env": env,
            "start_new_session": True,
            "close_fds": True,
        }
        # Without a terminal to take, this thread starts the process as the user (a vfork, no copy of
        # envd); else Python switches in a forked child.
        switch_thread = not user.is_current and pty_size is None and identity.available()
        if not user.is_current and not switch_thread:
            kwargs.update(user=user.uid, group=user.gid, extra_groups=user.group_ids())
        slave = None
        try:
            if pty_size is not None:
                master, slave = os.openpty()
                cols, rows = pty_size
                set_winsize(slave, cols or 80, rows or 24)
                give_terminal(slave, user)
                process.pty_fd = master
                process.output_fds[master] = "pty"
                popen = subprocess.Popen(
                    argv, stdin=slave, stdout=slave, stderr=slave, preexec_fn=_take_terminal, **kwargs
                )
            else:
                with identity.thread_as(user) if switch_thread else contextlib.nullcontext():
                    popen = subprocess.Popen(
                        argv,
                        stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
                        stdout=subprocess.PIPE,
                        stderr=subprocess.PIPE,
                        **kwargs,
                    )
                assert popen.stdout is not None and popen.stderr is not None
                process.output_fds[os.dup(popen.stdout.fileno())] = "stdout"
                process.output_fds[os.dup(popen.stderr.fileno())] = "stderr"
                popen.stdout.close()
                popen.stderr.close()
                if popen.stdin is not None:
                    process.stdin_fd = os.dup(popen.stdin.fileno())
                    os.set_blocking(process.stdin_fd, False)
                    popen.stdin.close()
        except (OSError, subprocess.SubprocessError, ValueError) as err:
            for fd in process.output_fds:
                os.close(fd)
            raise RpcError("invalid_argument", f"error starting process '{' '.join(argv)}': {err}") from None
        finally:
            if slave is not None:
                os.close(slave)
        process.popen = popen
        process.pid = popen.pid
        self.live[process.pid] = process
        # The program, not its arguments (they may hold secrets).
        tagged = f" [{tag}]" if tag else ""
        log.info("process %d started: %s as %s%s", process.pid, argv[0], user.name, tagged)
        process._watch(self.loop)
        if timeout_s:
            process._deadline = self.loop.call_later(timeout_s, process._on_deadline)
        return process, queue

    def _ended(self, process: Process) -> None:
        log.info("process %d ended: %s", process.pid, process.end.get("status", "") if process.end else "")
        self.live.pop(process.pid, None)
        self.ended[process.pid] = process
        self.loop.call_later(ENDED_TTL_S, self._forget, process)

    def orphaned(self, fd: int) -> None:
        """Read ``fd`` (an ended process's output pipe) and drop what comes until it is closed."""
        if len(self._orphaned) >= MAX_ORPHANED:
            self._close_orphaned(next(iter(self._orphaned)))
        self._orphaned[fd] = None
        self.loop.add_reader(fd, self._discard, fd)

    def _discard(self, fd: int) -> None:
        try:
            if os.read(fd, CHUNK):
                return
        except BlockingIOError:
            return
        except OSError:
            pass
        self._close_orphaned(fd)

    def _close_orphaned(self, fd: int) -> None:
        del self._orphaned[fd]
        self.loop.remove_reader(fd)
        os.close(fd)

    def _forget(self, process: Process) -> None:
        if self.ended.get(process.pid) is process:
            del self.ended[process.pid]

    def find(self, selector: dict, include_ended: bool = False) -> Process:
        """The process a ``ProcessSelector`` names (by pid or by tag); ``not_found`` otherwise."""
        tag = text(field(selector, "tag"), "tag")
        if tag is not None:
            for process in self.live.values():
                if process.tag == tag:
                    return process
            if include_ended:
                for process in self.ended.values():
                    if process.tag == tag:
                        return process
            raise RpcError("not_found", f"process with tag {tag} not found")
        pid = uint(field(selector, "pid"), "pid")
        process = self.live.get(pid)
        if process is None and include_ended:
            process = self.ended.get(pid)
        if process is None:
            raise RpcError("not_found", f"process with pid {pid} not found")
        return process

    def kill_all(self) -> None:
        for process in list(self.live.values()):
            process.kill(signal.SIGKILL)
