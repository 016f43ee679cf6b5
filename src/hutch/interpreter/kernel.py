"""One Jupyter kernel behind a context: start, execute (as NDJSON-ready lines), interrupt, restart, stop.

Two reader tasks are the only consumers of the kernel's iopub and shell sockets; they route every message
by parent message id to the request waiting for it (readiness checks included). A restart starts a new
process with new sockets. While it waits, an execution checks every ``POLL_S`` that the kernel process
is alive: a kernel that died (``os._exit`` in user code, the OOM killer) ends the execution with a
``ContextRestarting`` error and is restarted. An execution whose client went away is abandoned: its cell is
interrupted and waited for. That, and other work that must happen after an execution (restoring
environment variables, a restart), is chained in ``later`` and awaited by the next execution before it
sends anything, so the kernel has one request at a time and an interrupt reaches no other request.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import queue
import shutil
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

from jupyter_client.kernelspec import KernelSpec, KernelSpecManager
from jupyter_client.manager import AsyncKernelManager

from . import languages, outputs

log = logging.getLogger(__name__)

POLL_S = 0.2
KEEPALIVE_S = 5.0
START_TIMEOUT_S = 60.0
READY_POLL_S = 0.25
READ_POLL_S = 0.2
# How long an abandoned cell may take to start and stop before later work goes ahead anyway.
DRAIN_TIMEOUT_S = 10.0
# The kernel's messages waiting for one request's reader; beyond, the socket's reader waits, and so (its
# socket full) does the kernel.
INBOX_SIZE = 1000
# The directory that holds this package, which the server's PYTHONPATH may name but user code should not see.
_OWN_PATH = str(Path(__file__).resolve().parents[2])


class KernelStartError(Exception):
    """The kernel could not be started."""


class _Spec(KernelSpecManager):
    """The one kernel spec of a ``Kernel``, instead of files in the Jupyter data directories."""

    def __init__(self, language: str, command: languages.KernelCommand) -> None:
        super().__init__()
        self._spec = KernelSpec(
            argv=command.argv,
            env=command.env,
            display_name=language,
            language=language,
            interrupt_mode=command.interrupt_mode,
        )

    def get_kernel_spec(self, kernel_name: str) -> KernelSpec:
        return self._spec


def kernel_env() -> dict[str, str]:
    """The environment kernels start with: the server's, without this package on PYTHONPATH."""
    env = dict(os.environ)
    path = [p for p in env.pop("PYTHONPATH", "").split(os.pathsep) if p and p != _OWN_PATH]
    if path:
        env["PYTHONPATH"] = os.pathsep.join(path)
    env["PYDEVD_DISABLE_FILE_VALIDATION"] = "1"  # ipykernel's debugger warns about frozen modules otherwise
    return env


class Kernel:
    def __init__(self, language: str, cwd: str) -> None:
        command = languages.kernel_command(language)
        if command is None:
            raise KernelStartError(f"no kernel for language '{language}'")
        self.language = language
        self.cwd = cwd
        self._linger_s = command.linger_s
        self._command = command
        # bumped at every (re)start: kernel state such as environment variables is gone after it
        self.generation = 0
        self._runtime = ""
        self._manager: Any = None
        self._client: Any = None
        self._readers: list[asyncio.Task] = []
        # in flight, by message id: each turn's inbox gets ("iopub" | "reply", message) from the readers,
        # or ("ended", line) when the turn is ended from outside
        self._turns: dict[str, tuple[outputs.Turn, asyncio.Queue]] = {}
        self._later: asyncio.Task | None = None
        self._restart_lock = asyncio.Lock()
        self._deferred: set[asyncio.Task] = set()
        self._stopped = False

    async def start(self) -> None:
        try:
            await self._launch()
        except Exception as exc:
            await self._teardown()
            raise KernelStartError(str(exc)) from exc

    async def stop(self) -> None:
        self._stopped = True
        for task in self._deferred:
            task.cancel()
        self._end_all("UnexpectedEndOfExecution", "The context was removed before the execution finished")
        await self._teardown()

    async def restart(self) -> None:
        """A new kernel process with new sockets: nothing of the old one (a dead peer, half-read
        messages) can linger in the new connection."""
        async with self._restart_lock:
            self._end_all("ContextRestarting", "Context was restarted")
            await self._teardown()
            try:
                await self._launch()
            except Exception as exc:
                await self._teardown()
                raise KernelStartError(str(exc)) from exc

    async def _launch(self) -> None:
        # Unix sockets (where the kernel can) in a private directory: no TCP ports to race for, nothing in
        # the user's directories
        self._runtime = tempfile.mkdtemp(prefix="hutch-kernel-")
        # ipc sockets are named after ``ip``, relative to the server's working directory unless made absolute
        where = {"ip": os.path.join(self._runtime, "kernel-ipc")} if self._command.transport == "ipc" else {}
        self._manager = AsyncKernelManager(
            kernel_name=self.language,
            kernel_spec_manager=_Spec(self.language, self._command),
            transport=self._command.transport,
            connection_file=os.path.join(self._runtime, "kernel.json"),
            **where,
        )
        await self._manager.start_kernel(env=kernel_env(), cwd=self.cwd)
        self._client = self._manager.client()
        self._client.start_channels(hb=False)  # liveness is the process's, polled
        self._readers = [
            asyncio.create_task(self._read("iopub", self._client.get_iopub_msg)),
            asyncio.create_task(self._read("reply", self._client.get_shell_msg)),
        ]
        await self._wait_ready()
        self.generation += 1

    async def _teardown(self) -> None:
        for task in self._readers:
            task.cancel()
        await asyncio.gather(*self._readers, return_exceptions=True)
        self._readers = []
        if self._client is not None:
            self._client.stop_channels()
            self._client = None
        if self._manager is not None:
            if self._manager.has_kernel:
                await self._manager.shutdown_kernel(now=True)
            self._manager = None
        if self._runtime:
            shutil.rmtree(self._runtime, ignore_errors=True)
            self._runtime = ""

    async def _wait_ready(self) -> None:
        """Until the kernel has answered ``kernel_info`` on the shell socket and published on iopub.

        Like ``wait_for_ready``, but through the readers (the only consumers of the sockets: a message left
        unread by another consumer can stall a zmq reader) and with short retries, because a request sent
        before the kernel listens may be lost.
        """
        deadline = asyncio.get_running_loop().time() + START_TIMEOUT_S
        inbox: asyncio.Queue = asyncio.Queue(INBOX_SIZE)
        attempts: list[str] = []
        heard: set[str] = set()
        try:
            while True:
                attempts.append(self._client.kernel_info())
                self._turns[attempts[-1]] = (outputs.Turn(), inbox)
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(READY_POLL_S):
                        while heard != {"iopub", "reply"}:
                            source, _ = await inbox.get()
                            if source == "ended":
                                raise KernelStartError("stopped while starting")
                            heard.add(source)
                        return
                if not await self._alive():
                    raise KernelStartError("the kernel exited while starting")
                if asyncio.get_running_loop().time() > deadline:
                    raise KernelStartError(f"the kernel did not answer within {START_TIMEOUT_S} s")
        finally:
            for msg_id in attempts:
                self._turns.pop(msg_id, None)

    async def _alive(self) -> bool:
        return self._manager is not None and await self._manager.is_alive()

    async def _interrupt(self) -> None:
        with contextlib.suppress(Exception):
            await self._manager.interrupt_kernel()

    def later(self, work: Callable[[], Awaitable[Any]]) -> None:
        """Run ``work`` after everything scheduled before it; ``settle`` waits for all of it."""
        if self._stopped:
            return
        previous = self._later

        async def chained() -> None:
            if previous is not None:
                await asyncio.wait([previous])
            try:
                await work()
            except Exception:
                log.exception("deferred kernel work failed")

        task = self._later = asyncio.create_task(chained())
        self._deferred.add(task)
        task.add_done_callback(self._deferred.discard)

    async def settle(self) -> None:
        """Wait for deferred work; restart the kernel if it died while nobody was executing.

        A caller that goes away meanwhile leaves the work going: a restart cut short would leave a kernel
        half started, and a cell not waited for would still run when the next execution is sent.
        """
        await self._wait_later()
        if not await self._alive():
            self.later(self.restart)
            await self._wait_later()
            if not await self._alive():
                raise KernelStartError("the kernel could not be restarted")

    async def _wait_later(self) -> None:
        while self._later is not None:
            task = self._later
            await asyncio.wait([task])
            if self._later is task:
                self._later = None

    async def run_silent(self, code: str) -> dict[str, Any] | None:
        """Run ``code`` without output or history; its error line, if it failed."""
        failure = None
        async for line in self.execute(code, silent=True):
            if line["type"] == "error":
                failure = line
        return failure

    async def execute(self, code: str, *, silent: bool = False) -> AsyncIterator[dict[str, Any]]:
        """The lines of one execution, without the final ``end_of_execution``; call ``settle`` first."""
        # not while a restart runs: its readiness check takes the kernel's messages, and a turn registered
        # before a restart is ended by it
        async with self._restart_lock:
            msg_id, turn, inbox = self._send(code, silent=silent)
        quiet = 0.0
        barrier = ""
        finished = False
        crashed = False
        try:
            # a turn ended from outside leaves its last line in the inbox
            while not (turn.done and inbox.empty()):
                try:
                    async with asyncio.timeout(POLL_S):
                        source, msg = await inbox.get()
                except TimeoutError:
                    if not await self._alive():
                        for line in turn.end("ContextRestarting", "Context was restarted"):
                            yield line
                        self.later(self.restart)
                        crashed = True
                        break
                    if turn.idle and not turn.done and not barrier:
                        barrier = self._barrier(msg_id)
                    quiet += POLL_S
                    if quiet >= KEEPALIVE_S and not silent:
                        quiet = 0.0
                        yield outputs.KEEPALIVE
                    continue
                quiet = 0.0
                for line in turn.feed(source, msg):
                    yield line
            while self._linger_s and not crashed and not turn.ended:
                try:
                    async with asyncio.timeout(self._linger_s):
                        source, msg = await inbox.get()
                except TimeoutError:
                    break
                for line in turn.feed(source, msg):
                    yield line
            finished = True
        finally:
            self._turns.pop(barrier, None)
            if finished:
                self._turns.pop(msg_id, None)
            else:
                # the client went away mid-execution; our own silent code is short, and left to finish
                self.later(lambda: self._abandon(msg_id, interrupt=not silent))

    def _send(self, code: str, *, silent: bool) -> tuple[str, outputs.Turn, asyncio.Queue]:
        msg_id = self._client.execute(
            code, silent=silent, store_history=not silent, allow_stdin=False, stop_on_error=not silent
        )
        turn, inbox = self._turns[msg_id] = (outputs.Turn(), asyncio.Queue(INBOX_SIZE))
        return msg_id, turn, inbox

    def _barrier(self, msg_id: str) -> str:
        """For a turn that went idle but got no reply: a ``kernel_info`` request, whose reply stands in for
        the missing one. The shell channel is ordered, so the execution's reply, if it comes, comes first;
        it may never come (a SIGINT cut an abandoned cell's reply short, which garbles the next message)."""
        barrier = self._client.kernel_info()
        self._turns[barrier] = self._turns[msg_id]
        return barrier

    async def _abandon(self, msg_id: str, *, interrupt: bool) -> None:
        """Stop the cell of an execution nobody waits for any more, and wait until the kernel is done with it.

        The interrupt goes once the kernel has taken the request up: a SIGINT between requests is ignored,
        and the cell would run on. The wait is for the kernel's idle status, not its reply: a SIGINT that
        lands after the cell's code, in the kernel's own handling of the request, costs the reply, never the
        idle status. Nothing else is sent to the kernel before that, so the SIGINT reaches no other request.
        """
        turn, inbox = self._turns[msg_id]
        try:
            async with asyncio.timeout(DRAIN_TIMEOUT_S):
                while not turn.settled:
                    if interrupt and turn.started:
                        interrupt = False
                        await self._interrupt()
                    if not await self._next(turn, inbox):
                        return
        except TimeoutError:
            log.warning("an abandoned execution did not stop within %s s", DRAIN_TIMEOUT_S)
        finally:
            self._turns.pop(msg_id, None)

    async def _next(self, turn: outputs.Turn, inbox: asyncio.Queue) -> bool:
        """Feed ``turn`` its next message; False if the kernel died first."""
        while True:
            try:
                async with asyncio.timeout(POLL_S):
                    source, msg = await inbox.get()
            except TimeoutError:
                if not await self._alive():
                    return False
                continue
            turn.feed(source, msg)
            return True

    def _end_all(self, name: str, value: str) -> None:
        for turn, inbox in self._turns.values():
            if not turn.done:
                if inbox.full():  # the request ends: what its reader has not taken yet goes with it
                    inbox.get_nowait()
                inbox.put_nowait(("ended", turn.end(name, value)[0]))

    async def _read(self, source: str, receive: Callable[..., Awaitable[dict[str, Any]]]) -> None:
        while True:
            try:
                # Each wait is short and the next one watches the socket afresh. A wake-up can be lost
                # (seen about once in 25 kernel restarts: a reply sat unread and every request of the new
                # kernel hung); this way it costs at most one wait.
                msg = await receive(timeout=READ_POLL_S)
            except queue.Empty:
                continue
            except (ValueError, TypeError) as exc:
                # a message the session cannot read (bad signature, malformed): lost, and only it
                log.warning("dropped a message on the kernel's %s channel: %s", source, exc)
                continue
            except Exception:
                log.exception("reading the kernel's %s channel failed", source)
                return
            await self._deliver(msg.get("parent_header", {}).get("msg_id", ""), (source, msg))

    async def _deliver(self, msg_id: str, item: tuple[str, dict[str, Any]]) -> None:
        """Hand a message to the request it answers, waiting while its inbox is full, as long as the request
        is still waited for."""
        while (entry := self._turns.get(msg_id)) is not None:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(READ_POLL_S):
                    await entry[1].put(item)
                    return
